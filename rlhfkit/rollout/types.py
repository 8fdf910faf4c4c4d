"""The Rollout record: what generation hands to scoring and, later, to the RL update."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Rollout:
    # ---- tokens and masks
    prompt_ids: torch.Tensor      # (B, P) left-padded prompt tokens
    prompt_mask: torch.Tensor     # (B, P) 1 = real prompt token
    response_ids: torch.Tensor    # (B, R) sampled tokens; after the first EOS: pad
    response_mask: torch.Tensor   # (B, R) 1 = response token up to and including the first EOS
    # ---- policy
    logprobs: torch.Tensor        # (B, R) log pi(a_t | s_t) at the sampling temperature
    # ---- decoded
    texts: list[str]              # (B,) response text, special tokens removed
    ended: torch.Tensor           # (B,) bool: the response emitted EOS within the limit

    @property
    def input_ids(self) -> torch.Tensor:
        return torch.cat([self.prompt_ids, self.response_ids], dim=1)    # (B, P+R)

    @property
    def attention_mask(self) -> torch.Tensor:
        return torch.cat([self.prompt_mask, self.response_mask], dim=1)  # (B, P+R)
