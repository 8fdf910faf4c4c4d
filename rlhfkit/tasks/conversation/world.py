"""The conversation world: which post an episode is about, what the user knows, and how it opens.

An episode is one post of the TL;DR world (`tasks/tldr/world.py`) told as a conversation: the
user opens with a short, vague request that names only the person it is about and the question,
and knows the post's first E key events (E is the dose: how many facts a good conversation must
gather), the people in them and their feeling. Posts come from `make_post` at indices far above
any the TL;DR splits reach, so no conversation is about a TL;DR post; every post used has at least
`MAX_EVENTS` events, so one opening serves every E and a dose sweep compares the same episodes.

An opening is its id line ("chat 123") and the first user turn in the chat template
(`template.py`); the id is how a stateless environment and the gold judge find the facts again.

    world = ConversationWorld(seed=0, events=2)
    world.openings("test", 200)
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass, replace
from functools import lru_cache

from rlhfkit.tasks.conversation.template import render
from rlhfkit.tasks.tldr.world import QUESTIONS, Event, Facts, make_post

MIN_EVENTS, MAX_EVENTS, DEFAULT_EVENTS = 1, 4, 2
# make_post's index of conversation 0; the TL;DR splits use indices from 0 upward and reach tens of
# thousands, so the two worlds never share a post
POST_INDEX_BASE = 1_000_000_000
SPLITS = ("train", "valid", "test")
SPLIT_START = {"train": 0, "valid": 10_000_000, "test": 20_000_000}   # conversation ids of each split
_ID_LINE = re.compile(r"chat (\d+)\n")

REQUESTS = (   # the opening names the person only by relation, and no event
    "I need advice about something with my {rel}.",
    "Can you help me with a situation involving my {rel}?",
    "Something is going on with my {rel} and I don't know what to do.",
    "I could use some advice. It's about my {rel}.",
    "My {rel} and I have a problem.",
    "I have a question about my {rel}.",
)


@dataclass(frozen=True)
class ConversationWorld:
    seed: int = 0
    events: int = DEFAULT_EVENTS   # E: the key events the user knows and a good answer states

    def __post_init__(self) -> None:
        if not MIN_EVENTS <= self.events <= MAX_EVENTS:
            raise ValueError(f"conversation: events (E) must be in {MIN_EVENTS}..{MAX_EVENTS}, got {self.events}")

    @property
    def turn_limit(self) -> int:
        """Assistant turns before the environment ends an episode: E questions, one about the
        feeling, the answer, and one spare."""
        return self.events + 3

    def facts(self, chat: int) -> Facts:
        """What the user of conversation `chat` knows: the post's first E events and their people."""
        facts = post_facts(self.seed, chat)
        if not usable(facts):   # no split holds it: the id was not made by this world
            raise ValueError(f"conversation: chat {chat} is not a conversation of this world (seed {self.seed})")
        return key_facts(facts, self.events)

    def opening(self, chat: int) -> str:
        return opening_text(self.seed, chat)

    def ids(self, split: str, n: int) -> list[int]:
        return conversation_ids(self.seed, split, n)

    def openings(self, split: str, n: int) -> list[str]:
        return [self.opening(c) for c in self.ids(split, n)]


@lru_cache(maxsize=65536)
def post_facts(seed: int, chat: int) -> Facts:
    return make_post(seed, POST_INDEX_BASE + chat).facts


def usable(facts: Facts) -> bool:
    return len(facts.events) >= MAX_EVENTS


def key_facts(facts: Facts, events: int) -> Facts:
    """The post's first `events` events, and only the people the user can name: the one the opening
    is about and anyone those events involve (so a summary is never asked for a person the
    conversation could not bring up)."""
    kept = facts.events[:events]
    people = [0] + sorted({e.who for e in kept} - {0})
    index = {old: new for new, old in enumerate(people)}
    return replace(facts, people=tuple(facts.people[i] for i in people),
                   events=tuple(Event(index[e.who], e.action, e.done, e.time) for e in kept))


@lru_cache(maxsize=64)
def _ids(seed: int, split: str, n: int) -> tuple[int, ...]:
    out, chat = [], SPLIT_START[split]
    while len(out) < n:
        if usable(post_facts(seed, chat)):
            out.append(chat)
        chat += 1
    return tuple(out)


def conversation_ids(seed: int, split: str, n: int) -> list[int]:
    """The first n usable conversations of a split; splits are disjoint id ranges."""
    if split not in SPLITS:
        raise ValueError(f"conversation: unknown split {split!r}; expected one of {SPLITS}")
    return list(_ids(seed, split, n))


def request(seed: int, chat: int) -> str:
    """The user's first turn: a vague request naming the person's relation, then the question."""
    facts = post_facts(seed, chat)
    rng = random.Random(f"conversation-opening-{seed}-{chat}")
    return rng.choice(REQUESTS).format(rel=facts.people[0].relation) + " " + QUESTIONS[facts.question][0]


def opening_text(seed: int, chat: int) -> str:
    return render([{"role": "system", "content": f"chat {chat}"}, {"role": "user", "content": request(seed, chat)}])


def chat_id(opening: str) -> int:
    """The conversation an opening (or any text starting with one) belongs to."""
    m = _ID_LINE.match(opening)
    if m is None:
        raise ValueError(f"conversation: not an opening of this world (no 'chat N' line): {opening[:80]!r}")
    return int(m.group(1))
