"""`rlhfkit vader` end to end on a tiny model and a tiny ratings archive; the judges on hand values."""
import json
import math
import os
import subprocess
import sys

import pytest
import torch

from rlhfkit.evaluate.fluency import continuation_nll, perplexity
from rlhfkit.models.lm import load_causal_lm
from rlhfkit.tasks.vader.judges import vader_compound
from rlhfkit.train.reward_model import pair_accuracy
from test_vader_data import write_sdist

pytest.importorskip("vaderSentiment")

WORDS = ("good", "bad", "fine", "awful", "great", "dull", "lovely", "poor")


def more_sentences(name, lines):
    """40 more sentences per corpus, so every split has pairs and prompts (the ratings: 4 raters)."""
    for i in range(100, 140):
        mean = (i % 9) - 4
        if name.endswith("_GroundTruth.txt"):
            lines.append(f"{i}\t{mean}\tthe film number {i} was {WORDS[i % 8]} and the cast was {WORDS[(i * 3) % 8]}")
        else:
            lines.append(f"{i}\t{mean}\t0.5\t{[mean, mean, mean, mean]}")


def test_pair_accuracy_counts_ties_half():
    # the scorer used for the reward model and the lexicon baseline on held-out pairs: (1 + 0.5 + 0) / 3
    assert pair_accuracy([[2.0, 1.0], [1.0, 1.0], [0.0, 3.0]]) == pytest.approx(0.5)


def test_vader_reads_a_negation():
    good, negated = vader_compound(["The movie was good.", "The movie was not good."])
    assert good > 0.05 > negated


def test_perplexity_is_the_exp_of_the_mean_token_nll(tiny_model_dir):
    model, tok = load_causal_lm(tiny_model_dir)
    prompts, completions = ["the cat", "a dog ran"], [" sat down", " far"]
    nll, n = continuation_nll(model, tok, prompts, completions)
    # by hand, one sequence at a time: BOS + prompt + completion, scored on the completion tokens
    total, count = 0.0, 0
    for p, c in zip(prompts, completions):
        p_ids = [tok.bos_token_id] + tok(p, add_special_tokens=False)["input_ids"]
        c_ids = tok(c, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logp = torch.log_softmax(model(torch.tensor([p_ids + c_ids])).logits[0], -1)
        total -= sum(logp[len(p_ids) - 1 + i, t].item() for i, t in enumerate(c_ids))
        count += len(c_ids)
    assert n == count and nll == pytest.approx(total, rel=1e-4)
    assert perplexity(model, tok, prompts, completions) == pytest.approx(math.exp(total / count), rel=1e-4)


def test_the_experiment_runs_end_to_end_and_resumes(tmp_path, tiny_model_dir):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "rlhfkit.cli", "vader", "--model", str(tiny_model_dir),
           "--archive", str(write_sdist(tmp_path, more_sentences)), "--out", str(out), "--rm_pairs", "20", "--n_prompts", "4",
           "--bon_n", "2", "--rl.steps", "2", "--rl.prompts_per_step", "4", "--rl.minibatch_size", "4",
           "--sample.max_new_tokens", "6", "--rm.dtype", "float32", "--sft.dtype", "float32",
           "--dpo.dtype", "float32", "--rl.dtype", "float32"]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    subprocess.run(cmd, check=True, capture_output=True, env=env, timeout=600)
    results = json.loads((out / "results.json").read_text())
    assert set(results["methods"]) == {"start", "sft", "bon", "dpo", "ppo"}
    assert results["methods"]["start"]["kl_to_start"] == pytest.approx(0.0, abs=1e-5)  # KL of a model to itself
    assert results["methods"]["bon"]["kl_to_start"] == pytest.approx(math.log(2) - 0.5)
    for row in results["methods"].values():
        assert -1 <= row["vader_compound"] <= 1 and row["perplexity_under_start_model"] > 1
    assert 0 <= results["reward_model"]["accuracy"] <= 1 and len(results["ppo_log"]) == 2
    assert "## Reward model on held-out human pairs" in (out / "report.md").read_text()
    # started again, every stage is found done: nothing retrains, the same answers come back
    before = (out / "ppo" / "model" / "model.safetensors").stat().st_mtime
    subprocess.run(cmd, check=True, capture_output=True, env=env, timeout=600)
    assert (out / "ppo" / "model" / "model.safetensors").stat().st_mtime == before
    assert json.loads((out / "results.json").read_text())["methods"] == results["methods"]
