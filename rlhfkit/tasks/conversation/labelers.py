"""Simulated labelers of the conversation world: rankings of whole conversations and of single turns.

As in `tasks/tldr/labelers.py`, a labeler perceives a quality plus their own bias and ranks by one
Plackett-Luce draw (perceived / temperature plus Gumbel noise, sorted); for two items this is a
Bradley-Terry draw. Conversation labelers perceive the gold return R (they know the user's facts,
as a TL;DR labeler reads the post); some dislike long conversations more than R does, one reads
only the final answer. Turn labelers see one candidate turn on its own and perceive the myopic
per-turn reward r_t, which is all a labeler shown one turn can judge.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass

from rlhfkit.tasks.conversation.gold import (COST_PER_TURN, W_SELF, EpisodeVerdict, episode_verdict,
                                             turn_reward)
from rlhfkit.tasks.conversation.template import Message
from rlhfkit.tasks.conversation.world import ConversationWorld
from rlhfkit.tasks.tldr.judge import words


@dataclass(frozen=True)
class ConversationLabeler:
    name: str
    temperature: float
    turn_cost: float = 0.0      # extra dislike per assistant turn, beyond R's own cost
    final_only: bool = False    # reads only the final answer: no turn cost, no self-contradictions


@dataclass(frozen=True)
class TurnLabeler:
    name: str
    temperature: float
    length_bias: float = 0.0    # added per word: > 0 likes longer turns


CONVERSATION_LABELERS = (
    ConversationLabeler("steady", 0.7),
    ConversationLabeler("quick", 1.0),
    ConversationLabeler("impatient", 0.8, turn_cost=0.15),
    ConversationLabeler("final-reader", 0.7, final_only=True),
    ConversationLabeler("picky", 0.6),
)
TURN_LABELERS = (
    TurnLabeler("steady", 0.3),
    TurnLabeler("quick", 0.45),
    TurnLabeler("verbose-fan", 0.35, length_bias=0.01),
    TurnLabeler("tired", 0.6),
)


def perceived_conversation(labeler: ConversationLabeler, verdict: EpisodeVerdict) -> float:
    if labeler.final_only:   # what the final answer alone is worth: R without turns and self-contradictions
        return verdict.score + COST_PER_TURN * verdict.turns + W_SELF * verdict.self_contradictions
    return verdict.score - labeler.turn_cost * verdict.turns


def perceived_turn(labeler: TurnLabeler, message: str) -> float:
    return turn_reward(message) + labeler.length_bias * len(words(message))


def plackett_luce(scores: list[float], temperature: float, rng: random.Random) -> list[int]:
    """Indices best first, by one Plackett-Luce draw: score / temperature plus Gumbel noise."""
    keys = []
    for i, s in enumerate(scores):
        u = min(max(rng.random(), 1e-12), 1 - 1e-12)
        keys.append((s / temperature - math.log(-math.log(u)), i))
    return [i for _, i in sorted(keys, reverse=True)]


def rank_conversations(labeler: ConversationLabeler, world: ConversationWorld, opening: str,
                       conversations: list[list[Message]], rng: random.Random) -> list[int]:
    """Indices of whole conversations from the same opening, best first."""
    scores = [perceived_conversation(labeler, episode_verdict(world, opening, c)) for c in conversations]
    return plackett_luce(scores, labeler.temperature, rng)


def rank_turns(labeler: TurnLabeler, turns: list[str], rng: random.Random) -> list[int]:
    """Indices of candidate assistant turns (at the same point of a conversation), best first."""
    return plackett_luce([perceived_turn(labeler, t) for t in turns], labeler.temperature, rng)
