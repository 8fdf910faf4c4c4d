"""Win rates with bootstrap confidence intervals, and per-failure rates.

Pure functions over lists of numbers: no models, no judge.
"""
from __future__ import annotations

import random
import statistics


def win_outcomes(scores: list[float], reference_scores: list[float]) -> list[float]:
    """Per prompt: 1 if the answer beats the reference, 0.5 on a tie, 0 if it loses."""
    return [1.0 if s > r else 0.5 if s == r else 0.0 for s, r in zip(scores, reference_scores, strict=True)]


def bootstrap_ci(values: list[float], n_resamples: int = 2000, seed: int = 0, level: float = 0.95) -> dict:
    """Mean with a percentile bootstrap CI over the items (prompts)."""
    if not values:
        raise ValueError("bootstrap_ci: no values")
    rng = random.Random(seed)
    n = len(values)
    means = sorted(statistics.fmean(rng.choices(values, k=n)) for _ in range(n_resamples))
    lo = means[int((1 - level) / 2 * n_resamples)]
    hi = means[min(n_resamples - 1, int((1 + level) / 2 * n_resamples))]
    return {"mean": statistics.fmean(values), "ci_low": lo, "ci_high": hi}


def rate(flags: list[bool]) -> float:
    return sum(flags) / len(flags) if flags else 0.0


# two-sided 95% Student-t critical values by degrees of freedom
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}


def seed_interval(values: list[float]) -> dict:
    """Mean over training seeds with a 95% t-interval (the seeds are few, so not a bootstrap)."""
    if len(values) < 2:
        raise ValueError("seed_interval needs at least 2 seeds")
    mean = statistics.fmean(values)
    half = _T975.get(len(values) - 1, 1.96) * statistics.stdev(values) / len(values) ** 0.5
    return {"mean": mean, "ci_low": mean - half, "ci_high": mean + half}
