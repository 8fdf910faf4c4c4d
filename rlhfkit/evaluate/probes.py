"""Measurements behind the report's "Why RL" section that need models and the gold judge.

- negation_probe: a faithful TL;DR, the same facts reworded (same meaning, other words) and the
  faithful wording with one event's polarity flipped (one "not" added or removed: opposite
  meaning, nearly the same tokens), seen by three scorers: the SFT model's per-token
  cross-entropy (what SL optimises), the gold judge, and the reward model (a sequence-level
  reward). A scorer that reads meaning ranks the rewording above the flip.
- best_of_n_curve: gold score of best-of-m for m = 1, 2, 4, ... n, read off the same candidates,
  at the analytic KL log m - (m-1)/m.
- fit_gao: Gao et al. 2022's functional forms of gold reward against d = sqrt(KL), by least squares:
  best-of-n R = d (alpha - beta d); RL R = d (alpha - beta log d), with R the gain over d = 0.
"""
from __future__ import annotations

import math
import random
import statistics

import torch

from rlhfkit.algorithms.best_of_n import analytic_kl, select
from rlhfkit.data.collate import IGNORE, encode_demonstration, pad_batch
from rlhfkit.data.records import Demonstration
from rlhfkit.models.heads import sequence_rewards
from rlhfkit.models.lm import context_length
from rlhfkit.tasks.tldr.judge import gold_score
from rlhfkit.tasks.tldr.world import Post
from rlhfkit.tasks.tldr.writers import flip_one, oracle_summary, render
from rlhfkit.train.preference import sequence_logprobs


def probe_texts(posts: list[Post], seed: int) -> list[tuple[str, str, str]]:
    """(faithful, reworded, flipped) TL;DRs per post: the canonical faithful TL;DR; the same facts in
    other words (same meaning); the canonical wording with one event's polarity flipped."""
    rng = random.Random(f"negation-{seed}")
    out = []
    for p in posts:
        faithful = oracle_summary(p.facts)
        reworded = render(p.facts, list(p.facts.events), rng, feeling=True, question=True)
        flipped = render(p.facts, flip_one(p.facts, rng), None, feeling=True, question=True)
        out.append((faithful, reworded, flipped))
    return out


def _scorer(faithful: list[float], reworded: list[float], flipped: list[float], higher_is_better: bool) -> dict:
    """How a scorer sees the two edits: mean change from the faithful TL;DR, each edit's effect in units
    of the scorer's spread over faithful TL;DRs, and how often it ranks the reworded (same meaning)
    above the flipped (one word, opposite meaning) TL;DR."""
    sign = 1.0 if higher_is_better else -1.0
    spread = statistics.stdev(faithful) if len(faithful) > 1 else 0.0

    def effect(edited: list[float]) -> float:
        return statistics.fmean(sign * (f - e) for f, e in zip(faithful, edited)) / spread if spread > 0 else 0.0
    ranks = [1.0 if sign * (r - f) > 0 else 0.5 if r == f else 0.0 for r, f in zip(reworded, flipped)]
    return {"faithful_mean": statistics.fmean(faithful), "reworded_mean": statistics.fmean(reworded),
            "flipped_mean": statistics.fmean(flipped),
            "flip_change": statistics.fmean(flipped) - statistics.fmean(faithful),
            "flip_effect": effect(flipped), "reword_effect": effect(reworded),
            "prefers_reworded_to_flipped": statistics.fmean(ranks)}


@torch.no_grad()
def negation_probe(sft_model, tokenizer, reward_model, posts: list[Post], seed: int) -> dict:
    triples = probe_texts(posts, seed)
    max_len = context_length(sft_model)
    texts = [t for triple in triples for t in triple]
    prompts = [p.prompt for p in posts for _ in range(3)]
    examples = [encode_demonstration(Demonstration(p, t), tokenizer, max_len) for p, t in zip(prompts, texts)]
    ce, rm = [], []
    for i in range(0, len(examples), 60):
        chunk = examples[i:i + 60]
        logp, n = sequence_logprobs(sft_model.eval(), chunk, tokenizer.pad_token_id)
        ce += (-logp / n).tolist()
        batch = pad_batch(chunk, tokenizer.pad_token_id)
        rm += sequence_rewards(reward_model, batch["input_ids"], batch["attention_mask"],
                               batch["labels"] != IGNORE).tolist()
    gold = [gold_score(t, p.facts) for p, triple in zip(posts, triples) for t in triple]
    split = lambda xs: (xs[0::3], xs[1::3], xs[2::3])  # noqa: E731
    ce_view = _scorer(*split(ce), higher_is_better=False)
    ce_view["flip_relative_change"] = ce_view["flip_change"] / ce_view["faithful_mean"]
    return {"posts": len(posts), "example": dict(zip(("faithful", "reworded", "flipped"), triples[0])),
            "token_cross_entropy": ce_view,
            "gold_score": _scorer(*split(gold), higher_is_better=True),
            "reward_model": _scorer(*split(rm), higher_is_better=True)}


def best_of_n_curve(records: list[dict], posts: list[Post]) -> list[dict]:
    """Gold score of best-of-m for m = 1, 2, 4, ..., n over `rlhfkit bon` records (SFT samples,
    aligned with posts): `gold` when the reward model picks (what best-of-n buys), `gold_selected`
    when the gold judge itself picks (the selection ceiling: what picking among m samples can reach
    at the same KL)."""
    n = len(records[0]["candidates"])
    golds = [[gold_score(c, p.facts) for c in r["candidates"]] for r, p in zip(records, posts)]
    curve, m = [], 1
    while m <= n:
        best = select(torch.tensor([r["scores"][:m] for r in records])).tolist()
        curve.append({"n": m, "kl": analytic_kl(m), "gold": statistics.fmean(g[b] for g, b in zip(golds, best)),
                      "gold_selected": statistics.fmean(max(g[:m]) for g in golds)})
        m *= 2
    return curve


def oracle_share(records: list[dict], posts: list[Post]) -> float:
    """Share of the SFT samples (every candidate of `rlhfkit bon` records, aligned with posts) whose
    gold score reaches the oracle summary's: how rare the world's optimum is under SFT."""
    best = [gold_score(oracle_summary(p.facts), p.facts) for p in posts]
    hits = [gold_score(c, p.facts) >= top for r, p, top in zip(records, posts, best, strict=True)
            for c in r["candidates"]]
    return statistics.fmean(hits)


def gao_penalty(form: str):
    """g(d) of Gao et al.'s R(d) = alpha d - beta g(d): d^2 for best-of-n ('bon'), d log d for RL ('rl')."""
    return (lambda d: d * d) if form == "bon" else (lambda d: d * math.log(d))


def fit_gao(points: list[tuple[float, float]], form: str) -> dict:
    """Least-squares alpha, beta of R(d) = alpha d - beta g(d) through (KL, gain) points;
    g(d) = d^2 for best-of-n ('bon'), d log d for RL ('rl'). Also R^2."""
    rows = [(math.sqrt(max(kl, 0.0)), r) for kl, r in points if kl > 0]
    if len(rows) < 2:
        return {"alpha": None, "beta": None, "r2": None, "points": len(rows)}
    g = gao_penalty(form)
    # normal equations of R = alpha * d + (-beta) * g(d), no intercept (R(0) = 0)
    a11 = sum(d * d for d, _ in rows)
    a12 = sum(d * g(d) for d, _ in rows)
    a22 = sum(g(d) ** 2 for d, _ in rows)
    b1 = sum(d * r for d, r in rows)
    b2 = sum(g(d) * r for d, r in rows)
    det = a11 * a22 - a12 * a12
    if abs(det) < 1e-12:
        return {"alpha": None, "beta": None, "r2": None, "points": len(rows)}
    alpha, minus_beta = (b1 * a22 - b2 * a12) / det, (a11 * b2 - a12 * b1) / det
    mean_r = statistics.fmean(r for _, r in rows)
    ss_tot = sum((r - mean_r) ** 2 for _, r in rows)
    ss_res = sum((r - alpha * d - minus_beta * g(d)) ** 2 for d, r in rows)
    return {"alpha": alpha, "beta": -minus_beta, "r2": 1 - ss_res / ss_tot if ss_tot > 0 else None,
            "points": len(rows)}
