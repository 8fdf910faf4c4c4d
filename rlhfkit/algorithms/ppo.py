"""PPO for RLHF (Stiennon et al. 2020; Huang et al. 2024, "The N+ implementation details").

    rewards:    r_t = -beta * (log pi(a_t) - log pi_ref(a_t)),  plus the score on the last token
    advantages: GAE with gamma = 1, lambda = 0.95, then whitened over the batch
    loss:       clipped policy surrogate + vf_coef * clipped value loss

Tensors are (B, R) over response tokens; `mask` is 1 on action tokens (the policy's own, up to
and including the first EOS) and may have holes (another speaker's turn), which GAE skips.
`advantages` and `loss` are the registry's entry points (`own`: its config section,
`config.sections.PPOOptions`, `--ppo.lam`); `gae` and `clipped_loss` the math.
"""
from __future__ import annotations

from dataclasses import replace

import torch


from rlhfkit.algorithms.stats import action_tokens, clipped_surrogate, kl_penalised_rewards, masked_mean, whiten
from rlhfkit.rollout.types import Experience


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0,
        lam: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE over action tokens (mask 1). Returns (whitened advantages, returns), each (B, R), 0 off
    the mask. A masked stretch (padding, or a user's turn between two of the policy's) is skipped:
    each action token bootstraps from the value at the next action token, the last one from 0."""
    next_value = torch.zeros_like(rewards[:, 0])   # V at the next action token of each row
    running = torch.zeros_like(rewards[:, 0])
    adv = torch.zeros_like(rewards)
    for t in reversed(range(rewards.size(1))):
        act = mask[:, t] > 0
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = torch.where(act, delta + gamma * lam * running, running)
        next_value = torch.where(act, values[:, t], next_value)
        adv[:, t] = running * act
    returns = adv + values * mask
    return whiten(adv, mask), returns


def clipped_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, adv: torch.Tensor, values: torch.Tensor,
                 old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor, clip: float = 0.2,
                 vf_clip: float = 0.2, vf_coef: float = 0.1) -> tuple[torch.Tensor, dict[str, float]]:
    """The PPO objective (to minimise) and its diagnostics."""
    pg, stats = clipped_surrogate(logprobs, old_logprobs, adv, mask, clip)
    pg_loss = masked_mean(pg, mask)
    v_clipped = old_values + (values - old_values).clamp(-vf_clip, vf_clip)
    vf = 0.5 * torch.max((values - returns) ** 2, (v_clipped - returns) ** 2)
    vf_loss = masked_mean(vf, mask)
    with torch.no_grad():
        stats.update(pg_loss=pg_loss.item(), vf_loss=vf_loss.item(),
                     value_error=masked_mean((values - returns) ** 2, mask).item())
    return pg_loss + vf_coef * vf_loss, stats


# ---- the registry's entry points --------------------------------------------------------------
def advantages(exp: Experience, beta: float, hp, own) -> Experience:
    rewards = kl_penalised_rewards(exp.logprobs, exp.ref_logprobs, exp.rewards, exp.action_mask, beta,
                                   hp.whiten_rewards)
    adv, returns = gae(rewards, exp.values, exp.action_mask, own.gamma, own.lam)
    return replace(exp, advantages=adv, returns=returns)


def loss(exp: Experience, logprobs: torch.Tensor, values: torch.Tensor | None, beta: float, hp,
         own) -> tuple[torch.Tensor, dict[str, float]]:
    return clipped_loss(logprobs, exp.logprobs, exp.advantages, values, exp.values, exp.returns, exp.action_mask,
                        hp.clip, own.vf_clip, own.vf_coef)


units = action_tokens     # the loss is a mean over action tokens
