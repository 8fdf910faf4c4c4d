"""The records of the RL side: `Rollout` is what generation hands to scoring; `Experience` is
what scoring hands to the algorithm's advantages() and loss(), one row per episode."""
from __future__ import annotations

from dataclasses import dataclass, fields

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


@dataclass
class Experience:
    # ---- tokens and masks
    input_ids: torch.Tensor              # (B, P+R) the sampler's own ids: prompt, then response
    attention_mask: torch.Tensor         # (B, P+R)
    response_ids: torch.Tensor           # (B, R)
    action_mask: torch.Tensor            # (B, R) float: 1 on tokens the policy generated (0: padding, others' turns)
    # ---- policy and reference
    logprobs: torch.Tensor               # (B, R) log pi_old(a_t | s_t), in the update's precision
    ref_logprobs: torch.Tensor           # (B, R) log pi_ref(a_t | s_t)
    # ---- reward and critic
    scores: torch.Tensor                 # (B,) the episode's reward (after the EOS trick)
    values: torch.Tensor | None          # (B, R) V(s_t) from the value model, or None without one
    # ---- filled by the algorithm's advantages()
    advantages: torch.Tensor | None = None   # (B, R)
    returns: torch.Tensor | None = None      # (B, R) the value model's targets

    def rows(self, index: torch.Tensor) -> "Experience":
        """The minibatch of rows `index`."""
        pick = lambda t: None if t is None else t[index]  # noqa: E731
        return Experience(**{f.name: pick(getattr(self, f.name)) for f in fields(self)})
