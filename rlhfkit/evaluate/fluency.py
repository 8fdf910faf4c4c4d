"""Fluency: how likely a model finds a continuation, as perplexity under an untouched start model.

A judge the training never sees (`rlhfkit vader` scores every method's continuations with it). It
runs a model, so it lives here and not beside the task's pure-Python judges in `tasks/`.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from rlhfkit.models.lm import context_length
from rlhfkit.rollout.generate import encode_prompts, token_logprobs


@torch.no_grad()
def continuation_nll(model, tokenizer, prompts: Sequence[str], completions: Sequence[str],
                     batch_size: int = 16) -> tuple[float, int]:
    """(summed negative log-likelihood, token count) of each completion given its prompt under
    `model`, the way rollouts are encoded (BOS + prompt, then the completion's tokens)."""
    total, count = 0.0, 0
    for i in range(0, len(prompts), batch_size):
        prompt_ids, prompt_mask = encode_prompts(list(prompts[i:i + batch_size]), tokenizer,
                                                 context_length(model))   # (B, P) left-padded
        responses = [tokenizer(c, add_special_tokens=False)["input_ids"] for c in completions[i:i + batch_size]]
        R = max(1, max(len(r) for r in responses))
        response_ids = torch.full((len(responses), R), tokenizer.pad_token_id)
        response_mask = torch.zeros((len(responses), R), dtype=torch.long)
        for row, r in enumerate(responses):
            response_ids[row, :len(r)] = torch.tensor(r, dtype=torch.long)
            response_mask[row, :len(r)] = 1
        ids = torch.cat([prompt_ids, response_ids], dim=1)
        attn = torch.cat([prompt_mask, response_mask], dim=1)
        token_logp = token_logprobs(model, ids, attn, R, 1.0) * response_mask                 # (B, R)
        total -= token_logp.sum().item()
        count += int(response_mask.sum().item())
    return total, count


def perplexity(model, tokenizer, prompts: Sequence[str], completions: Sequence[str]) -> float:
    """exp of the mean per-token NLL of the completions (all tokens pooled)."""
    nll, n = continuation_nll(model, tokenizer, prompts, completions)
    return math.exp(nll / n) if n else float("nan")
