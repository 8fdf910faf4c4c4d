"""Non-finite and divergent runs stop: one line naming the step and the last good checkpoint,
nothing non-finite on disk, an earlier good model untouched."""
import json
import math

import pytest
import torch
from safetensors.torch import load_file

from rlhfkit.config import DPOConfig, RLAlgoConfig, RLConfig, RMConfig, SampleConfig, SFTConfig, TaskConfig, TrainConfig
from rlhfkit.errors import RunError
from rlhfkit.models.heads import scalar_model_from_lm
from rlhfkit.models.lm import load_causal_lm, save_model
from rlhfkit.train import preference, reward_model, rl, sft


def _write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _demos(tmp_path):
    return _write(tmp_path / "demos.jsonl", [{"prompt": f"POST: day {i}\nTL;DR:", "completion": f" a day {i}"}
                                             for i in range(8)])


def _comparisons(tmp_path):
    return _write(tmp_path / "pairs.jsonl", [{"prompt": f"POST: day {i}\nTL;DR:", "chosen": f" a day {i}",
                                              "rejected": " no"} for i in range(8)])


def _train(**kw):
    return TrainConfig(**({"batch_size": 4, "epochs": 2, "warmup_steps": 1, "checkpoint_every": 1} | kw))


def _all_finite(directory) -> bool:
    files = list(directory.rglob("*.safetensors"))
    assert files
    return all(torch.isfinite(t).all() for f in files for t in load_file(f).values())


def _stage(name, model, tmp_path, out, **train):
    if name == "sft":
        return sft.run, SFTConfig(model=str(model), data=str(_demos(tmp_path)), out=str(out), train=_train(**train))
    if name == "rm":
        return reward_model.run, RMConfig(model=str(model), data=str(_comparisons(tmp_path)), out=str(out),
                                          train=_train(**train))
    return preference.run_dpo, DPOConfig(model=str(model), data=str(_comparisons(tmp_path)), out=str(out),
                                         train=_train(**train))


@pytest.mark.parametrize("stage", ["sft", "rm", "dpo"])
def test_a_loss_that_turns_nan_stops_the_run_and_keeps_the_good_state(tiny_model_dir, tmp_path, stage):
    # an lr of 1e30 leaves finite but enormous weights after step 1, whose step-2 loss is not finite
    run, cfg = _stage(stage, tiny_model_dir, tmp_path, tmp_path / "out", lr=1e30)
    with pytest.raises(RunError) as e:
        run(cfg)
    message = str(e.value)
    assert "\n" not in message
    assert message.startswith(f"{stage}: step 2: ") and "(lr 1.0e+30)" in message, message
    assert f"last good checkpoint: {tmp_path / 'out' / 'checkpoint'} at step 1" in message
    assert _all_finite(tmp_path / "out" / "checkpoint")
    assert not (tmp_path / "out" / "model").exists()


def test_a_diverged_rerun_never_replaces_a_good_model(tiny_model_dir, tmp_path):
    run, cfg = _stage("sft", tiny_model_dir, tmp_path, tmp_path / "out", lr=1e-2)
    run(cfg)
    good = (tmp_path / "out" / "model" / "model.safetensors").read_bytes()
    run, cfg = _stage("sft", tiny_model_dir, tmp_path, tmp_path / "out", lr=1e30)
    cfg.resume = False
    with pytest.raises(RunError, match=r"sft: step 2: (loss|grad_norm) is (nan|inf)"):
        run(cfg)
    assert (tmp_path / "out" / "model" / "model.safetensors").read_bytes() == good


def test_a_loss_above_max_loss_stops_the_run(tiny_model_dir, tmp_path):
    run, cfg = _stage("sft", tiny_model_dir, tmp_path, tmp_path / "out", lr=1e-2, max_loss=1.0)
    with pytest.raises(RunError, match=r"^sft: step 1: loss is \d+\.\d+, above the limit 1 \(lr .*\); no checkpoint "
                                       r"was written"):
        run(cfg)


def _rl_cfg(policy, out, algo, **hp):
    defaults = {"steps": 4, "prompts_per_step": 8, "k": 2, "epochs": 2, "minibatch_size": 4, "lr": 1e-3,
                "warmup_steps": 0, "checkpoint_every": 1, "eos_trick": False}
    return RLConfig(algo=algo, policy=str(policy), reward="tests.fixture_rewards:letter_e_share", reward_model="",
                    out=str(out), task=TaskConfig(n_train=32), rl=RLAlgoConfig(**(defaults | hp)),
                    sample=SampleConfig(max_new_tokens=8, temperature=1.0))


@pytest.mark.parametrize("algo", ["ppo", "rloo", "grpo"])
def test_rl_at_a_huge_learning_rate_stops_before_writing_anything(tiny_model_dir, tmp_path, algo):
    with pytest.raises(RunError, match=rf"^{algo}: step 1: (loss|grad_norm) is (nan|inf) \(lr 1\.0e\+03\); no "
                                       r"checkpoint was written"):
        rl.run(_rl_cfg(tiny_model_dir, tmp_path / "out", algo, lr=1e3))
    assert not list((tmp_path / "out").rglob("*.safetensors"))


def test_rl_kl_past_max_kl_stops_and_the_checkpoint_resumes_with_a_looser_limit(tiny_model_dir, tmp_path):
    cfg = _rl_cfg(tiny_model_dir, tmp_path / "out", "rloo", lr=3e-2, max_kl=1e-3)
    with pytest.raises(RunError) as e:
        rl.run(cfg)
    step = json.loads((tmp_path / "out" / "checkpoint" / "job.json").read_text())["step"]
    assert str(e.value).startswith(f"rloo: step {step + 1}: kl is ")
    assert "above the limit 0.001 (mean sequence KL to the reference, in nats, of the policy the last update " \
           "left: resuming may need a higher rl.max_kl); last good checkpoint: " \
           f"{tmp_path / 'out' / 'checkpoint'} at step {step}" in str(e.value)
    assert _all_finite(tmp_path / "out" / "checkpoint")
    cfg.rl.max_kl = 0.0            # limits do not change what a run computes: the same job resumes
    assert rl.run(cfg)["step"] == 4


def test_a_reward_model_that_scores_nan_stops_ppo(tiny_model_dir, tmp_path):
    model, tok = scalar_model_from_lm(tiny_model_dir)
    with torch.no_grad():
        model.score.weight.fill_(math.nan)
    save_model(tmp_path / "rm", model, tok)
    cfg = _rl_cfg(tiny_model_dir, tmp_path / "out", "ppo")
    cfg.reward, cfg.reward_model = "", str(tmp_path / "rm")
    with pytest.raises(RunError, match=r"^ppo: step 1: reward is nan for rollout 0; no checkpoint was written"):
        rl.run(cfg)
    assert load_causal_lm(tiny_model_dir)      # the policy's own directory is untouched and loads
