"""`rlhfkit eval --prompts FILE --judge SPEC`: the user's prompts, the user's judge."""
import json
import math

import pytest
import torch

from rlhfkit.config import ConfigError, EvalConfig, SampleConfig
from rlhfkit.evaluate import run as evaluate
from rlhfkit.models.heads import scalar_model_from_lm
from rlhfkit.models.lm import save_model
from rlhfkit.train.reward_model import encode_comparison, score_groups
from rlhfkit.data.records import Comparison

PROMPTS = [f"Question {i}: say something." for i in range(4)]


def jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


@pytest.fixture()
def files(tmp_path):
    refs = ["one two", "one two three", "x", ""]
    short = ["a", "a b c d", "a b", "a"]         # word counts 1, 4, 2, 1 against the references' 2, 3, 1, 0
    long = ["a b c", "a b c", "a b c", "a b c"]
    return {"prompts": jsonl(tmp_path / "p.jsonl", [{"prompt": p, "reference": r} for p, r in zip(PROMPTS, refs)]),
            "bare": jsonl(tmp_path / "bare.jsonl", [{"prompt": p} for p in PROMPTS]),
            "short": jsonl(tmp_path / "short.jsonl", [{"prompt": p, "completion": c} for p, c in zip(PROMPTS, short)]),
            "long": jsonl(tmp_path / "long.jsonl", [{"prompt": p, "completion": c} for p, c in zip(PROMPTS, long)]),
            "judge": tmp_path / "words.py"}


def test_a_function_judge_against_the_references_by_hand(files, tiny_model_dir, tmp_path):
    files["judge"].write_text("def words(prompts, completions):\n    return [len(c.split()) for c in completions]\n")
    results = evaluate.run(EvalConfig(prompts=files["prompts"], judge=f"fn:{files['judge']}:words",
                                      policies=f"short={files['short']},long={files['long']}",
                                      kl_ref=str(tiny_model_dir),
                                      out=str(tmp_path / "eval"), bootstrap=200))
    short, long = results["methods"]["short"], results["methods"]["long"]
    # short against 2, 3, 1, 0 words: loses, wins, wins, wins; long (3 words): wins, ties, wins, wins
    assert short["winrate_vs_baseline"]["mean"] == pytest.approx(3 / 4)
    assert long["winrate_vs_baseline"]["mean"] == pytest.approx(3.5 / 4)
    assert short["score_mean"]["mean"] == pytest.approx(2.0) and long["score_mean"]["mean"] == pytest.approx(3.0)
    assert results["task"]["baseline"] == "reference" and short["kl_to_ref"] is None and short["n_prompts"] == 4
    report = (tmp_path / "eval" / "report.md").read_text()
    assert "win rate vs reference" in report and "| long | 3.000 [3.000, 3.000] |" in report


def test_without_references_the_first_policy_is_the_baseline(files, tiny_model_dir, tmp_path):
    files["judge"].write_text("def words(prompts, completions):\n    return [len(c.split()) for c in completions]\n")
    results = evaluate.run(EvalConfig(prompts=files["bare"], judge=f"fn:{files['judge']}:words", n_prompts=3,
                                      policies=f"sft={tiny_model_dir},long={files['long']}", kl_ref=str(tiny_model_dir),
                                      out=str(tmp_path / "eval"), bootstrap=200, sample=SampleConfig(
                                          max_new_tokens=6)))
    assert results["task"]["baseline"] == "sft"
    sft = results["methods"]["sft"]
    assert sft["winrate_vs_baseline"]["mean"] == 0.5 and sft["n_prompts"] == 3    # itself: every prompt a tie
    assert sft["kl_to_ref"] == pytest.approx(0.0, abs=1e-4)                    # sampled from kl_ref itself


def test_reward_model_judges_score_and_compare(files, tiny_model_dir, tmp_path):
    torch.manual_seed(0)
    rm, tokenizer = scalar_model_from_lm(tiny_model_dir)
    save_model(tmp_path / "rm", rm, tokenizer)
    policies = f"short={files['short']},long={files['long']}"
    common = dict(prompts=files["prompts"], policies=policies, kl_ref=str(tiny_model_dir), bootstrap=200)
    scored = evaluate.run(EvalConfig(judge=f"rm:{tmp_path / 'rm'}", out=str(tmp_path / "a"), **common))
    paired = evaluate.run(EvalConfig(judge=f"pairwise:{tmp_path / 'rm'}", out=str(tmp_path / "b"), **common))
    refs = ["one two", "one two three", "x", ""]
    answers = ["a b c"] * 4
    pairs = score_groups(rm.eval(), [encode_comparison(Comparison(p, (a, r)), tokenizer, 256)
                                     for p, a, r in zip(PROMPTS, answers, refs)], tokenizer.pad_token_id)
    long_scored, long_paired = scored["methods"]["long"], paired["methods"]["long"]
    assert long_scored["score_mean"]["mean"] == pytest.approx(sum(a for a, _ in pairs) / 4, abs=1e-5)
    assert long_scored["winrate_vs_baseline"]["mean"] == pytest.approx(sum(a > b for a, b in pairs) / 4)
    expected = sum(1 / (1 + math.exp(b - a)) for a, b in pairs) / 4
    assert long_paired["winrate_vs_baseline"]["mean"] == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("kwargs,message", [
    ({"prompts": "p.jsonl"}, "prompts and judge go together"),
    ({"judge": "fn:x.py:f"}, "prompts and judge go together"),
    ({"prompts": "p.jsonl", "judge": "gold:x"}, "judge: expected rm:DIR, fn:FILE.py:FUNCTION or pairwise:DIR"),
    ({"prompts": "p.jsonl", "judge": "rm:"}, "judge: expected rm:DIR"),
])
def test_prompts_and_judge_are_checked_together(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        EvalConfig(**kwargs).validate()
