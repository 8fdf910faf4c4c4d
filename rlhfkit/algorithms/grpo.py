"""GRPO (Shao et al. 2024, DeepSeekMath): group-normalised advantages, KL as a loss term.

    A_i = (score_i - mean(group)) / (std(group) + eps), the same for every token of sample i
    loss = clipped surrogate + beta * k3(pi, pi_ref), averaged per sequence, then over the batch

No value model and no KL in the reward. Samples of one prompt are consecutive (B = n_prompts * k).
"""
from __future__ import annotations

from dataclasses import replace

import torch


from rlhfkit.algorithms.stats import clipped_surrogate, kl_k3, masked_mean
from rlhfkit.rollout.types import Experience


def group_normalised(scores: torch.Tensor, mask: torch.Tensor, k: int, eps: float = 1e-4) -> torch.Tensor:
    """(score - group mean) / (group std + eps), (B,) broadcast to (B, R) over action tokens."""
    if k < 2:
        raise ValueError("GRPO needs k >= 2 samples per prompt")
    g = scores.view(-1, k)
    a = (g - g.mean(dim=1, keepdim=True)) / (g.std(dim=1, keepdim=True) + eps)
    return a.reshape(-1, 1) * mask


def clipped_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, ref_logprobs: torch.Tensor, adv: torch.Tensor,
                 mask: torch.Tensor, beta: float, clip: float = 0.2) -> tuple[torch.Tensor, dict[str, float]]:
    pg, stats = clipped_surrogate(logprobs, old_logprobs, adv, mask, clip)
    kl = kl_k3(logprobs, ref_logprobs)
    per_seq = masked_mean(pg + beta * kl, mask, dim=1)          # each sequence weighs the same
    with torch.no_grad():
        stats.update(pg_loss=masked_mean(pg, mask).item(), kl_k3=masked_mean(kl, mask).item())
    return per_seq.mean(), stats


# ---- the registry's entry points --------------------------------------------------------------
def advantages(exp: Experience, beta: float, hp, own) -> Experience:
    return replace(exp, advantages=group_normalised(exp.episode_returns, exp.action_mask, hp.k, own.eps))


def loss(exp: Experience, logprobs: torch.Tensor, values: torch.Tensor | None, beta: float, hp,
         own) -> tuple[torch.Tensor, dict[str, float]]:
    return clipped_loss(logprobs, exp.logprobs, exp.ref_logprobs, exp.advantages, exp.action_mask, beta, hp.clip)


def units(exp: Experience, hp=None, own=None) -> float:
    """The loss is a mean over sequences."""
    return float(exp.action_mask.size(0))
