"""Where reward models disagree with the gold judge, on many held-out rankings of the built-in task.

Each reward model scores every answer of every ranking in a rankings file (the demo's
`labels/rankings.jsonl` format) after skipping the first --skip records (those a model was trained
on); every pair of a ranking counts. Prints one markdown row per model: accuracy against the
labelers' order and against the gold judge, overall and by what the two answers differ in
(`rlhfkit.evaluate.reward_model.differences`). --ensemble adds a row for the mean of the models'
scores, each divided by its standard deviation over these answers.

    python bench/reward_model_errors.py --rankings runs/b18/seed0/labels/rankings.jsonl --skip 1000 \\
        runs/demo/seed0/rm [more reward models] [--ensemble]
"""
from __future__ import annotations

import argparse
import json
import statistics
from itertools import combinations

from rlhfkit.config import TaskConfig
from rlhfkit.data.records import Comparison
from rlhfkit.evaluate.reward_model import DIFFERENCES, reward_model_report
from rlhfkit.models.heads import load_scalar_model
from rlhfkit.models.lm import context_length
from rlhfkit.tasks.tldr.world import facts_by_prompt
from rlhfkit.train.reward_model import encode_comparison, score_groups


def model_scores(rm_dir: str, records: list[dict]) -> list[list[float]]:
    """The model's score of every answer, standardised over all of them (for ensembling)."""
    model, tok = load_scalar_model(rm_dir)
    groups = [encode_comparison(Comparison(r["prompt"], tuple(r["completions"])), tok, context_length(model))
              for r in records]
    scores = score_groups(model, groups, tok.pad_token_id)
    sd = statistics.pstdev(x for s in scores for x in s) or 1.0
    return [[x / sd for x in s] for s in scores]


def row(name: str, records: list[dict], scores: list[list[float]], facts: dict) -> str:
    pairs, pair_scores = [], []
    for r, s in zip(records, scores, strict=True):
        for i, j in combinations(range(len(s)), 2):       # the labeler ranked i above j
            pairs.append((facts[r["prompt"]], r["completions"][i], r["completions"][j]))
            pair_scores.append((s[i], s[j]))
    rep = reward_model_report(pairs, pair_scores)
    cells = [f"{rep['accuracy_vs_labels']:.3f}", f"{rep['accuracy_vs_gold']:.3f}"]
    for d in DIFFERENCES:
        c = rep["accuracy_vs_gold_by_difference"][d]
        cells.append("n/a" if c["accuracy"] is None else f"{c['accuracy']:.3f} ({c['n']})")
    return "| " + " | ".join([name, *cells]) + " |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("reward_models", nargs="+", help="reward-model directories (from `rlhfkit rm`)")
    ap.add_argument("--rankings", required=True, help="rankings JSONL of the built-in task")
    ap.add_argument("--skip", type=int, default=0, help="records to skip (those the models trained on)")
    ap.add_argument("--limit", type=int, default=0, help="records to use after skipping (0: all)")
    ap.add_argument("--ensemble", action="store_true", help="also the mean of the models' standardised scores")
    args = ap.parse_args()
    task = TaskConfig()
    facts = facts_by_prompt(task.seed, task.n_train, task.n_valid, task.n_test)
    with open(args.rankings) as f:
        records = [json.loads(line) for line in f][args.skip:]
    records = records[:args.limit] if args.limit else records
    unknown = [i for i, r in enumerate(records) if r["prompt"] not in facts]
    if unknown:
        raise SystemExit(f"{args.rankings}: record {args.skip + unknown[0] + 1}: prompt is not one of the "
                         f"built-in task's (world seed {task.seed})")
    print(f"{len(records)} rankings from {args.rankings} (after skipping {args.skip})\n")
    print("| reward model | vs labels | vs gold | " + " | ".join(f"vs gold: {d} (pairs)" for d in DIFFERENCES) + " |")
    print("|" + "---|" * (3 + len(DIFFERENCES)))
    all_scores = []
    for rm in args.reward_models:
        all_scores.append(model_scores(rm, records))
        print(row(rm, records, all_scores[-1], facts), flush=True)
    if args.ensemble and len(all_scores) > 1:
        mean = [[statistics.fmean(m[g][i] for m in all_scores) for i in range(len(all_scores[0][g]))]
                for g in range(len(records))]
        print(row(f"mean of the {len(all_scores)} above", records, mean, facts))


if __name__ == "__main__":
    main()
