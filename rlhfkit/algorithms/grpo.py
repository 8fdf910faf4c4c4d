"""GRPO (Shao et al. 2024, DeepSeekMath): group-normalised advantages, KL as a loss term.

    A_i = (score_i - mean(group)) / (std(group) + eps), the same for every token of sample i
    loss = clipped surrogate + beta * k3(pi, pi_ref), averaged per sequence, then over the batch

No value model and no KL in the reward. Samples of one prompt are consecutive (B = n_prompts * k).
"""
from __future__ import annotations

import torch

from rlhfkit.algorithms.stats import kl_k3, masked_mean


def advantages(scores: torch.Tensor, mask: torch.Tensor, k: int, eps: float = 1e-4) -> torch.Tensor:
    if k < 2:
        raise ValueError("GRPO needs k >= 2 samples per prompt")
    g = scores.view(-1, k)
    a = (g - g.mean(dim=1, keepdim=True)) / (g.std(dim=1, keepdim=True) + eps)
    return a.reshape(-1, 1) * mask


def loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, ref_logprobs: torch.Tensor, adv: torch.Tensor,
         mask: torch.Tensor, beta: float, clip: float = 0.2) -> tuple[torch.Tensor, dict[str, float]]:
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    pg = torch.max(-adv * ratio, -adv * ratio.clamp(1 - clip, 1 + clip))
    kl = kl_k3(logprobs, ref_logprobs)
    per_seq = masked_mean(pg + beta * kl, mask, dim=1)          # each sequence weighs the same
    total = per_seq.mean()
    with torch.no_grad():
        stats = {"pg_loss": masked_mean(pg, mask).item(), "kl_k3": masked_mean(kl, mask).item(),
                 "clipfrac": masked_mean(((ratio - 1).abs() > clip).float(), mask).item(),
                 "approx_kl": masked_mean(0.5 * log_ratio ** 2, mask).item()}
    return total, stats
