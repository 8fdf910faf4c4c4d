"""Scripted assistants of uneven skill, and the transcripts they produce (for SFT, the pretraining corpus and tests).

Like the TL;DR world's reference writers, the transcripts are flawed on purpose, each assistant in
its own way, so that imitating them leaves headroom:

    thorough  asks for every event and the feeling, then answers from what it was told
    partial   asks for some events (at least one, fewer than E when E > 1), the feeling half the
              time, and now and then gets a told event the wrong way round in its answer
    vague     answers at once without inventing anything: honest and empty
    hasty     answers at once, making up specific-sounding events, a name and a feeling

A scripted assistant reads only what the user has told it (the simulator's `Revealed`), never
the facts behind them; its wording varies, drawn from (seed, conversation, assistant).
"""
from __future__ import annotations

import random
from dataclasses import dataclass, replace

from rlhfkit.tasks.conversation.simulator import Revealed, reply, turn_rng
from rlhfkit.tasks.conversation.template import Message
from rlhfkit.tasks.conversation.world import MAX_EVENTS, MIN_EVENTS, ConversationWorld, conversation_ids, request
from rlhfkit.tasks.tldr.world import (ACTION_BY_KEY, ACTIONS, FEELINGS, NAMES, QUESTIONS, Event, Facts, Person,
                                      event_phrase)
from rlhfkit.tasks.tldr.writers import render as render_summary


@dataclass(frozen=True)
class ScriptedAssistant:
    name: str
    asks: str            # how many events it asks for: "all", "some" or "none"
    p_feeling: float     # asks about the feeling with this probability (when it asks at all)
    p_restate: float     # restates the last event told before its next question
    p_flip: float        # its answer gets one told event the wrong way round
    invents: bool        # with nothing told, it makes events up rather than stay vague


ASSISTANTS = (
    ScriptedAssistant("thorough", "all", 1.0, 0.5, 0.0, False),
    ScriptedAssistant("partial", "some", 0.5, 0.3, 0.15, False),
    ScriptedAssistant("vague", "none", 0.0, 0.0, 0.0, False),
    ScriptedAssistant("hasty", "none", 0.0, 0.0, 0.0, True),
)
ASSISTANT_BY_NAME = {a.name: a for a in ASSISTANTS}
# who writes each demonstration transcript: uneven skill, as the TL;DR world's references are
DEMONSTRATION_MIX = (("thorough", 0.3), ("partial", 0.3), ("vague", 0.15), ("hasty", 0.25))

FIRST_QUESTIONS = ("What happened?", "Can you tell me what happened?", "What did your {rel} do?",
                   "Walk me through it. What happened?", "What's going on?")
MORE_QUESTIONS = ("What else happened?", "Anything else I should know?", "Tell me more. What happened next?",
                  "What else did they do?", "Okay. What else happened?")
FEELING_QUESTIONS = ("How do you feel about it?", "How are you feeling about all this?",
                     "And how does that make you feel?")
RESTATE = ("I see, so {who} {phrase}.", "Got it, {who} {phrase}.", "Okay, {who} {phrase}.")
ADVICE_NOT_DONE = ("Ask {who} why they {phrase}.", "Tell {who} calmly that it hurt when they {phrase}.")
ADVICE_DONE = ("Thank {who} because they {phrase}.", "Let {who} know you noticed they {phrase}.")
ADVICE_CLOSERS = ("Give it a day or two before you decide.", "Try to talk when you are both calm.",
                  "Be honest about how this made you feel.")
VAGUE_SUMMARIES = (" my {rel}, it was a whole thing.", " long story short, my {rel}. i guess it was a whole thing.",
                   " it is about my {rel}. it was a lot.")


# ---- What the assistant knows --------------------------------------------------------------------
def known_facts(facts: Facts, told: Revealed) -> Facts:
    """The user's facts as the assistant heard them: the told events, in the order told."""
    by_key = {e.action: e for e in facts.events}
    return Facts(age=facts.age, gender=facts.gender, people=facts.people,
                 events=tuple(by_key[k] for k in told.events), feeling=facts.feeling if told.feeling else "",
                 question=facts.question, filler=())


def _flip(events: tuple[Event, ...], rng: random.Random) -> tuple[Event, ...]:
    i = rng.randrange(len(events))
    ev = events[i]
    return events[:i] + (Event(ev.who, ev.action, not ev.done, ev.time),) + events[i + 1:]


def _who(known: Facts, ev: Event) -> str:
    return known.people[ev.who].name     # told with the person's first event


def _to_user(phrase: str) -> str:
    """An event phrase in the user's words ("picked me up", "my party") said back to them."""
    return f" {phrase} ".replace(" my ", " your ").replace(" me ", " you ").strip()


# ---- Messages ------------------------------------------------------------------------------------
def question(kind: str, known: Facts, rng: random.Random, restate: bool) -> str:
    rel = known.people[0].relation
    if kind == "feeling":
        text = rng.choice(FEELING_QUESTIONS)
    else:
        text = rng.choice(MORE_QUESTIONS if known.events else FIRST_QUESTIONS).format(rel=rel)
    if restate and known.events:
        ev = known.events[-1]
        said = rng.choice(RESTATE).format(who=_who(known, ev), phrase=_to_user(event_phrase(
            ACTION_BY_KEY[ev.action], ev.done, rng)))
        text = f"{said} {text}"
    return text


def advice(known: Facts, rng: random.Random) -> str:
    """Advice about up to two of the events the assistant believes, then a general closer."""
    parts = []
    for ev in rng.sample(known.events, min(2, len(known.events))):
        forms = ADVICE_DONE if ev.done else ADVICE_NOT_DONE
        phrase = _to_user(event_phrase(ACTION_BY_KEY[ev.action], ev.done, rng))
        parts.append(rng.choice(forms).format(who=_who(known, ev), phrase=phrase))
    if not parts:
        parts.append(f"Talk to your {known.people[0].relation} and see how it goes.")
    parts.append(rng.choice(ADVICE_CLOSERS))
    return " ".join(parts)


def answer(known: Facts, rng: random.Random) -> str:
    """The final message: a TL;DR of what the assistant believes, then advice resting on it."""
    if known.events:
        summary = render_summary(known, list(known.events), rng, feeling=bool(known.feeling), question=True)
    else:
        summary = rng.choice(VAGUE_SUMMARIES).format(rel=known.people[0].relation) \
            + " " + QUESTIONS[known.question][1]
    return f"TL;DR:{summary} Advice: {advice(known, rng)}"


def invented(known: Facts, rng: random.Random) -> Facts:
    """What a hasty assistant makes up: a name, two or three events with a polarity, a feeling."""
    person = Person(rng.choice(NAMES), known.people[0].relation)
    keys = rng.sample([a.key for a in ACTIONS], rng.randint(2, 3))
    return Facts(age=known.age, gender=known.gender, people=(person,),
                 events=tuple(Event(0, k, rng.random() < 0.5, "") for k in keys), feeling=rng.choice(FEELINGS),
                 question=known.question, filler=())


# ---- Conversations -------------------------------------------------------------------------------
def plan(assistant: ScriptedAssistant, events: int, rng: random.Random) -> list[str]:
    """The questions the assistant will ask, in order: "event" or "feeling"."""
    n = {"all": events, "some": rng.randint(1, max(1, events - 1)), "none": 0}[assistant.asks]
    kinds = ["event"] * n
    if n and rng.random() < assistant.p_feeling:
        kinds.append("feeling")
    return kinds


def converse(world: ConversationWorld, chat: int, assistant: ScriptedAssistant) -> list[Message]:
    """One whole conversation of a scripted assistant with the user, as messages (the id line
    first, as a system message)."""
    rng = random.Random(f"conversation-assistant-{world.seed}-{chat}-{assistant.name}-{world.events}")
    facts = world.facts(chat)
    messages: list[Message] = [{"role": "system", "content": f"chat {chat}"},
                               {"role": "user", "content": request(world.seed, chat)}]
    told = Revealed()
    for t, kind in enumerate(plan(assistant, world.events, rng)):
        text = question(kind, known_facts(facts, told), rng, restate=rng.random() < assistant.p_restate)
        said, told = reply(facts, told, text, turn_rng(world, chat, t))
        messages += [{"role": "assistant", "content": text}, {"role": "user", "content": said}]
    known = known_facts(facts, told)
    if not known.events and assistant.invents:
        known = invented(known, rng)
    elif known.events and rng.random() < assistant.p_flip:
        known = replace(known, events=_flip(known.events, rng))
    messages.append({"role": "assistant", "content": answer(known, rng)})
    return messages


def transcripts(world: ConversationWorld, split: str, n: int, assistant: str | None = None) -> list[list[Message]]:
    """Whole conversations for the first n openings of a split: all by one scripted assistant, or
    (None) each by one drawn from DEMONSTRATION_MIX."""
    return [converse(world, chat, ASSISTANT_BY_NAME[assistant or drawn_assistant(world, chat)])
            for chat in world.ids(split, n)]


def drawn_assistant(world: ConversationWorld, chat: int) -> str:
    names, weights = zip(*DEMONSTRATION_MIX)
    return random.Random(f"conversation-demo-{world.seed}-{chat}").choices(names, weights)[0]


def corpus_transcripts(seed: int, split: str, n: int) -> list[list[Message]]:
    """Transcripts for a pretraining corpus: the first n conversations of a split, each by a scripted
    assistant drawn uniformly at a dose E drawn uniformly from 1..4. Every E, so one base model serves
    a whole dose sweep; every assistant, as web text holds conversations of any quality."""
    out = []
    for chat in conversation_ids(seed, split, n):
        rng = random.Random(f"conversation-corpus-{seed}-{split}-{chat}")
        world = ConversationWorld(seed, rng.randint(MIN_EVENTS, MAX_EVENTS))
        out.append(converse(world, chat, rng.choice(ASSISTANTS)))
    return out
