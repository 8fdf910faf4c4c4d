"""Masked statistics and the pieces the RL algorithms share. Masks are 1 on action tokens."""
from __future__ import annotations

import math

import torch


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    mask = mask.to(x.dtype)
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp(min=1)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def masked_var(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Unbiased variance over the masked elements."""
    mean = masked_mean(x, mask)
    n = mask.sum()
    return ((x - mean) ** 2 * mask).sum() / (n - 1).clamp(min=1)


def whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """(x - mean) / std over the masked elements; masked-out positions come back as 0."""
    mean, var = masked_mean(x, mask), masked_var(x, mask)
    out = (x - mean) * torch.rsqrt(var + 1e-8)
    if not shift_mean:
        out = out + mean
    return out * mask


def kl_k1(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """log pi - log pi_ref per token: unbiased for KL(pi || ref) on samples from pi, can be < 0."""
    return logprobs - ref_logprobs


def kl_k3(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """exp(ref - logp) - 1 - (ref - logp) per token (Schulman 2020): unbiased and always >= 0."""
    d = ref_logprobs - logprobs
    return torch.exp(d) - 1 - d


def kl_penalised_rewards(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, rewards: torch.Tensor,
                         mask: torch.Tensor, beta: float, whitened: bool = False) -> torch.Tensor:
    """Per-token reward -beta * (log pi - log pi_ref) on action tokens, plus the rewards the scorer
    placed (each episode's score on its last action token, an environment's on its turns' last
    tokens; Ziegler et al. 2019; Stiennon et al. 2020): (B, R), 0 off the mask. `whitened`: the
    deviations from the batch mean (over action tokens) scaled to unit variance, the mean kept
    (N+'s reward whitening)."""
    r = -beta * (logprobs - ref_logprobs) * mask + rewards * mask
    return whiten(r, mask, shift_mean=False) if whitened else r


def clipped_surrogate(logprobs: torch.Tensor, old_logprobs: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor,
                      clip: float, clip_high: float | None = None,
                      level: str = "token") -> tuple[torch.Tensor, dict[str, float]]:
    """PPO's pessimistic clipped policy term per token, max(-A r, -A clip(r, 1 - clip, 1 + clip_high))
    (Schulman et al. 2017; clip_high defaults to clip), and the ratio's diagnostics on action tokens
    (clip fraction, approximate KL). level "sequence": every token of an answer takes the answer's
    ratio, exp of the mean log-ratio over its action tokens (GSPO)."""
    log_ratio = logprobs - old_logprobs
    if level == "sequence":
        log_ratio = masked_mean(log_ratio, mask, dim=1).unsqueeze(1).expand_as(log_ratio)
    ratio = torch.exp(log_ratio)
    high = clip if clip_high is None else clip_high
    pg = torch.max(-adv * ratio, -adv * ratio.clamp(1 - clip, 1 + high))
    with torch.no_grad():
        stats = {"clipfrac": masked_mean(((ratio < 1 - clip) | (ratio > 1 + high)).float(), mask).item(),
                 "approx_kl": masked_mean(0.5 * log_ratio ** 2, mask).item()}
    return pg, stats


def truncated_is(logprobs: torch.Tensor, sampler_logprobs: torch.Tensor, mask: torch.Tensor,
                 cap: float) -> tuple[torch.Tensor, dict[str, float]]:
    """Truncated importance sampling (TIS; Yao et al. 2025, as TRL and veRL apply it): per action
    token, min(pi_old / pi_sampler, cap), the weight that corrects a policy gradient for samples drawn
    by an engine whose probabilities differ from the trainer's; 0 off actions. With the weight w >= 0,
    w * max(-A r, -A clip(r)) = max(-(wA) r, -(wA) clip(r)): scaling the advantages applies it to
    every algorithm's clipped term. Stats: the mean weight, the share of tokens cut at the cap and
    the sampler-to-trainer KL (k3, per token)."""
    log_ratio = (logprobs - sampler_logprobs) * mask
    weights = torch.exp(log_ratio).clamp(max=cap) * mask
    stats = {"tis_weight": masked_mean(weights, mask).item(),
             "tis_capped": masked_mean((log_ratio > math.log(cap)).float(), mask).item(),
             "sampler_kl": masked_mean(kl_k3(sampler_logprobs, logprobs), mask).item()}
    return weights, stats


def clipped_pg_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor,
                    clip: float) -> tuple[torch.Tensor, dict[str, float]]:
    """The clipped surrogate averaged over the minibatch's action tokens (RLOO, REINFORCE++)."""
    pg, stats = clipped_surrogate(logprobs, old_logprobs, adv, mask, clip)
    pg_loss = masked_mean(pg, mask)
    stats["pg_loss"] = pg_loss.item()
    return pg_loss, stats


def action_tokens(exp, hp=None, own=None) -> float:
    """The units of a loss averaged over a minibatch's action tokens: how many there are (an
    algorithm's `units`, by which a minibatch split over processes is weighted back together)."""
    return float(exp.action_mask.sum())
