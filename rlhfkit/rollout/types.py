"""`Experience`: the one record of the RL side, from the sampler to the update, one row per episode.

Generation fills the first block (the sampler's own token ids, never a re-tokenisation of its
text), scoring adds the second, the algorithm's advantages() the third; its loss() reads them all.
A row is an episode: an opening (the prompt), then everything after it, `response_ids`: the
policy's turns and, in a multi-turn episode, the environment's turns between them. `action_mask`
is 1 only on the tokens the policy sampled in this rollout, so advantages, losses and statistics
skip the environment's tokens and the padding. A single answer is the one-turn case.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import torch


@dataclass
class Experience:
    # ---- 1. generation
    prompt_ids: torch.Tensor      # (B, P) left-padded opening tokens
    prompt_mask: torch.Tensor     # (B, P) 1 = real opening token
    response_ids: torch.Tensor    # (B, R) the tokens after the opening, right-padded
    response_mask: torch.Tensor   # (B, R) 1 = real token (the policy's or the environment's), 0 = padding
    action_mask: torch.Tensor     # (B, R) float: 1 on tokens the policy sampled in this rollout
    turn_ends: torch.Tensor       # (B, R) bool: the last token of each of the policy's turns
    logprobs: torch.Tensor        # (B, R) log pi_old(a_t | s_t) at the sampling temperature, 0 off actions
    rewards: torch.Tensor         # (B, R) per-token rewards: the environment's on its turns' last tokens;
    #                               scoring adds the episode's score on the last action token
    texts: list[str]              # (B,) what followed the opening, as text (special tokens removed)
    ended: torch.Tensor           # (B,) bool: every turn of the policy emitted EOS within the limit
    sampler_logprobs: torch.Tensor | None = None   # (B, R) an external engine's own log-probs (vLLM): step 2
    #                                                recomputes `logprobs` with the trainer, step 3 corrects
    # ---- 2. scoring
    raw_scores: torch.Tensor | None = None     # (B,) the episode's proxy reward before the EOS penalty
    ref_logprobs: torch.Tensor | None = None   # (B, R) log pi_ref(a_t | s_t)
    values: torch.Tensor | None = None         # (B, R) V(s_t) from the value model, or None without one
    # ---- 3. advantages
    advantages: torch.Tensor | None = None     # (B, R)
    returns: torch.Tensor | None = None        # (B, R) the value model's targets

    @property
    def input_ids(self) -> torch.Tensor:
        return torch.cat([self.prompt_ids, self.response_ids], dim=1)    # (B, P+R)

    @property
    def attention_mask(self) -> torch.Tensor:
        return torch.cat([self.prompt_mask, self.response_mask], dim=1)  # (B, P+R)

    @property
    def episode_returns(self) -> torch.Tensor:
        """(B,) the sum of each episode's rewards (the KL penalty not included)."""
        return self.rewards.sum(dim=1)

    def rows(self, index: torch.Tensor) -> "Experience":
        """The minibatch of rows `index`."""
        def pick(value):
            if value is None:
                return None
            return [value[i] for i in index.tolist()] if isinstance(value, list) else value[index]
        return Experience(**{f.name: pick(getattr(self, f.name)) for f in fields(self)})


def last_action_token(action_mask: torch.Tensor) -> torch.Tensor:
    """(B, R) bool: True at each row's last action token (none in a row without one)."""
    return (action_mask.cumsum(dim=1) == action_mask.sum(dim=1, keepdim=True)) & (action_mask > 0)


def one_turn(prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, response_ids: torch.Tensor,
             response_mask: torch.Tensor, logprobs: torch.Tensor, texts: list[str], ended: torch.Tensor) -> Experience:
    """The record of one sampled answer per prompt: every response token is an action, one turn."""
    action_mask = response_mask.float()
    return Experience(prompt_ids=prompt_ids, prompt_mask=prompt_mask, response_ids=response_ids,
                      response_mask=response_mask, action_mask=action_mask, turn_ends=last_action_token(action_mask),
                      logprobs=logprobs, rewards=torch.zeros_like(action_mask), texts=texts, ended=ended)
