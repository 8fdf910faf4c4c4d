"""RLOO (Ahmadian et al. 2024): k samples per prompt, each baselined by the mean of the others.

The KL penalty is in the reward (sequence level): R_i = score_i - beta * sum_t KL_t. No value
model. The loss is the clipped policy surrogate with the sequence advantage on every token.
Rows are grouped: samples of one prompt are consecutive (B = n_prompts * k).
"""
from __future__ import annotations

from dataclasses import replace

import torch

from rlhfkit.algorithms.stats import action_tokens, clipped_pg_loss
from rlhfkit.rollout.types import Experience


def leave_one_out(scores: torch.Tensor, logprobs: torch.Tensor, ref_logprobs: torch.Tensor, mask: torch.Tensor,
                  k: int, beta: float) -> torch.Tensor:
    """Leave-one-out advantages, (B,) broadcast to (B, R) over action tokens."""
    if k < 2:
        raise ValueError("RLOO needs k >= 2 samples per prompt")
    kl = ((logprobs - ref_logprobs) * mask).sum(dim=1)
    r = (scores - beta * kl).view(-1, k)                        # (n_prompts, k)
    baseline = (r.sum(dim=1, keepdim=True) - r) / (k - 1)
    return (r - baseline).reshape(-1, 1) * mask


# ---- the registry's entry points --------------------------------------------------------------
def advantages(exp: Experience, beta: float, hp, own=None) -> Experience:
    return replace(exp, advantages=leave_one_out(exp.episode_returns, exp.logprobs, exp.ref_logprobs, exp.action_mask,
                                                 hp.k, beta))


def loss(exp: Experience, logprobs: torch.Tensor, values: torch.Tensor | None, beta: float, hp,
         own=None) -> tuple[torch.Tensor, dict[str, float]]:
    return clipped_pg_loss(logprobs, exp.logprobs, exp.advantages, exp.action_mask, hp.clip)


units = action_tokens     # the loss is a mean over action tokens
