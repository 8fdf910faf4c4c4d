"""Judges the sentiment experiment's training never sees, and the baselines a reward model must beat.

- VADER's rule-based scorer (Hutto & Gilbert 2014; the `vaderSentiment` package): its lexicon
  comes from separate human ratings of single words, so it is independent of the comparisons
  the reward model learns from. Its compound score lies in [-1, 1].
- Fluency: perplexity of the continuation under the untouched start model.
VADER's score is also the lexicon-only baseline on held-out human pairs (beside "longer wins"): a
reward model has to beat both to have learned anything of its own.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from functools import cache

import torch

from rlhfkit.models.lm import context_length
from rlhfkit.rollout.generate import encode_prompts, token_logprobs


@cache
def _analyzer():
    try:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
    except ImportError as e:
        raise ImportError("the VADER judge needs the vaderSentiment package: "
                          "pip install 'rlhfkit[smollm2]' (or vaderSentiment==3.3.2)") from e
    return SentimentIntensityAnalyzer()


def vader_compound(texts: Sequence[str]) -> list[float]:
    """VADER's compound sentiment of each text, in [-1, 1]."""
    analyzer = _analyzer()
    return [analyzer.polarity_scores(t)["compound"] for t in texts]


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
