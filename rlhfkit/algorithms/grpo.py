"""GRPO (Shao et al. 2024, DeepSeekMath): group-normalised advantages, KL as a loss term.

    A_i = (score_i - mean(group)) / (std(group) + eps), the same for every token of sample i
    loss = clipped surrogate + beta * k3(pi, pi_ref), averaged per sequence, then over the batch

No value model and no KL in the reward. Samples of one prompt are consecutive (B = n_prompts * k).

The loss options of its later variants, chosen in the `grpo` config section:
    scale_advantages false        Dr.GRPO (Liu et al. 2025): A_i = score_i - mean(group)
    loss_agg token_mean           DAPO (Yu et al. 2025): every action token of the batch weighs the same
    loss_agg seq_mean_token_sum_norm   Dr.GRPO: each sequence's token sum over a constant length
    clip_high                     DAPO's clip-higher: the ratio clipped to [1 - clip, 1 + clip_high]
    importance_level sequence     GSPO (Zheng et al. 2025): one ratio per answer
"""
from __future__ import annotations

from dataclasses import replace

import torch

from rlhfkit.algorithms.stats import clipped_surrogate, kl_k3, masked_mean
from rlhfkit.config.sections import GRPOOptions
from rlhfkit.rollout.types import Experience


def group_normalised(scores: torch.Tensor, mask: torch.Tensor, k: int, eps: float = 1e-4,
                     scale: bool = True) -> torch.Tensor:
    """(score - group mean) / (group std + eps), or without the division (`scale` false), (B,)
    broadcast to (B, R) over action tokens."""
    if k < 2:
        raise ValueError("GRPO needs k >= 2 samples per prompt")
    g = scores.view(-1, k)
    a = g - g.mean(dim=1, keepdim=True)
    if scale:
        a = a / (g.std(dim=1, keepdim=True) + eps)
    return a.reshape(-1, 1) * mask


def aggregate(per_token: torch.Tensor, mask: torch.Tensor, mode: str, norm_length: int = 0) -> torch.Tensor:
    """The batch's loss from per-token losses (B, R), by `GRPOOptions.loss_agg`."""
    if mode == "token_mean":
        return masked_mean(per_token, mask)
    if mode == "seq_mean_token_sum_norm":
        return ((per_token * mask).sum(dim=1) / (norm_length or mask.size(1))).mean()
    return masked_mean(per_token, mask, dim=1).mean()        # each sequence weighs the same


def clipped_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, ref_logprobs: torch.Tensor, adv: torch.Tensor,
                 mask: torch.Tensor, beta: float, clip: float = 0.2,
                 own: GRPOOptions | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    own = own or GRPOOptions()
    pg, stats = clipped_surrogate(logprobs, old_logprobs, adv, mask, clip, own.clip_high or clip,
                                  own.importance_level)
    kl = kl_k3(logprobs, ref_logprobs)
    with torch.no_grad():
        stats.update(pg_loss=masked_mean(pg, mask).item(), kl_k3=masked_mean(kl, mask).item())
    return aggregate(pg + beta * kl, mask, own.loss_agg, own.norm_length), stats


# ---- the registry's entry points --------------------------------------------------------------
def advantages(exp: Experience, beta: float, hp, own) -> Experience:
    return replace(exp, advantages=group_normalised(exp.episode_returns, exp.action_mask, hp.k, own.eps,
                                                    own.scale_advantages))


def loss(exp: Experience, logprobs: torch.Tensor, values: torch.Tensor | None, beta: float, hp,
         own) -> tuple[torch.Tensor, dict[str, float]]:
    return clipped_loss(logprobs, exp.logprobs, exp.ref_logprobs, exp.advantages, exp.action_mask, beta, hp.clip, own)


def units(exp: Experience, hp=None, own=None) -> float:
    """What the loss averages over: action tokens (token_mean), else sequences."""
    if own is not None and own.loss_agg == "token_mean":
        return float(exp.action_mask.sum())
    return float(exp.action_mask.size(0))
