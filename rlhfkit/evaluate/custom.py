"""`rlhfkit eval --prompts FILE --judge SPEC`: policies judged on the user's own prompts.

FILE holds one record per prompt ("prompt", and optionally the reference answer as "reference" or
"completion": an SFT file works as it is); the first n_prompts are used. Each policy (a model
directory, or a JSONL file of answers already written, as for the built-in world) answers every
prompt once at the fixed sampling seed. The judge:

    rm:DIR                   a reward model's score of each answer
    fn:FILE.py:FUNCTION      a Python function (prompts, completions) -> one number per answer
    fn:MODULE:FUNCTION       (the same, from an importable module)
    pairwise:DIR             a reward model reading both answers of a prompt: the answer's win
                             probability sigmoid(r - r_baseline) (Bradley-Terry), its score r

Every policy is compared with a baseline: the references when every record has one, else the first
policy listed (so two policies are compared with each other). Per policy: the mean score and the
win rate against the baseline (ties count half; pairwise: the mean win probability), each with a
95% bootstrap CI over prompts, the KL to --kl_ref if given, the mean answer length and the share
of answers that never ended. Writes results.json (as the built-in world's, its "task" naming the
file and the judge) and report.md.
"""
from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

from rlhfkit.config import EvalConfig, parse_policies, to_dict
from rlhfkit.data.records import Comparison, DataError, read_records, text_field
from rlhfkit.errors import InputError
from rlhfkit.evaluate.metrics import bootstrap_ci, rate, win_outcomes
from rlhfkit.evaluate.report import fmt, fmt_ci, md_table, write_atomic

# (prompts, answers, baseline answers) -> (scores of the answers, win values against the baseline)
Judge = Callable[[list[str], list[str], list[str]], tuple[list[float], list[float]]]
REFERENCE_FIELDS = ("reference", "completion")


def load_eval_prompts(path: str, n: int) -> tuple[list[str], list[str] | None]:
    """The file's first n prompts, and their references if every one of them has one."""
    prompts, refs = [], []
    for where, record in read_records(path):
        if len(prompts) == n:
            break
        prompts.append(text_field(record, "prompt", where))
        field = next((f for f in REFERENCE_FIELDS if f in record), None)
        refs.append(text_field(record, field, where, allow_empty=True) if field else None)
    if not prompts:
        raise DataError(f"{path}: no records")
    return prompts, (refs if None not in refs else None)


def reward_model_judge(path: str, pairwise: bool) -> Judge:
    """Score each answer beside its baseline in one pass of the reward model; wins by the scores
    (rm) or as sigmoid of their difference (pairwise)."""
    from rlhfkit.models.heads import load_scalar_model
    from rlhfkit.models.lm import context_length
    from rlhfkit.train.reward_model import encode_comparison, score_groups
    model, tokenizer = load_scalar_model(path)
    limit = context_length(model)

    def judge(prompts: list[str], answers: list[str], baseline: list[str]) -> tuple[list[float], list[float]]:
        groups = [encode_comparison(Comparison(p, (a, b)), tokenizer, limit)
                  for p, a, b in zip(prompts, answers, baseline, strict=True)]
        pairs = score_groups(model, groups, tokenizer.pad_token_id)
        scores = [r for r, _ in pairs]
        if pairwise:
            return scores, [1 / (1 + math.exp(b - a)) for a, b in pairs]
        return scores, win_outcomes(scores, [b for _, b in pairs])
    return judge


def function_judge(spec: str) -> Judge:
    """A Python reward function, its output checked as RL checks it (one finite number per answer)."""
    from rlhfkit.rollout.score import load_reward_fn, python_reward_fn
    score = python_reward_fn(load_reward_fn(spec))

    def judge(prompts: list[str], answers: list[str], baseline: list[str]) -> tuple[list[float], list[float]]:
        mine = score(SimpleNamespace(texts=answers), prompts).tolist()
        theirs = score(SimpleNamespace(texts=baseline), prompts).tolist()
        return mine, win_outcomes(mine, theirs)
    return judge


def load_judge(spec: str) -> Judge:
    kind, _, target = spec.partition(":")
    if kind in ("rm", "pairwise"):
        return reward_model_judge(target, pairwise=kind == "pairwise")
    if kind == "fn":
        return function_judge(target)
    raise InputError(f"judge {spec!r}: expected rm:DIR, fn:FILE.py:FUNCTION or pairwise:DIR")


def answers_of(name: str, path: str, prompts: list[str], cfg: EvalConfig, kl_ref, ref_tokenizer) -> dict:
    """One policy's answers to the prompts: texts, token lengths, ended flags, per-prompt KL (or None);
    a JSONL file's ("prompt", "completion", optional "ended" and "kl_to_sft") as the built-in world reads them."""
    from rlhfkit.evaluate.run import sample_policy, written_answers
    from rlhfkit.models.lm import load_causal_lm
    if path.endswith(".jsonl"):
        texts, lengths, ended, kls = written_answers(path, prompts, ref_tokenizer, which="prompt of --prompts")
    else:
        model, tokenizer = load_causal_lm(path)
        texts, lengths, ended, kls = sample_policy(model, tokenizer, prompts, cfg.sample, kl_ref, desc=f"eval {name}")
    return {"texts": texts, "lengths": lengths, "ended": ended, "kls": kls}


def judged(prompts: list[str], answers: dict, baseline: list[str], judge: Judge, bootstrap: int) -> dict:
    scores, wins = judge(prompts, answers["texts"], baseline)
    return {"winrate_vs_baseline": bootstrap_ci(wins, bootstrap, seed=0),
            "score_mean": bootstrap_ci(scores, bootstrap, seed=1),
            "kl_to_ref": statistics.fmean(answers["kls"]) if answers["kls"] is not None else None,
            "length_mean": statistics.fmean(answers["lengths"]),
            "no_eos": rate([not e for e in answers["ended"]]), "n_prompts": len(prompts)}


def run_custom(cfg: EvalConfig) -> dict:
    from rlhfkit.models.lm import load_causal_lm
    prompts, refs = load_eval_prompts(cfg.prompts, cfg.n_prompts)
    judge = load_judge(cfg.judge)
    kl_ref, ref_tokenizer = load_causal_lm(cfg.kl_ref) if cfg.kl_ref else (None, None)
    policies = parse_policies(cfg.policies)
    answers = {name: answers_of(name, path, prompts, cfg, kl_ref, ref_tokenizer) for name, path in policies.items()}
    first = next(iter(policies))
    baseline_name, baseline = ("reference", refs) if refs is not None else (first, answers[first]["texts"])
    methods = {name: judged(prompts, a, baseline, judge, cfg.bootstrap) for name, a in answers.items()}
    results = {"task": {"name": "prompts", "prompts": cfg.prompts, "judge": cfg.judge, "baseline": baseline_name},
               "config": to_dict(cfg), "methods": methods}
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "results.json", json.dumps(results, indent=2) + "\n")
    write_atomic(out / "report.md", report(results))
    return results


def report(results: dict) -> str:
    task = results["task"]
    rows = [[name, fmt_ci(m["score_mean"]), fmt_ci(m["winrate_vs_baseline"]), fmt(m["kl_to_ref"], 2),
             fmt(m["length_mean"], 1), fmt(m["no_eos"], 2), str(m["n_prompts"])]
            for name, m in results["methods"].items()]
    header = ["policy", "mean score [95% CI]", f"win rate vs {task['baseline']} [95% CI]", "KL to --kl_ref",
              "mean length", "no EOS", "prompts"]
    return (f"# rlhfkit eval on {task['prompts']}\n\nJudge: `{task['judge']}`; baseline: {task['baseline']}. "
            "95% bootstrap intervals over prompts.\n\n" + md_table(header, rows) + "\n")
