"""SLiC-HF (Zhao et al. 2023, eq. 2-3): a rank-calibration hinge plus a cross-entropy regulariser.

    loss = max(0, delta - log pi(y_w|x) + log pi(y_l|x)) + lambda * (-log pi(y_reg|x) / |y_reg|)

Sequence log-probs are sums over tokens; the regulariser is the per-token cross-entropy of a
target answer. The paper regularises toward the SFT targets; rlhfkit uses the pair's chosen
answer, so the stage needs nothing beyond the comparisons (the same data DPO and the reward
model see).
"""
from __future__ import annotations

import torch


def loss(chosen: torch.Tensor, rejected: torch.Tensor, reg_nll: torch.Tensor, delta: float, reg_weight: float,
         weights: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """chosen, rejected: (N,) sequence log-probs; reg_nll: (N,) per-token NLL of the target."""
    hinge = torch.clamp(delta - (chosen - rejected), min=0)
    per_pair = hinge + reg_weight * reg_nll
    weights = torch.ones_like(per_pair) if weights is None else weights
    value = (per_pair * weights).sum() / weights.sum()
    with torch.no_grad():
        stats = {"loss": value.item(), "hinge": hinge.mean().item(), "reg_nll": reg_nll.mean().item(),
                 "accuracy": ((chosen > rejected).float() * weights).sum().item() / weights.sum().item()}
    return value, stats
