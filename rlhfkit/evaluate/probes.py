"""Measurements behind the report's "Why RL" section that need models and the gold judge.

- negation_probe: a good TL;DR and the same TL;DR with one event's polarity flipped (one "not"
  added or removed), seen by three scorers: the SFT model's per-token cross-entropy (what SL
  optimises), the gold judge, and the reward model (a sequence-level reward).
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
from rlhfkit.data.collate import encode_demonstration, pad_batch
from rlhfkit.data.records import Demonstration
from rlhfkit.models.heads import sequence_rewards
from rlhfkit.models.lm import context_length
from rlhfkit.tasks.tldr.judge import gold_score
from rlhfkit.tasks.tldr.world import Post
from rlhfkit.tasks.tldr.writers import flip_one, oracle_summary, render
from rlhfkit.train.preference import sequence_logprobs


def flipped_pairs(posts: list[Post], seed: int) -> list[tuple[str, str]]:
    """(faithful TL;DR, the same with one polarity flipped) per post, in the canonical wording."""
    rng = random.Random(f"negation-{seed}")
    return [(oracle_summary(p.facts), render(p.facts, flip_one(p.facts, rng), None, feeling=True, question=True))
            for p in posts]


def _effect(original: list[float], flipped: list[float], higher_is_better: bool) -> dict:
    """How far a scorer moves toward the faithful answer, in its own units and in its own spread."""
    sign = 1.0 if higher_is_better else -1.0
    gains = [sign * (o - f) for o, f in zip(original, flipped, strict=True)]
    spread = statistics.stdev(original) if len(original) > 1 else 0.0
    return {"original_mean": statistics.fmean(original), "flipped_mean": statistics.fmean(flipped),
            "change": statistics.fmean(flipped) - statistics.fmean(original),
            "effect_size": statistics.fmean(gains) / spread if spread > 0 else 0.0,
            "prefers_original": statistics.fmean(1.0 if g > 0 else 0.5 if g == 0 else 0.0 for g in gains)}


@torch.no_grad()
def negation_probe(sft_model, tokenizer, reward_model, posts: list[Post], seed: int) -> dict:
    pairs = flipped_pairs(posts, seed)
    max_len = context_length(sft_model)
    texts = [t for pair in pairs for t in pair]
    prompts = [p.prompt for p in posts for _ in range(2)]
    examples = [encode_demonstration(Demonstration(p, t), tokenizer, max_len) for p, t in zip(prompts, texts)]
    ce, rm = [], []
    for i in range(0, len(examples), 64):
        chunk = examples[i:i + 64]
        logp, n = sequence_logprobs(sft_model.eval(), chunk, tokenizer.pad_token_id)
        ce += (-logp / n).tolist()
        batch = pad_batch(chunk, tokenizer.pad_token_id)
        rm += sequence_rewards(reward_model, batch["input_ids"], batch["attention_mask"]).tolist()
    gold = [gold_score(t, p.facts) for p, pair in zip(posts, pairs) for t in pair]
    ce_effect = _effect(ce[0::2], ce[1::2], higher_is_better=False)
    ce_effect["relative_change"] = ce_effect["change"] / ce_effect["original_mean"]
    return {"pairs": len(pairs), "example": {"original": pairs[0][0], "flipped": pairs[0][1]},
            "token_cross_entropy": ce_effect,
            "gold_score": _effect(gold[0::2], gold[1::2], higher_is_better=True),
            "reward_model": _effect(rm[0::2], rm[1::2], higher_is_better=True)}


def best_of_n_curve(records: list[dict], posts: list[Post]) -> list[dict]:
    """Gold of best-of-m for m = 1, 2, 4, ..., n over `rlhfkit bon` records (aligned with posts)."""
    n = len(records[0]["candidates"])
    curve, m = [], 1
    while m <= n:
        scores = torch.tensor([r["scores"][:m] for r in records])
        best = select(scores).tolist()
        gold = statistics.fmean(gold_score(r["candidates"][b], p.facts) for r, b, p in zip(records, best, posts))
        curve.append({"n": m, "kl": analytic_kl(m), "gold": gold})
        m *= 2
    return curve


def fit_gao(points: list[tuple[float, float]], form: str) -> dict:
    """Least-squares alpha, beta of R(d) = alpha d - beta g(d) through (KL, gain) points;
    g(d) = d^2 for best-of-n ('bon'), d log d for RL ('rl'). Also R^2."""
    rows = [(math.sqrt(max(kl, 0.0)), r) for kl, r in points if kl > 0]
    if len(rows) < 2:
        return {"alpha": None, "beta": None, "r2": None, "points": len(rows)}
    g = (lambda d: d * d) if form == "bon" else (lambda d: d * math.log(d))
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
