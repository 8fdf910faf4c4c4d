"""Step 1 for multi-turn tasks: openings -> Experience, by playing episodes against an environment.

Each round samples one turn for every unfinished episode (one batched `generate`), hands each
turn's text to the environment, and appends the environment's observation as token ids, until the
environment says done, the turn limit, or the context is full. The record keeps the sampler's
own ids and log-probs for the policy's turns and marks only them as actions; each environment
reward sits on the last token of the turn it answers.

An episode cut by the turn limit or the context keeps the rewards it was given; its last turn
is the last one sampled.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from rlhfkit.models.lm import context_length
from rlhfkit.rollout.generate import left_padded, prompt_tokens, sample
from rlhfkit.rollout.types import Experience
from rlhfkit.tasks.base import Environment, Message


@dataclass
class Episode:
    opening: list[int]                                    # BOS + the first observation's tokens
    tokens: list[int] = field(default_factory=list)       # everything after the opening
    actions: list[int] = field(default_factory=list)      # 1 where the policy sampled the token
    logprobs: list[float] = field(default_factory=list)   # the sampler's log-prob of each token, 0 off actions
    rewards: dict[int, float] = field(default_factory=dict)   # token index -> reward on it
    turn_ends: list[int] = field(default_factory=list)
    history: list[Message] = field(default_factory=list)
    ended: bool = True        # every turn so far emitted EOS
    done: bool = False


def play_turn(ep: Episode, turn: list[int], eos_id: int, tokenizer, env: Environment, max_tokens: int,
               last_turn: bool, logprobs: list[float] | None = None) -> None:
    """Append one sampled turn (and the sampler's log-probs of it, where an Experience will be
    recorded), step the environment, append its observation."""
    ep.tokens += turn
    ep.actions += [1] * len(turn)
    ep.logprobs += logprobs if logprobs is not None else [0.0] * len(turn)
    end = len(ep.tokens) - 1
    ep.turn_ends.append(end)
    ep.ended = ep.ended and turn[-1:] == [eos_id]
    message = tokenizer.decode(turn, skip_special_tokens=True)
    step = env.step(ep.history, message)
    ep.rewards[end] = float(step.reward)
    ep.history.append({"role": "assistant", "content": message})
    observation = tokenizer(step.observation, add_special_tokens=False)["input_ids"] if step.observation else []
    ep.done = step.done or last_turn or len(ep.opening) + len(ep.tokens) + len(observation) >= max_tokens
    if not ep.done:
        ep.tokens += observation
        ep.actions += [0] * len(observation)
        ep.logprobs += [0.0] * len(observation)
        ep.history.append({"role": "user", "content": step.observation})


@torch.no_grad()
def play_episodes(model, tokenizer, env: Environment, openings: list[str], *, temperature: float,
                  max_new_tokens: int, max_turns: int, seed: int, engine: str = "auto") -> Experience:
    """Up to `max_turns` turns of the policy per episode, `max_new_tokens` each."""
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    context = context_length(model)
    episodes = []
    for i, opening in enumerate(openings):
        first = env.reset(opening)
        episodes.append(Episode(opening=prompt_tokens(first, tokenizer, context - max_new_tokens, i),
                                history=[{"role": "user", "content": first}]))
    for turn in range(max_turns):
        live = [ep for ep in episodes if not ep.done]
        if not live:
            break
        torch.manual_seed(seed * 1_000 + turn)
        ids, mask = left_padded([ep.opening + ep.tokens for ep in live], pad)
        out = sample(model, tokenizer, ids, mask, temperature=temperature, max_new_tokens=max_new_tokens,
                     engine=engine)
        for ep, row, row_mask, row_logprobs in zip(live, out.ids, out.mask, out.logprobs):
            play_turn(ep, row[row_mask > 0].tolist(), eos, tokenizer, env, context - max_new_tokens,
                      last_turn=turn == max_turns - 1, logprobs=row_logprobs[row_mask > 0].tolist())
    return _record(tokenizer, episodes)


def _record(tokenizer, episodes: list[Episode]) -> Experience:
    pad = tokenizer.pad_token_id
    prompt_ids, prompt_mask = left_padded([ep.opening for ep in episodes], pad)
    R = max(len(ep.tokens) for ep in episodes)
    shape = (len(episodes), R)
    response_ids = torch.full(shape, pad, dtype=torch.long)
    response_mask = torch.zeros(shape, dtype=torch.long)
    action_mask = torch.zeros(shape)
    turn_ends = torch.zeros(shape, dtype=torch.bool)
    rewards = torch.zeros(shape)
    logprobs = torch.zeros(shape)
    for i, ep in enumerate(episodes):
        n = len(ep.tokens)
        response_ids[i, :n] = torch.tensor(ep.tokens, dtype=torch.long)
        response_mask[i, :n] = 1
        action_mask[i, :n] = torch.tensor(ep.actions, dtype=torch.float)
        logprobs[i, :n] = torch.tensor(ep.logprobs)
        turn_ends[i, ep.turn_ends] = True
        for t, r in ep.rewards.items():
            rewards[i, t] = r
    texts = [tokenizer.decode(ep.tokens, skip_special_tokens=True) for ep in episodes]
    return Experience(prompt_ids=prompt_ids, prompt_mask=prompt_mask, response_ids=response_ids,
                      response_mask=response_mask, action_mask=action_mask, turn_ends=turn_ends, logprobs=logprobs,
                      rewards=rewards, texts=texts, ended=torch.tensor([ep.ended for ep in episodes]))
