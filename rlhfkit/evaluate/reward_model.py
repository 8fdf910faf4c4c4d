"""How good is a reward model: accuracy against labeler labels and against the gold judge,
calibration, and its correlation with answer length."""
from __future__ import annotations

import math
import statistics

from rlhfkit.tasks.tldr.judge import gold_score, words
from rlhfkit.tasks.tldr.world import Post


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-max(min(x, 50), -50)))


def reward_model_report(pairs: list[tuple[Post, str, str]], rm_scores: list[tuple[float, float]]) -> dict:
    """pairs: (post, labeler's chosen, labeler's rejected); rm_scores: the RM's (chosen, rejected)."""
    vs_labels, vs_gold, lengths, rewards = [], [], [], []
    for (post, chosen, rejected), (rc, rr) in zip(pairs, rm_scores, strict=True):
        vs_labels.append(1.0 if rc > rr else 0.5 if rc == rr else 0.0)
        gc, gr = gold_score(chosen, post.facts), gold_score(rejected, post.facts)
        if gc != gr:
            vs_gold.append(1.0 if (rc > rr) == (gc > gr) else 0.0)
        lengths += [len(words(chosen)), len(words(rejected))]
        rewards += [rc, rr]
    return {
        "accuracy_vs_labels": statistics.fmean(vs_labels),
        "accuracy_vs_gold": statistics.fmean(vs_gold) if vs_gold else None,
        "length_correlation": _pearson(lengths, rewards),
        "calibration": _calibration(rm_scores),
        "n_pairs": len(pairs),
    }


def _calibration(rm_scores: list[tuple[float, float]]) -> list[dict]:
    """Predicted P(first answer wins) vs the observed share of labels agreeing, in 5 bins.
    Each pair is seen both ways round, so the bins cover 0..1 symmetrically."""
    bins: list[list[float]] = [[] for _ in range(5)]
    preds: list[list[float]] = [[] for _ in range(5)]
    for rc, rr in rm_scores:
        for diff, label in ((rc - rr, 1.0), (rr - rc, 0.0)):
            p = _sigmoid(diff)
            b = min(4, int(p * 5))
            bins[b].append(label)
            preds[b].append(p)
    return [{"predicted": statistics.fmean(p), "observed": statistics.fmean(o), "n": len(o)}
            for p, o in zip(preds, bins) if o]


def _pearson(x: list[float], y: list[float]) -> float | None:
    if len(x) < 3 or statistics.pstdev(x) == 0 or statistics.pstdev(y) == 0:
        return None
    return statistics.correlation(x, y)
