"""REINFORCE++ (Hu 2025): PPO's per-token KL reward and clipped surrogate, without a critic.

    rewards:    r_t = -beta * (log pi(a_t) - log pi_ref(a_t)),  plus the score on the last token
    advantages: the return to go G_t = sum over action tokens s >= t of r_s (gamma = 1), whitened
                over every action token of the batch: the batch mean is the baseline
    loss:       the clipped surrogate, averaged over action tokens

One answer per prompt, as PPO; the global-batch baseline replaces the value model, so nothing
but the policy is trained.
"""
from __future__ import annotations

from dataclasses import replace

import torch

from rlhfkit.algorithms.stats import action_tokens, clipped_pg_loss, kl_penalised_rewards, whiten
from rlhfkit.rollout.types import Experience


def returns_to_go(rewards: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """sum_{s >= t} r_s over action tokens, (B, R), 0 off the mask (a hole's reward never counts)."""
    r = rewards * mask
    return (r.flip(1).cumsum(1).flip(1)) * mask


# ---- the registry's entry points --------------------------------------------------------------
def advantages(exp: Experience, beta: float, hp, own=None) -> Experience:
    rewards = kl_penalised_rewards(exp.logprobs, exp.ref_logprobs, exp.rewards, exp.action_mask, beta,
                                   hp.whiten_rewards)
    return replace(exp, advantages=whiten(returns_to_go(rewards, exp.action_mask), exp.action_mask))


def loss(exp: Experience, logprobs: torch.Tensor, values: torch.Tensor | None, beta: float, hp,
         own=None) -> tuple[torch.Tensor, dict[str, float]]:
    return clipped_pg_loss(logprobs, exp.logprobs, exp.advantages, exp.action_mask, hp.clip)


units = action_tokens     # the loss is a mean over action tokens
