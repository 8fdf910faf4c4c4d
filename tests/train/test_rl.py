import json

import pytest
import torch

from rlhfkit.config import RLAlgoConfig, RLConfig, SampleConfig, TaskConfig
from rlhfkit.models.lm import load_causal_lm
from rlhfkit.rollout.types import one_turn
from rlhfkit.train import rl


def e_share(prompts, completions):
    return [c.count("e") / max(1, len(c)) for c in completions]


def _cfg(policy, out, algo="ppo"):
    return RLConfig(algo=algo, policy=str(policy), out=str(out),
                    task=TaskConfig(n_train=32),
                    rl=RLAlgoConfig(steps=4, prompts_per_step=8, k=2, epochs=2, minibatch_size=4, lr=1e-3,
                                    checkpoint_every=2, eos_trick=False),
                    sample=SampleConfig(max_new_tokens=8, temperature=1.0))


@pytest.mark.parametrize("algo", ["ppo"])   # rloo and grpo share the loop and its checkpoints
def test_rl_resume_after_a_kill_matches_an_uninterrupted_run(tiny_model_dir, tmp_path, algo):
    rl.run(_cfg(tiny_model_dir, tmp_path / "full", algo), reward_fn=e_share)
    calls = {"n": 0, "die_at": 4}

    def reward(prompts, completions):     # one function (one name, one job) that dies at iteration 4
        calls["n"] += 1
        if calls["n"] == calls["die_at"]:
            raise KeyboardInterrupt
        return e_share(prompts, completions)
    with pytest.raises(KeyboardInterrupt):
        rl.run(_cfg(tiny_model_dir, tmp_path / "cut", algo), reward_fn=reward)
    assert (tmp_path / "cut" / "checkpoint" / "trainer_state.pt").is_file()
    calls["die_at"] = 0
    rl.run(_cfg(tiny_model_dir, tmp_path / "cut", algo), reward_fn=reward)
    logged = [json.loads(line)["step"] for line in (tmp_path / "cut" / "log.jsonl").read_text().splitlines()]
    assert logged == [1, 2, 3, 4]    # the line of iteration 3, written after the checkpoint of 2, once
    full, _ = load_causal_lm(tmp_path / "full")
    resumed, _ = load_causal_lm(tmp_path / "cut")
    for (name, a), (_, b) in zip(full.state_dict().items(), resumed.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)


def test_without_lr_decay_a_kept_policy_is_the_shorter_run(tiny_model_dir, tmp_path):
    # a budget sweep from one run: with a constant lr, the policy kept after iteration 2 of a
    # 4-iteration run equals a 2-iteration run's
    long, short = _cfg(tiny_model_dir, tmp_path / "long"), _cfg(tiny_model_dir, tmp_path / "short")
    long.rl.lr_decay = short.rl.lr_decay = False
    long.rl.keep_at, short.rl.steps = "2", 2
    rl.run(long, reward_fn=e_share)
    rl.run(short, reward_fn=e_share)
    lrs = [json.loads(line)["lr"] for line in (tmp_path / "long" / "log.jsonl").open()]
    assert lrs == pytest.approx([1e-3 * min(1, (s + 1) / 5) for s in range(1, 5)])     # the warm-up, no decay
    kept, _ = load_causal_lm(tmp_path / "long" / "at2" / "model")
    two, _ = load_causal_lm(tmp_path / "short" / "model")
    final, _ = load_causal_lm(tmp_path / "long" / "model")
    for (name, a), (_, b), (_, c) in zip(kept.state_dict().items(), two.state_dict().items(),
                                         final.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    assert any(not torch.equal(a, c) for a, c in zip(kept.parameters(), final.parameters()))


def test_keep_at_names_iterations_inside_the_run():
    from rlhfkit.config import ConfigError
    assert RLAlgoConfig(steps=40, keep_at="10, 40,10").keep_steps == [10, 40]
    with pytest.raises(ConfigError, match=r"rl.keep_at: iteration 41 is outside the run's 1..40"):
        RLAlgoConfig(steps=40, keep_at="10,41").validate("ppo")
    with pytest.raises(ConfigError, match=r"rl.keep_at: expected iterations like '10,30,120', got 'x'"):
        RLAlgoConfig(keep_at="10,x").validate("ppo")


def test_a_prompt_longer_than_the_context_is_named_before_training(tiny_model_dir, tmp_path):
    from rlhfkit.data.records import DataError
    f = tmp_path / "prompts.jsonl"
    f.write_text('{"prompt": "POST: short\\nTL;DR:"}\n{"prompt": "' + "word " * 600 + '"}\n')
    cfg = _cfg(tiny_model_dir, tmp_path / "out")
    cfg.prompts = str(f)
    with pytest.raises(DataError, match=r"prompts\.jsonl:2: field 'prompt' is \d+ tokens"):
        rl.run(cfg, reward_fn=e_share)
    assert not (tmp_path / "out" / "model").exists()


def test_bf16_first_iteration_starts_on_policy(tiny_model_dir, tmp_path):
    # old log-probs, reference and update in one precision: the first minibatch's ratio is exactly 1
    # (nothing clipped) and the KL of the policy to its own copy is 0
    cfg = _cfg(tiny_model_dir, tmp_path / "bf16")
    cfg.rl.steps, cfg.rl.epochs, cfg.rl.minibatch_size, cfg.rl.dtype = 1, 1, 8, "bfloat16"
    stats = rl.run(cfg, reward_fn=e_share)
    assert stats["clipfrac"] == 0.0 and stats["approx_kl"] == 0.0, stats
    assert stats["kl"] == pytest.approx(0.0, abs=1e-6)


def test_lr_warm_up_and_reward_whitening_from_the_config(tiny_model_dir, tmp_path):
    cfg = _cfg(tiny_model_dir, tmp_path / "out")
    cfg.rl.warmup_steps, cfg.rl.whiten_rewards = 3, True
    rl.run(cfg, reward_fn=e_share)
    log = [json.loads(line) for line in (tmp_path / "out" / "log.jsonl").read_text().splitlines()]
    lrs = [r["lr"] for r in log]
    for r in log:       # each iteration's time, split by phase (bench/README.md reads the split)
        phases = [r["seconds_generate"], r["seconds_score"], r["seconds_update"]]
        assert min(phases) > 0 and sum(phases) == pytest.approx(r["seconds"], rel=1e-6)
    # after iteration s the next lr is 1e-3 * min(1, (s + 1) / 3) * (1 - s / 4), s = 1..4
    assert lrs == pytest.approx([1e-3 * 2 / 3 * 0.75, 1e-3 * 0.5, 1e-3 * 0.25, 0.0])


def test_value_warm_up_holds_the_policy_still(tiny_model_dir, tmp_path):
    cfg = _cfg(tiny_model_dir, tmp_path / "out")
    cfg.rl.steps, cfg.rl.value_warmup = 3, 2
    rl.run(cfg, reward_fn=e_share)
    log = [json.loads(line) for line in (tmp_path / "out" / "log.jsonl").read_text().splitlines()]
    # the rollouts of iterations 2 and 3 still come from the starting policy (KL 0 to it, ratio 1)
    assert [r["kl"] for r in log] == pytest.approx([0.0, 0.0, 0.0], abs=1e-6)
    # (the sampler's log-probs equal the update's to float32 rounding: zero up to 1e-9)
    assert [log[0]["approx_kl"], log[1]["approx_kl"]] == pytest.approx([0.0, 0.0], abs=1e-9)
    assert log[2]["approx_kl"] > 1e-6
    start, end = load_causal_lm(tiny_model_dir)[0], load_causal_lm(tmp_path / "out")[0]
    assert any(not torch.equal(a, b) for a, b in zip(start.state_dict().values(), end.state_dict().values()))


def test_minibatches_shuffle_prompts_and_keep_each_prompts_samples_together():
    # 3 prompts x 2 samples (the middle one left-padded), then 2 one-sample prompts
    prompts = torch.tensor([[5, 6]] * 2 + [[0, 7]] * 2 + [[8, 9]] * 2 + [[5, 5], [6, 6]])
    exp = one_turn(prompts, (prompts != 0).long(), torch.ones(8, 1, dtype=torch.long), torch.ones(8, 1),
                   torch.zeros(8, 1), [""] * 8, torch.ones(8, dtype=torch.bool))
    torch.manual_seed(0)
    orders = set()
    for _ in range(20):
        batches = rl.minibatches(exp, 4)
        rows = torch.cat(batches).tolist()
        assert [len(b) for b in batches] == [4, 4] and sorted(rows) == list(range(8))
        for pair in ((0, 1), (2, 3), (4, 5)):
            assert abs(rows.index(pair[0]) - rows.index(pair[1])) == 1
        orders.add(tuple(rows))
    assert len(orders) > 5
