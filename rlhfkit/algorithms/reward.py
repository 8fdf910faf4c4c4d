"""Reward-model losses: Bradley-Terry on pairs; K-way rankings as all their pairs.

    pair:    -log sigmoid(r_chosen - r_rejected)
    ranking: -1/C(K,2) * sum over i ranked above j of log sigmoid(r_i - r_j)   (InstructGPT eq. 1)
    centring: + eta * (mean reward of the prompt's answers)^2   (Eisenstein et al. 2023)

A ranking's pairs share the weight 1/C(K,2), so each prompt counts once however large K is.
"""
from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F


def ranking_pairs(k: int) -> list[tuple[int, int]]:
    """(better, worse) index pairs of a ranking listed best first."""
    return list(itertools.combinations(range(k), 2))


def pairwise_loss(chosen: torch.Tensor, rejected: torch.Tensor, weights: torch.Tensor | None = None
                  ) -> tuple[torch.Tensor, dict[str, float]]:
    """chosen, rejected, weights: (N,). The weighted mean of -log sigmoid(margin)."""
    margin = chosen - rejected
    weights = torch.ones_like(margin) if weights is None else weights
    loss = (-F.logsigmoid(margin) * weights).sum() / weights.sum()
    with torch.no_grad():
        acc = ((margin > 0).float() * weights).sum() / weights.sum()
    return loss, {"loss": loss.item(), "accuracy": acc.item(), "margin": margin.mean().item()}


def group_pairs(group_sizes: list[int]) -> tuple[list[int], list[int], list[float]]:
    """For groups listed best first and laid end to end: (better index, worse index, weight) of
    every ranked pair, each group's pairs sharing the weight 1. A group of 2 is one comparison."""
    chosen, rejected, weights = [], [], []
    start = 0
    for k in group_sizes:
        pairs = ranking_pairs(k)
        chosen += [start + i for i, _ in pairs]
        rejected += [start + j for _, j in pairs]
        weights += [1.0 / len(pairs)] * len(pairs)
        start += k
    return chosen, rejected, weights


def ranking_loss(rewards: torch.Tensor, group_sizes: list[int], center: float = 0.0
                 ) -> tuple[torch.Tensor, dict[str, float]]:
    """rewards: (sum of group sizes,) for groups listed best first, one group per prompt.
    `center` > 0 pulls each prompt's mean reward to 0: the pairwise loss cannot see a per-prompt
    offset, so without it each prompt gets an arbitrary one, which an RL step with one answer
    per prompt (PPO) reads as signal."""
    chosen, rejected, weights = group_pairs(group_sizes)
    loss, stats = pairwise_loss(rewards[chosen], rewards[rejected], torch.tensor(weights, dtype=rewards.dtype))
    mean_sq = (torch.stack([g.mean() for g in rewards.split(group_sizes)]) ** 2).mean()
    stats["prompt_mean_sq"] = mean_sq.item()
    return (loss + center * mean_sq if center else loss), stats
