"""Step 2 of the data flow: score a Rollout.

    scores       (B,)    the reward of each whole answer: a reward model read at its EOS (an
                         answer cut at the token limit is read at an EOS appended to it, as the
                         model was trained), or a plain Python reward function
                         (prompts, completions) -> list[float]; with the EOS trick an answer with
                         no EOS within the limit gets `eos_penalty` instead
    ref_logprobs (B, R)  log pi_ref of the sampled tokens, at the sampling temperature
    values       (B, R)  V(s_t) from the value model, the state before each response token
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from rlhfkit.models.heads import last_token_index, sequence_rewards, token_values
from rlhfkit.rollout.generate import token_logprobs
from rlhfkit.rollout.types import Rollout

RewardFn = Callable[[list[str], list[str]], list[float]]


@dataclass
class Scores:
    raw: torch.Tensor            # (B,) reward before the EOS penalty
    scores: torch.Tensor         # (B,) reward used for training
    ref_logprobs: torch.Tensor   # (B, R)
    values: torch.Tensor | None  # (B, R) or None without a value model


def with_final_eos(rollout: Rollout, eos_id: int, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) with EOS appended to each answer that did not end, (B, P+R+1):
    a reward model learns to read finished answers, so a cut-off one is read the same way."""
    ids = torch.nn.functional.pad(rollout.input_ids, (0, 1), value=pad_id)
    attn = torch.nn.functional.pad(rollout.attention_mask, (0, 1), value=0)
    rows = (~rollout.ended).nonzero().squeeze(1)
    after = last_token_index(attn)[rows] + 1            # responses are right-padded: a free slot
    ids[rows, after] = eos_id
    attn[rows, after] = 1
    return ids, attn


def reward_model_fn(model, tokenizer) -> Callable[[Rollout, list[str]], torch.Tensor]:
    """Score with a reward model on the rollout's own tokens (no re-tokenisation)."""
    def score(rollout: Rollout, prompts: list[str]) -> torch.Tensor:
        ids, attn = with_final_eos(rollout, tokenizer.eos_token_id, tokenizer.pad_token_id)
        return sequence_rewards(model, ids, attn)
    return score


def python_reward_fn(fn: RewardFn) -> Callable[[Rollout, list[str]], torch.Tensor]:
    """Score with a plain function of text."""
    def score(rollout: Rollout, prompts: list[str]) -> torch.Tensor:
        values = fn(prompts, rollout.texts)
        if len(values) != len(prompts):
            raise ValueError(f"reward function returned {len(values)} scores for {len(prompts)} completions")
        return torch.tensor([float(v) for v in values])
    return score


def response_values(value_model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    response_mask: torch.Tensor) -> torch.Tensor:
    """V(s_t) for each response token: the head at the position just before the token, (B, R)."""
    values = token_values(value_model, input_ids, attention_mask)                    # (B, P+R)
    P, R = input_ids.size(1) - response_mask.size(1), response_mask.size(1)
    return values[:, P - 1:P - 1 + R] * response_mask


@torch.no_grad()
def score(rollout: Rollout, prompts: list[str], reward: Callable[[Rollout, list[str]], torch.Tensor], ref_model,
          value_model, temperature: float, eos_penalty: float | None) -> Scores:
    raw = reward(rollout, prompts).float()
    scores = raw if eos_penalty is None else torch.where(rollout.ended, raw, torch.full_like(raw, eos_penalty))
    ref = token_logprobs(ref_model, rollout.input_ids, rollout.attention_mask, rollout.response_ids.size(1),
                         temperature) * rollout.response_mask
    values = (response_values(value_model, rollout.input_ids, rollout.attention_mask, rollout.response_mask)
              if value_model is not None else None)
    return Scores(raw, scores, ref, values)
