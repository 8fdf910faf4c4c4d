"""`rlhfkit data tldr`: write the world's data sets as JSONL, or print its statistics.

Files written into --out (common formats, so any trainer can read them):
- prompts_{train,valid,test}.jsonl  {"id", "prompt"}; test rows also carry "reference"
- sft_{train,valid}.jsonl           {"prompt", "completion"}         (demonstrations)
- comparisons.jsonl                 {"prompt", "chosen", "rejected", "labeler"}
- rankings.jsonl                    {"prompt", "completions": [best, ..., worst], "labeler"}

Comparisons and rankings rank reference TL;DRs of training posts by the simulated labelers.

    rlhfkit data tldr --out runs/data
    rlhfkit data tldr --stats --json
"""
from __future__ import annotations

import json
import random
import statistics
from pathlib import Path

from rlhfkit.config import DataTldrConfig
from rlhfkit.data.records import write_jsonl
from rlhfkit.tasks.tldr.judge import gold_score
from rlhfkit.tasks.tldr.labelers import LABELERS, prefers_first, rank
from rlhfkit.tasks.tldr.world import make_split
from rlhfkit.tasks.tldr.writers import flip_one, oracle_summary, reference_summary, render


def stats(seed: int, n: int, writers: str = "") -> dict:
    """Labeler agreement on random reference pairs, oracle win rate, and how often a flipped
    polarity loses. Gold ties are left out of labeler-gold agreement (gold has no preference)."""
    rng = random.Random(f"stats-{seed}")
    gold_agree, pair_agree, oracle_wins, flip_loses = [], [], [], []
    for post in make_split(seed, "valid", n):
        facts = post.facts
        a, b = reference_summary(post, seed, 1, writers)[1], reference_summary(post, seed, 2, writers)[1]
        sa, sb = gold_score(a, facts), gold_score(b, facts)
        first, second = rng.sample(LABELERS, 2)
        x, y = prefers_first(first, a, b, facts, rng), prefers_first(second, a, b, facts, rng)
        if sa != sb:
            gold_agree.append(x == (sa > sb))
        pair_agree.append(x == y)
        oracle = gold_score(oracle_summary(facts), facts)
        reference = gold_score(reference_summary(post, seed, writers=writers)[1], facts)
        oracle_wins.append(1.0 if oracle > reference else 0.5 if oracle == reference else 0.0)
        flipped = render(facts, flip_one(facts, rng), None, feeling=True, question=True)
        flip_loses.append(gold_score(flipped, facts) < oracle)
    return {"labeler_gold_agreement": statistics.fmean(gold_agree),
            "labeler_labeler_agreement": statistics.fmean(pair_agree),
            "oracle_winrate_vs_reference": statistics.fmean(oracle_wins),
            "flip_loses_rate": statistics.fmean(flip_loses),
            "n_pairs": n, "seed": seed}


def write_all(cfg: DataTldrConfig) -> dict:
    out, seed, task = Path(cfg.out), cfg.task.seed, cfg.task
    out.mkdir(parents=True, exist_ok=True)
    splits = {"train": make_split(seed, "train", task.n_train), "valid": make_split(seed, "valid", task.n_valid),
              "test": make_split(seed, "test", task.n_test)}
    for split, posts in splits.items():
        rows = [{"id": p.id, "prompt": p.prompt} for p in posts]
        if split == "test":
            rows = [{**r, "reference": reference_summary(p, seed, writers=task.writers)[1]}
                    for r, p in zip(rows, posts)]
        write_jsonl(out / f"prompts_{split}.jsonl", rows)
    for split in ("train", "valid"):
        write_jsonl(out / f"sft_{split}.jsonl",
                    [{"prompt": p.prompt, "completion": reference_summary(p, seed, writers=task.writers)[1]}
                     for p in splits[split]])
    rng = random.Random(f"labels-{seed}")
    comparisons, rankings = [], []
    for post in splits["train"]:
        labeler = rng.choice(LABELERS)
        answers = [reference_summary(post, seed, slot, task.writers)[1] for slot in range(1, cfg.k + 1)]
        # the pair is the first answer and the next one that differs from it (a pair of twins holds no
        # preference); every post draws the same labels either way
        pair = [answers[0], next((a for a in answers[1:] if a != answers[0]), answers[1])]
        order = rank(labeler, pair, post.facts, rng)
        if pair[0] != pair[1]:
            comparisons.append({"prompt": post.prompt, "chosen": pair[order[0]], "rejected": pair[order[1]],
                                "labeler": labeler.name})
        order = rank(labeler, answers, post.facts, rng)
        rankings.append({"prompt": post.prompt, "completions": [answers[i] for i in order], "labeler": labeler.name})
    write_jsonl(out / "comparisons.jsonl", comparisons)
    write_jsonl(out / "rankings.jsonl", rankings)
    return {"out": str(out), "files": sorted(p.name for p in out.glob("*.jsonl"))}


def run(cfg: DataTldrConfig) -> dict:
    cfg.validate()
    if cfg.stats:
        result = stats(cfg.task.seed, cfg.task.n_stats, cfg.task.writers)
        if cfg.json:
            print(json.dumps(result))
        return result
    return write_all(cfg)
