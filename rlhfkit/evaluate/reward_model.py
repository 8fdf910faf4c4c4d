"""How good is a reward model: accuracy against labeler labels and against the gold judge (overall
and by what the two answers differ in), calibration, and its correlation with answer length."""
from __future__ import annotations

import math
import statistics

from rlhfkit.tasks.tldr.judge import Verdict, judge, words
from rlhfkit.tasks.tldr.world import Facts

# What two answers can differ in, as the gold judge sees it; a pair can fall under several
DIFFERENCES = ("contradiction", "coverage", "invention", "other")


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-max(min(x, 50), -50)))


def reward_model_report(pairs: list[tuple[Facts, str, str]], rm_scores: list[tuple[float, float]]) -> dict:
    """pairs: (the post's facts, labeler's chosen, labeler's rejected); rm_scores: the RM's (chosen, rejected)."""
    vs_labels, vs_gold, lengths, rewards = [], [], [], []
    by_difference: dict[str, list[float]] = {d: [] for d in DIFFERENCES}
    for (facts, chosen, rejected), (rc, rr) in zip(pairs, rm_scores, strict=True):
        vs_labels.append(1.0 if rc > rr else 0.5 if rc == rr else 0.0)
        vc, vr = judge(chosen, facts), judge(rejected, facts)
        if vc.score != vr.score:
            hit = 1.0 if (rc > rr) == (vc.score > vr.score) else 0.0
            vs_gold.append(hit)
            for d in differences(vc, vr):
                by_difference[d].append(hit)
        lengths += [len(words(chosen)), len(words(rejected))]
        rewards += [rc, rr]
    return {
        "accuracy_vs_labels": statistics.fmean(vs_labels),
        "accuracy_vs_gold": statistics.fmean(vs_gold) if vs_gold else None,
        "accuracy_vs_gold_by_difference": {d: {"accuracy": statistics.fmean(h) if h else None, "n": len(h)}
                                           for d, h in by_difference.items()},
        "length_correlation": _pearson(lengths, rewards),
        "calibration": _calibration(rm_scores),
        "n_pairs": len(pairs),
    }


def differences(a: Verdict, b: Verdict) -> list[str]:
    """What the gold judge sees differ between two answers: contradictions, coverage of the key
    events, inventions, or (none of those) only the rest of the score (people, length, filler...)."""
    found = [name for name, differ in (("contradiction", a.contradictions != b.contradictions),
                                       ("coverage", a.coverage != b.coverage),
                                       ("invention", a.inventions != b.inventions)) if differ]
    return found or ["other"]


def merge_by_difference(reports: list[dict]) -> dict:
    """Seeds' accuracy-by-difference tables as one: accuracies weighted by their pair counts."""
    out = {}
    for d in DIFFERENCES:
        cells = [r[d] for r in reports if r[d]["n"]]
        n = sum(c["n"] for c in cells)
        out[d] = {"accuracy": sum(c["accuracy"] * c["n"] for c in cells) / n if n else None, "n": n}
    return out


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
