"""Direct preference losses on (chosen, rejected) pairs, from sequence log-probs.

    h = [log pi(y_w) - log pi_ref(y_w)] - [log pi(y_l) - log pi_ref(y_l)]
    dpo: -log sigmoid(beta * h)               (Rafailov et al. 2023, eq. 7)
    ipo: (h - 1 / (2 * beta))^2               (Azar et al. 2023, eq. 17)

Log-probs are sums over the answer's tokens (EOS included), as in both papers. The implicit
reward of an answer is beta * (log pi - log pi_ref); at pi == pi_ref the DPO loss is log 2.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

LOSSES = ("dpo", "ipo")


def loss(chosen: torch.Tensor, rejected: torch.Tensor, ref_chosen: torch.Tensor, ref_rejected: torch.Tensor,
         beta: float, kind: str = "dpo", weights: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """All inputs (N,) sequence log-probs; weights (N,) (default 1). Weighted mean loss and stats."""
    h = (chosen - ref_chosen) - (rejected - ref_rejected)
    if kind == "dpo":
        per_pair = -F.logsigmoid(beta * h)
    elif kind == "ipo":
        per_pair = (h - 1 / (2 * beta)) ** 2
    else:
        raise ValueError(f"unknown preference loss {kind!r}; choose from {LOSSES}")
    weights = torch.ones_like(h) if weights is None else weights
    value = (per_pair * weights).sum() / weights.sum()
    with torch.no_grad():
        stats = {"loss": value.item(), "accuracy": ((h > 0).float() * weights).sum().item() / weights.sum().item(),
                 "margin": (beta * h).mean().item(),
                 "reward_chosen": (beta * (chosen - ref_chosen)).mean().item(),
                 "reward_rejected": (beta * (rejected - ref_rejected)).mean().item(),
                 "logp_chosen": chosen.mean().item()}
    return value, stats
