"""Best-of-n: keep the answer the reward model scores highest among n samples.

Its KL to the sampling policy has a closed form (Stiennon et al. 2020, appendix G.3; exact
for continuous scores without ties): KL(best-of-n || pi) = log n - (n - 1) / n.
"""
from __future__ import annotations

import math

import torch


def select(scores: torch.Tensor) -> torch.Tensor:
    """scores (B, n) -> (B,) index of the best answer per prompt (the first on ties)."""
    return scores.argmax(dim=1)


def analytic_kl(n: int) -> float:
    if n < 1:
        raise ValueError(f"best-of-n needs n >= 1, got {n}")
    return math.log(n) - (n - 1) / n
