"""Simulated labelers: pairwise and K-way rankings drawn from the gold score.

A labeler perceives an answer's quality as the gold score plus their own bias (one likes
length, one skims only the start) and ranks answers by a Plackett-Luce draw at their own
temperature: perceived / T plus Gumbel noise, sorted. For two answers this is exactly a
Bradley-Terry draw, P(a > b) = sigmoid((s_a - s_b) / T). Temperatures are set so that
agreement with the gold preference is near the ~73-77% real labelers reached
(Stiennon et al. 2020).
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass

from rlhfkit.tasks.tldr.judge import gold_score, words
from rlhfkit.tasks.tldr.world import Facts


@dataclass(frozen=True)
class Labeler:
    name: str
    temperature: float
    length_bias: float = 0.0   # added per word: > 0 likes longer answers
    skim_words: int = 0        # > 0: judges only the first this-many words


LABELERS = (
    Labeler("steady", 0.70),
    Labeler("quick", 0.95),
    Labeler("verbose-fan", 0.76, length_bias=0.015),
    Labeler("skimmer", 0.70, skim_words=35),
    Labeler("picky", 0.60),
    Labeler("tired", 1.06),
)


def perceived(labeler: Labeler, text: str, facts: Facts) -> float:
    if labeler.skim_words:
        text = " ".join(words(text)[: labeler.skim_words])
    return gold_score(text, facts) + labeler.length_bias * len(words(text))


def rank(labeler: Labeler, answers: list[str], facts: Facts, rng: random.Random) -> list[int]:
    """Indices of `answers`, best first, by one Plackett-Luce draw."""
    keys = []
    for i, answer in enumerate(answers):
        u = min(max(rng.random(), 1e-12), 1 - 1e-12)
        gumbel = -math.log(-math.log(u))
        keys.append((perceived(labeler, answer, facts) / labeler.temperature + gumbel, i))
    return [i for _, i in sorted(keys, reverse=True)]


def prefers_first(labeler: Labeler, a: str, b: str, facts: Facts, rng: random.Random) -> bool:
    return rank(labeler, [a, b], facts, rng)[0] == 0
