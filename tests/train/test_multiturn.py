"""Multi-turn RL end to end, run as a user runs it, in a subprocess: `rlhfkit rl --prompts echo` (a
game whose reward comes only after its third turn) and `rlhfkit rl --prompts conversation` (the
gold return of a whole conversation) raise the episode return."""
import json
import os
import statistics
import subprocess
import sys

import pytest


@pytest.mark.parametrize("algo", ["ppo", "rloo"])   # turn-level credit (a value model); the episode return only
def test_rl_learns_a_game_rewarded_only_at_the_end(tiny_model_dir, tmp_path, algo, seed=0):
    out = tmp_path / algo
    proc = subprocess.run(
        [sys.executable, "-m", "rlhfkit.cli", "rl", "--algo", algo, "--policy", str(tiny_model_dir), "--prompts", "echo",
         "--task.n_train", "128", "--rl.steps", "40", "--rl.prompts_per_step", "32", "--rl.minibatch_size", "16",
         "--rl.epochs", "2", "--rl.k", "2", "--rl.lr", "3e-3", "--rl.beta", "0", "--rl.eos_trick", "false", "--rl.seed", str(seed),
         "--sample.max_new_tokens", "3", "--sample.temperature", "1.0", "--out", str(out)],
        capture_output=True, text=True, env=os.environ | {"OMP_NUM_THREADS": "1"}, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert {row["turns"] for row in log} == {3.0}          # every episode plays the game's three turns
    first, last = (statistics.fmean(row["score"] for row in rows) for rows in (log[:8], log[-8:]))
    assert last > first + 0.1, (first, last)


def test_ppo_raises_the_gold_return_of_conversations(tmp_path):
    """`rlhfkit rl --prompts conversation`: the environment's reward is the gold return R of the
    whole conversation, on its last turn; PPO from the shipped base model (which has read
    transcripts of every quality) raises it."""
    out = tmp_path / "ppo"
    proc = subprocess.run(
        [sys.executable, "-m", "rlhfkit.cli", "rl", "--algo", "ppo", "--policy", "models/conversation-base",
         "--prompts", "conversation", "--task.events", "1", "--task.n_train", "256", "--rl.steps", "12",
         "--rl.prompts_per_step", "32", "--rl.minibatch_size", "16", "--rl.epochs", "2", "--rl.lr", "5e-4",
         "--rl.warmup_steps", "2", "--sample.max_new_tokens", "96", "--sample.max_turns", "4", "--out", str(out)],
        capture_output=True, text=True, env=os.environ | {"OMP_NUM_THREADS": "1"}, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    first, last = (statistics.fmean(row["score"] for row in rows) for rows in (log[:3], log[-3:]))
    assert last > first + 0.5, (first, last)
