"""A checkpoint belongs to its job; a finished job knows it is finished; a killed run's log is trimmed."""
import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from rlhfkit.config import SFTConfig, TrainConfig
from rlhfkit.errors import RunError
from rlhfkit.models.lm import load_causal_lm, save_model
from rlhfkit.train import loop, sft
from rlhfkit.train.job import JobMismatch, differences


def _demos(path, n=12, word="yes"):
    path.write_text("".join(json.dumps({"prompt": f"POST: story {i}\nTL;DR:", "completion": f" {word} {i}"}) + "\n"
                            for i in range(n)))
    return path


def _cfg(model, data, out, **train):
    defaults = {"lr": 1e-2, "batch_size": 4, "epochs": 2, "warmup_steps": 1, "checkpoint_every": 2}
    return SFTConfig(model=str(model), data=str(data), out=str(out), train=TrainConfig(**(defaults | train)))


def _snapshot(out):
    return {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


@pytest.fixture()
def killed(tiny_model_dir, tmp_path, kill_at_step):
    """An SFT run killed at step 4, its checkpoint at step 2 left in `out`."""
    data, out = _demos(tmp_path / "demos.jsonl"), tmp_path / "out"
    kill_at_step(lambda: sft.run(_cfg(tiny_model_dir, data, out)), 4)
    assert json.loads((out / "checkpoint" / "job.json").read_text())["step"] == 2
    return tiny_model_dir, data, out


def _other_model(tiny_model_dir, tmp_path):
    model, tok = load_causal_lm(tiny_model_dir)
    with torch.no_grad():
        model.get_input_embeddings().weight.mul_(1.5)
    save_model(tmp_path / "other_model", model, tok)
    return tmp_path / "other_model"


def _other_tokenizer(tiny_model_dir, tmp_path):
    other = tmp_path / "other_tok"
    shutil.copytree(tiny_model_dir, other)
    config = json.loads((other / "tokenizer_config.json").read_text())
    config["model_max_length"] = 77
    (other / "tokenizer_config.json").write_text(json.dumps(config))
    return other


@pytest.mark.parametrize("change, named", [
    ("model", "models.model.weights"),
    ("tokenizer", "models.model.tokenizer"),
    ("data", "data.data.sha256"),
    ("config", "config.train.lr"),
])
def test_a_checkpoint_of_another_job_is_refused_before_anything_is_written(killed, tmp_path, change, named):
    model, data, out = killed
    before = _snapshot(out)
    kwargs = {}
    if change == "model":
        model = _other_model(model, tmp_path)
    elif change == "tokenizer":
        model = _other_tokenizer(model, tmp_path)
    elif change == "data":
        data = _demos(tmp_path / "demos.jsonl", word="no")      # same path, other content
    else:
        kwargs = {"lr": 2e-2}
    with pytest.raises(JobMismatch, match=rf"checkpoint belongs to another job \(.*{named}.*\); run with "
                                          r"--resume false to start over"):
        sft.run(_cfg(model, data, out, **kwargs))
    assert _snapshot(out) == before


def test_the_same_job_resumes_and_resume_false_starts_over(killed, tmp_path):
    model, data, out = killed
    stats = sft.run(_cfg(model, data, out))
    steps = [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]             # the killed run's step 3 is not logged twice
    other = _demos(tmp_path / "other.jsonl", word="no")
    cfg = _cfg(model, other, out)
    cfg.resume = False
    assert sft.run(cfg)["train_loss"] != stats["train_loss"]


def test_a_finished_job_is_not_trained_again(tiny_model_dir, tmp_path, capsys):
    cfg = _cfg(tiny_model_dir, _demos(tmp_path / "demos.jsonl"), tmp_path / "out")
    first = sft.run(cfg)
    before = _snapshot(tmp_path / "out")
    assert sft.run(cfg) == first
    assert _snapshot(tmp_path / "out") == before
    assert "already holds this finished job; nothing to do" in capsys.readouterr().err
    other = _cfg(tiny_model_dir, tmp_path / "demos.jsonl", tmp_path / "out", lr=3e-2)
    with pytest.raises(JobMismatch, match=r"belongs to another job \(config\.train\.lr differ\)"):
        sft.run(other)
    other.resume = False
    assert sft.run(other)["train_loss"] != first["train_loss"]


def test_a_run_copied_elsewhere_with_its_model_and_data_is_the_same_job(killed, tmp_path):
    model, data, out = killed
    moved = tmp_path / "moved"
    for src in (model, data, out):
        (shutil.copytree if src.is_dir() else shutil.copy)(src, moved / src.name)
    steps = sft.run(_cfg(moved / model.name, moved / data.name, moved / out.name))    # resumes the checkpoint
    assert [json.loads(line)["step"] for line in (moved / out.name / "log.jsonl").read_text().splitlines()] == \
        [1, 2, 3, 4, 5, 6]
    assert sft.run(_cfg(moved / model.name, moved / data.name, moved / out.name)) == steps   # and it is finished
    marker = json.loads((moved / out.name / "job.json").read_text())["fingerprint"]
    assert marker["data"]["data"]["path"] == str((moved / data.name).resolve())   # the record keeps where it lay


def test_differences_names_the_leaves():
    a = {"models": {"m": {"weights": 1, "config": 2}}, "config": {"train": {"lr": 1}}}
    b = {"models": {"m": {"weights": 1, "config": 3}}, "config": {"train": {"lr": 1, "seed": 0}}}
    assert differences(a, b) == ["config.train.seed", "models.m.config"]


def test_a_job_from_before_an_option_was_added_is_the_same_job(tiny_model_dir, tmp_path):
    # a finished RL job whose record lacks options added since (here lr_decay, at its default) is found
    # finished; the option set otherwise is another job
    from rlhfkit.config import RLConfig
    from rlhfkit.train.job import Job
    cfg = RLConfig(policy=str(tiny_model_dir), reward="rewards.py:f", out=str(tmp_path / "rl"))
    job = Job.begin("ppo", cfg, models={"policy": cfg.policy})
    older = json.loads(json.dumps(job.fingerprint))
    del older["config"]["rl"]["lr_decay"], older["config"]["rl"]["keep_at"]
    (tmp_path / "rl").mkdir()
    result = {"out": str(tmp_path / "rl")}
    (tmp_path / "rl" / "job.json").write_text(json.dumps({"fingerprint": older, "result": result}))
    assert Job.begin("ppo", cfg, models={"policy": cfg.policy}).result == result
    cfg.rl.lr_decay = False
    with pytest.raises(JobMismatch, match=r"config.rl.lr_decay differ"):
        Job.begin("ppo", cfg, models={"policy": cfg.policy})


def test_load_weights_refuses_missing_and_unexpected_keys(tiny_model_dir, tmp_path):
    model, _ = load_causal_lm(tiny_model_dir)
    weights = load_file(tiny_model_dir / "model.safetensors")
    loop.load_weights(model, tiny_model_dir)                    # a tied lm_head is stored once: fine

    def checkpoint(name, tensors):
        d = tmp_path / name
        shutil.copytree(tiny_model_dir, d)
        save_file(tensors, d / "model.safetensors", metadata={"format": "pt"})
        return d
    with pytest.raises(RunError, match=r"its weights do not fit the model \(extra\.weight\)"):
        loop.load_weights(model, checkpoint("extra", dict(weights) | {"extra.weight": torch.zeros(2)}))
    fewer = {k: v for k, v in weights.items() if k != "model.norm.weight"}
    with pytest.raises(RunError, match=r"its weights do not fit the model \(model\.norm\.weight\)"):
        loop.load_weights(model, checkpoint("fewer", fewer))
    shorter = dict(weights) | {"model.norm.weight": torch.ones(3)}
    with pytest.raises(RunError, match=r"model\.norm\.weight"):
        loop.load_weights(model, checkpoint("shorter", shorter))



def test_the_command_line_says_it_in_one_line_with_the_exit_code(tiny_model_dir, tmp_path, capsys):
    from rlhfkit.cli import main
    demos, out = _demos(tmp_path / "demos.jsonl"), tmp_path / "out"
    args = ["sft", "--model", str(tiny_model_dir), "--data", str(demos), "--out", str(out), "--train.batch_size", "4",
            "--train.checkpoint_every", "1"]
    assert main(args + ["--train.lr", "1e30"]) == 1                          # diverges at step 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.endswith(f"last good checkpoint: {out / 'checkpoint'} at step 1") and "Traceback" not in err
    assert main(args) == 2                                                    # that checkpoint is not this job's
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "checkpoint belongs to another job (config.train.lr differ)" in err
    assert main(args + ["--resume", "false"]) == 0
    capsys.readouterr()
    assert main(args) == 0
    assert "already holds this finished job; nothing to do" in capsys.readouterr().err


def test_a_split_of_a_file_is_fingerprinted_by_the_files_content(tmp_path):
    from rlhfkit.train.job import data_fingerprint
    f = tmp_path / "pairs.jsonl"
    f.write_text('{"split": "train"}\n')
    before = data_fingerprint(f"{f}:train")
    assert before["split"] == "train" and before["path"] == str(f.resolve())
    f.write_text('{"split": "train", "x": 1}\n')
    assert data_fingerprint(f"{f}:train")["sha256"] != before["sha256"]
    assert data_fingerprint("tldr") == {"name": "tldr"}


def test_a_torn_last_log_line_is_dropped_on_resume(tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text('{"step": 1}\n{"step": 2}\n{"step": 3}\n{"st')
    loop.open_log(log, 2).close()
    assert log.read_text() == '{"step": 1}\n{"step": 2}\n'


def test_the_reward_function_is_part_of_the_job(tmp_path, monkeypatch):
    import functools

    from rlhfkit.config import RLConfig
    from rlhfkit.train.job import config_fingerprint, data_fingerprint
    from rlhfkit.rollout.score import callable_name, reward_code_file
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rewards.py").write_text("def a(p, c): return [0.0] * len(c)\ndef b(p, c): return [1.0] * len(c)\n")
    assert reward_code_file("rewards.py:a") == "rewards.py" and reward_code_file("rewards:a") == "rewards.py"
    fp = lambda spec: config_fingerprint(RLConfig(reward=spec), {"reward_code"})  # noqa: E731
    assert fp("rewards.py:a") != fp("rewards.py:b")
    before = data_fingerprint("rewards.py")
    (tmp_path / "rewards.py").write_text("def a(p, c): return [2.0] * len(c)\n")
    assert data_fingerprint("rewards.py") != before
    assert callable_name(functools.partial(max)).endswith(":partial")


def test_a_directory_named_tldr_is_not_hashed_as_the_world(tmp_path, monkeypatch):
    from rlhfkit.train.job import data_fingerprint
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tldr").mkdir()
    assert data_fingerprint("tldr") == {"name": "tldr"}


def test_a_finished_job_whose_model_was_removed_trains_again(tiny_model_dir, tmp_path):
    cfg = _cfg(tiny_model_dir, _demos(tmp_path / "demos.jsonl"), tmp_path / "out")
    sft.run(cfg)
    shutil.rmtree(tmp_path / "out" / "model")
    sft.run(cfg)
    assert (tmp_path / "out" / "model" / "config.json").is_file()


def test_resume_false_keeps_the_old_checkpoint_until_the_new_run_starts(killed, tmp_path):
    from rlhfkit.errors import DataError
    model, data, out = killed
    before = _snapshot(out)
    cfg = _cfg(model, tmp_path / "typo.jsonl", out)
    cfg.resume = False
    with pytest.raises(DataError, match="typo.jsonl"):
        sft.run(cfg)
    assert _snapshot(out) == before
