"""PPO for RLHF (Stiennon et al. 2020; Huang et al. 2024, "The N+ implementation details").

    rewards:    r_t = -beta * (log pi(a_t) - log pi_ref(a_t)),  plus the score on the last token
    advantages: GAE with gamma = 1, lambda = 0.95, then whitened over the batch
    loss:       clipped policy surrogate + vf_coef * clipped value loss

Tensors are (B, R) over response tokens; `mask` is 1 on action tokens (the policy's own, up to
and including the first EOS) and may have holes (another speaker's turn), which GAE skips.
"""
from __future__ import annotations

import torch

from rlhfkit.algorithms.stats import masked_mean, whiten


def rewards(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, scores: torch.Tensor, mask: torch.Tensor,
            beta: float) -> torch.Tensor:
    """Per-token KL penalty, with each sequence's score added at its last real token: (B, R)."""
    r = -beta * (logprobs - ref_logprobs) * mask
    last = (mask.cumsum(dim=1) == mask.sum(dim=1, keepdim=True)) & (mask > 0)   # one True per row
    return r + last * scores.unsqueeze(1)


def advantages(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0,
               lam: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE over action tokens (mask 1). Returns (whitened advantages, returns), each (B, R), 0 off
    the mask. A masked stretch (padding, or a user's turn between two of the policy's) is skipped:
    each action token bootstraps from the value at the next action token, the last one from 0."""
    next_value = torch.zeros_like(rewards[:, 0])   # V at the next action token of each row
    gae = torch.zeros_like(rewards[:, 0])
    adv = torch.zeros_like(rewards)
    for t in reversed(range(rewards.size(1))):
        act = mask[:, t] > 0
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        gae = torch.where(act, delta + gamma * lam * gae, gae)
        next_value = torch.where(act, values[:, t], next_value)
        adv[:, t] = gae * act
    returns = adv + values * mask
    return whiten(adv, mask), returns


def loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, adv: torch.Tensor, values: torch.Tensor,
         old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor, clip: float = 0.2,
         vf_clip: float = 0.2, vf_coef: float = 0.1) -> tuple[torch.Tensor, dict[str, float]]:
    """The PPO objective (to minimise) and its diagnostics."""
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    pg = torch.max(-adv * ratio, -adv * ratio.clamp(1 - clip, 1 + clip))
    pg_loss = masked_mean(pg, mask)
    v_clipped = old_values + (values - old_values).clamp(-vf_clip, vf_clip)
    vf = 0.5 * torch.max((values - returns) ** 2, (v_clipped - returns) ** 2)
    vf_loss = masked_mean(vf, mask)
    total = pg_loss + vf_coef * vf_loss
    with torch.no_grad():
        stats = {
            "pg_loss": pg_loss.item(), "vf_loss": vf_loss.item(),
            "clipfrac": masked_mean(((ratio - 1).abs() > clip).float(), mask).item(),
            "approx_kl": masked_mean(0.5 * log_ratio ** 2, mask).item(),
            "value_error": masked_mean((values - returns) ** 2, mask).item(),
        }
    return total, stats
