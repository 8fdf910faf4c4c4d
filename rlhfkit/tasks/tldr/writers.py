"""Simulated TL;DR writers of uneven skill, and the oracle writer.

Like the human TL;DRs of the real data set, the references are flawed: writers omit key
facts, copy filler, ramble, or flip a polarity, each with their own habits. SFT learns to
imitate them, flaws included, which leaves headroom for RLHF. The oracle writes the best
summary the gold judge knows: every event with its polarity, the people, the feeling and the
question, tersely.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from rlhfkit.errors import InputError
from rlhfkit.tasks.tldr.world import ACTION_BY_KEY, FILLER, QUESTIONS, Event, Facts, Post, event_phrase

RAMBLE = ("so basically", "long story short", "honestly", "anyway", "i guess", "it was a whole thing",
          "which was a lot", "to be fair")


@dataclass(frozen=True)
class Writer:
    name: str
    p_omit: float       # each key event is left out with this probability
    p_flip: float       # one event's polarity is flipped with this probability
    p_filler: float     # an irrelevant detail is copied with this probability
    p_ramble: float     # filler phrases and times are added with this probability
    p_feeling: float    # the feeling is mentioned with this probability
    p_question: float   # the question is mentioned with this probability


WRITERS = (
    Writer("careful", 0.05, 0.05, 0.05, 0.10, 0.9, 0.8),
    Writer("decent", 0.15, 0.12, 0.15, 0.25, 0.7, 0.6),
    Writer("rushed", 0.40, 0.15, 0.10, 0.05, 0.4, 0.3),
    Writer("rambler", 0.15, 0.12, 0.50, 0.90, 0.8, 0.7),
    Writer("sloppy", 0.30, 0.40, 0.30, 0.30, 0.5, 0.5),
    Writer("copycat", 0.20, 0.12, 0.70, 0.40, 0.6, 0.5),
)


def _who(facts: Facts, ev: Event, rng: random.Random | None) -> str:
    person = facts.people[ev.who]
    if rng is None:
        return f"{person.relation} {person.name.lower()}"
    return rng.choice((f"my {person.relation} {person.name.lower()}", f"my {person.relation}",
                       person.name.lower(), f"{person.relation} {person.name.lower()}"))


def render(facts: Facts, events: list[Event], rng: random.Random | None, *, feeling: bool, question: bool,
           filler: list[int] = (), ramble: bool = False) -> str:
    """Write a summary stating `events` (polarities as given). rng=None gives the terse canonical form."""
    parts: list[str] = []
    last_who = None
    for ev in events:
        phrase = event_phrase(ACTION_BY_KEY[ev.action], ev.done, rng)
        if ramble and rng.random() < 0.5:
            phrase += f" {ev.time}"
        if ev.who != last_who:  # name the person once per run of their events
            parts.append(f"{_who(facts, ev, rng)} {phrase}")
        else:
            parts.append(phrase)
        last_who = ev.who
    text = ", ".join(parts)
    if ramble:
        text = f"{rng.choice(RAMBLE)} {text}, {rng.choice(RAMBLE)}"
    for i in filler:
        text += ". " + FILLER[i][1].lower().rstrip(".")
    if feeling:
        text += f". i feel {facts.feeling}"
    text += "."
    if question:
        text += " " + QUESTIONS[facts.question][1]
    return " " + text


def oracle_summary(facts: Facts) -> str:
    return render(facts, list(facts.events), None, feeling=True, question=True)


def flip_one(facts: Facts, rng: random.Random) -> list[Event]:
    """The events with one polarity flipped."""
    events = list(facts.events)
    i = rng.randrange(len(events))
    ev = events[i]
    events[i] = Event(ev.who, ev.action, not ev.done, ev.time)
    return events


def write_summary(post: Post, writer: Writer, rng: random.Random) -> str:
    facts = post.facts
    events = flip_one(facts, rng) if rng.random() < writer.p_flip else list(facts.events)
    kept = [ev for ev in events if rng.random() >= writer.p_omit] or [rng.choice(events)]
    if rng.random() < 0.3:  # writers do not always keep the post's order
        rng.shuffle(kept)
    filler = [i for i in facts.filler if rng.random() < writer.p_filler]
    return render(facts, kept, rng, feeling=rng.random() < writer.p_feeling,
                  question=rng.random() < writer.p_question, filler=filler,
                  ramble=rng.random() < writer.p_ramble)


def writer_pool(names: str) -> tuple[Writer, ...]:
    """The writers `names` lists (comma-separated; '' for all six), in WRITERS' order."""
    given = {n.strip() for n in names.split(",") if n.strip()}
    unknown = sorted(given - {w.name for w in WRITERS})
    if unknown:
        raise InputError(f"task.writers: unknown writer {unknown[0]!r}; choose from "
                         f"{', '.join(w.name for w in WRITERS)}")
    return tuple(w for w in WRITERS if w.name in given) if given else WRITERS


def reference_summary(post: Post, seed: int, slot: int = 0, writers: str = "") -> tuple[str, str]:
    """A reference TL;DR of a post by a writer drawn from `writers` (`writer_pool`): (writer name,
    text). `slot` draws independent references for the same post."""
    rng = random.Random(f"ref-{seed}-{post.id}-{slot}")
    writer = rng.choice(writer_pool(writers))
    return writer.name, write_summary(post, writer, rng)
