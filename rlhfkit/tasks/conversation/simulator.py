"""The user simulator: knows the facts, tells one only when the assistant asks for it.

Each assistant message is read for what it asks (`intent`): an event's key word ("what about the
rent?") tells that event, a question about the feeling tells the feeling, an open question ("what
happened?", "anything else?") tells the next event not yet told. At most one fact is told per
turn, so listing every key word in one message gains nothing over asking in turn. Anything else
gets "I don't know what you mean". A message containing "TL;DR" is the assistant's final answer.

The replies' wording varies, drawn from (seed, conversation, turn), so replaying the same
assistant messages always gives the same replies: the environment and the gold judge keep no state,
they replay (`play`).
"""
from __future__ import annotations

import random
from dataclasses import dataclass, replace

from rlhfkit.tasks.conversation.world import ConversationWorld
from rlhfkit.tasks.tldr.judge import ACTION_KEYS, words
from rlhfkit.tasks.tldr.world import ACTION_BY_KEY, Event, Facts, event_phrase

FINAL_MARK = "tl;dr"
FEELING_WORDS = frozenset({"feel", "feeling", "feelings", "felt"})
OPEN_PHRASES = ("what happened", "what else", "anything else", "tell me more", "what's going on",
                "what is going on", "what did", "go on", "more about", "then what", "what's the story",
                "what is the story", "walk me through")

EVENT_FORMS = ("{Who} {phrase} {time}.", "Well, {time} {who} {phrase}.", "So {who} {phrase}, {time}.",
               "It's that {who} {phrase} {time}.", "Okay, so {who} {phrase} {time}.")
AGAIN_FORMS = ("Also, {who} {phrase} {time}.", "And {who} {phrase} {time}.", "Then {who} {phrase}, {time}.",
               "There's more: {who} {phrase} {time}.")
FEELING_FORMS = ("I feel {f}.", "Honestly, I'm just {f}.", "Mostly {f}, to be honest.", "It makes me feel {f}.")
REPEAT_FORMS = ("Like I said, {who} {phrase} {time}.", "As I told you, {who} {phrase}.",
                "I already said: {who} {phrase} {time}.")
NOTHING_ELSE = ("That's everything, really.", "Nothing else happened.", "That's all there is to it.")
NOT_PART = ("No, nothing happened with the {key}.", "The {key}? That's not part of it.",
            "That has nothing to do with the {key}.")
CONFUSED = ("I don't know what you mean.", "Sorry, I don't follow.", "I'm not sure what you're asking.",
            "What do you mean?")


@dataclass(frozen=True)
class Intent:
    final: bool
    keys: tuple[str, ...]     # event key words mentioned, in order
    feeling: bool
    open: bool


@dataclass(frozen=True)
class Revealed:
    """What the user has told so far."""
    events: tuple[str, ...] = ()    # event keys, in the order told
    feeling: bool = False


@dataclass(frozen=True)
class Turn:
    message: str               # the assistant's message
    final: bool                # it was the final answer
    reply: str | None          # the user's reply; None once the episode is over
    revealed: Revealed         # what the user has told after this turn


def intent(message: str) -> Intent:
    low = message.lower().replace("\u2019", "'")
    toks = words(low)
    keys = tuple(dict.fromkeys(t for t in toks if t in ACTION_KEYS))
    return Intent(final=FINAL_MARK in low, keys=keys, feeling=bool(FEELING_WORDS & set(toks)),
                  open=any(p in low for p in OPEN_PHRASES))


def is_final(message: str) -> bool:
    return FINAL_MARK in message.lower()


def _who(facts: Facts, ev: Event, told: Revealed, rng: random.Random) -> str:
    """The first time a person comes up the user gives their name and relation, later either."""
    person = facts.people[ev.who]
    seen = any(facts.people[e.who] == person for e in facts.events if e.action in told.events)
    if not seen:
        return rng.choice((f"my {person.relation} {person.name}", f"{person.name}, my {person.relation},"))
    return rng.choice((person.name, f"my {person.relation}"))


def tell_event(facts: Facts, ev: Event, told: Revealed, rng: random.Random, forms: tuple[str, ...]) -> str:
    who = _who(facts, ev, told, rng)
    return rng.choice(forms).format(Who=who[0].upper() + who[1:], who=who, time=ev.time,
                                    phrase=event_phrase(ACTION_BY_KEY[ev.action], ev.done, rng))


def reply(facts: Facts, told: Revealed, message: str, rng: random.Random) -> tuple[str, Revealed]:
    """The user's answer to one (non-final) assistant message, and what has been told after it."""
    it = intent(message)
    by_key = {e.action: e for e in facts.events}
    new_keys = [k for k in it.keys if k in by_key and k not in told.events]
    untold = [e for e in facts.events if e.action not in told.events]
    forms = AGAIN_FORMS if told.events else EVENT_FORMS
    if new_keys:
        ev = by_key[new_keys[0]]
        return tell_event(facts, ev, told, rng, forms), replace(told, events=told.events + (ev.action,))
    if it.feeling and not told.feeling:
        return rng.choice(FEELING_FORMS).format(f=facts.feeling), replace(told, feeling=True)
    if it.open and untold:
        ev = untold[0]
        return tell_event(facts, ev, told, rng, forms), replace(told, events=told.events + (ev.action,))
    known = [k for k in it.keys if k in by_key]
    if known:
        return tell_event(facts, by_key[known[0]], told, rng, REPEAT_FORMS), told
    if it.feeling:
        return f"Like I said, I feel {facts.feeling}.", told
    if it.open:
        return rng.choice(NOTHING_ELSE), told
    if it.keys:
        return rng.choice(NOT_PART).format(key=it.keys[0]), told
    return rng.choice(CONFUSED), told


def turn_rng(world: ConversationWorld, chat: int, turn: int) -> random.Random:
    return random.Random(f"conversation-user-{world.seed}-{chat}-{turn}")


def play(world: ConversationWorld, chat: int, messages: list[str]) -> list[Turn]:
    """Replay the assistant's messages against the user: one Turn each, up to the final answer or
    the turn limit (later messages are not part of the episode)."""
    facts, told, turns = world.facts(chat), Revealed(), []
    for t, message in enumerate(messages[:world.turn_limit]):
        if is_final(message) or t == world.turn_limit - 1:
            turns.append(Turn(message, is_final(message), None, told))
            break
        text, told = reply(facts, told, message, turn_rng(world, chat, t))
        turns.append(Turn(message, False, text, told))
    return turns
