"""RLOO (Ahmadian et al. 2024): k samples per prompt, each baselined by the mean of the others.

The KL penalty is in the reward (sequence level): R_i = score_i - beta * sum_t KL_t. No value
model. The loss is the clipped policy surrogate with the sequence advantage on every token.
Rows are grouped: samples of one prompt are consecutive (B = n_prompts * k).
"""
from __future__ import annotations

import torch

from rlhfkit.algorithms.stats import masked_mean


def advantages(scores: torch.Tensor, logprobs: torch.Tensor, ref_logprobs: torch.Tensor, mask: torch.Tensor,
               k: int, beta: float) -> torch.Tensor:
    """Leave-one-out advantages, (B,) broadcast to (B, R) over real tokens."""
    if k < 2:
        raise ValueError("RLOO needs k >= 2 samples per prompt")
    kl = ((logprobs - ref_logprobs) * mask).sum(dim=1)
    r = (scores - beta * kl).view(-1, k)                        # (n_prompts, k)
    baseline = (r.sum(dim=1, keepdim=True) - r) / (k - 1)
    return (r - baseline).reshape(-1, 1) * mask


def loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor,
         clip: float = 0.2) -> tuple[torch.Tensor, dict[str, float]]:
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    pg = torch.max(-adv * ratio, -adv * ratio.clamp(1 - clip, 1 + clip))
    pg_loss = masked_mean(pg, mask)
    with torch.no_grad():
        stats = {"pg_loss": pg_loss.item(),
                 "clipfrac": masked_mean(((ratio - 1).abs() > clip).float(), mask).item(),
                 "approx_kl": masked_mean(0.5 * log_ratio ** 2, mask).item()}
    return pg_loss, stats
