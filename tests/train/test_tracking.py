"""Experiment tracking (`report_to`): what log.jsonl holds reaches the tracker, read back offline."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import rlhfkit
from rlhfkit.config import SFTConfig, TaskConfig, TrainConfig

TESTS = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
       "PYTHONPATH": str(TESTS) + os.pathsep + os.environ.get("PYTHONPATH", "")}
TINY_TASK = ["--task.n_train", "64", "--task.n_valid", "16", "--task.n_test", "16"]


def test_tensorboard_holds_every_logged_scalar_and_the_config(tiny_model_dir, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    out = tmp_path / "sft"
    rlhfkit.sft(SFTConfig(model=str(tiny_model_dir), out=str(out), task=TaskConfig(n_train=64, n_valid=16, n_test=16),
                          train=TrainConfig(batch_size=16, epochs=1.0, warmup_steps=1, report_to="tensorboard")))
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    rid = (out / "tracker_run.txt").read_text().strip()
    events = EventAccumulator(str(out / "tensorboard" / rid), size_guidance={"scalars": 0, "tensors": 0}).Reload()
    losses = [(e.step, e.value) for e in events.Scalars("loss")]
    assert losses == [(r["step"], pytest.approx(r["loss"], rel=1e-6)) for r in log] and len(losses) == 4
    assert {"lr", "grad_norm", "tok_per_s"} <= set(events.Tags()["scalars"])
    config = events.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert '"batch_size": 16' in config and f"sft:{out.resolve()}:{rid}" in config


def test_trackio_gets_rl_scalars_and_sample_answers_offline(tiny_model_dir, tmp_path):
    env = {**ENV, "TRACKIO_DIR": str(tmp_path / "trackio")}
    out = tmp_path / "rloo"
    subprocess.run([sys.executable, "-m", "rlhfkit.cli", "rl", "--algo", "rloo", "--policy", str(tiny_model_dir),
                    "--reward", "fixture_rewards:letter_e_share", "--out", str(out), "--rl.steps", "2",
                    "--rl.prompts_per_step", "4", "--rl.k", "2", "--rl.report_to", "trackio",
                    "--rl.log_completions_every", "2", "--sample.max_new_tokens", "6", *TINY_TASK],
                   check=True, capture_output=True, text=True, env=env, timeout=600)
    read = ("import json, sys; from trackio.sqlite_storage import SQLiteStorage as S; "
            "print(json.dumps([S.get_logs('rlhfkit', sys.argv[1]), S.get_run_config('rlhfkit', sys.argv[1])], "
            "default=str))")
    name = f"rloo:{out.resolve()}:{(out / 'tracker_run.txt').read_text().strip()}"
    proc = subprocess.run([sys.executable, "-c", read, name], capture_output=True, text=True,
                          env=env, timeout=120, check=True)
    logs, config = json.loads(proc.stdout.splitlines()[-1])
    lines = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    scores = [(r["step"], r["score"]) for r in logs if "score" in r]
    assert scores == [(r["step"], pytest.approx(r["score"])) for r in lines]
    assert config["rl"]["k"] == 2 and config["reward"] == "fixture_rewards:letter_e_share"
    tables = [(r["step"], str(r["completions"])) for r in logs if "completions" in r]
    assert [step for step, _ in tables] == [2] and "completion" in tables[0][1]


@pytest.mark.skipif(importlib.util.find_spec("wandb") is not None, reason="wandb is installed here")
def test_a_tracker_that_is_not_installed_is_one_line(tiny_model_dir, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "rlhfkit.cli", "sft", "--model", str(tiny_model_dir), "--out",
                           str(tmp_path / "s"), "--train.report_to", "wandb", *TINY_TASK],
                          capture_output=True, text=True, env=ENV, timeout=600)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].endswith(
        "report_to wandb needs the wandb package: pip install 'rlhfkit[wandb]'")
