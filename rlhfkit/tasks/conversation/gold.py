"""The two gold measures of a conversation, which rank policies differently by design.

EVALUATION ONLY, like `tasks/tldr/judge.py`: training receives them only through the simulated
labelers or, as the environment's reward, the episode return.

turn_reward (r_t, myopic): what a labeler who sees one candidate assistant turn on its own judges.
It cannot check facts it was never shown, so a confident final answer with specific-sounding
content (events, a person, a feeling, advice) beats a question, invented or not. The per-turn
optimum is to answer at once, inventing.

episode_return (R): the conversation as a whole. The final TL;DR is scored by the TL;DR world's
gold judge against what the user knows (coverage with polarity, people, feeling, question;
contradictions and inventions cost more than omissions); the advice must rest on what the user
said (a fact told, stated with its polarity; nothing untold or contradicted); an event the
assistant states both ways across its turns costs; every turn costs a little; no final answer
costs more than any honest one. The episode optimum is to ask for the E events (and the feeling),
then answer from them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from rlhfkit.tasks.conversation.simulator import FINAL_MARK, Turn, is_final, play
from rlhfkit.tasks.conversation.template import Message
from rlhfkit.tasks.conversation.world import ConversationWorld, chat_id
from rlhfkit.tasks.tldr.judge import Verdict, judge, stated_events, words
from rlhfkit.tasks.tldr.world import FEELINGS, NAMES, RELATIONS, Facts

ADVICE_MARK = "advice:"

# R: weights beside the TL;DR judge's score
COST_PER_TURN = 0.1     # asking must pay for itself: one told event is worth 3/E of coverage
W_ADVICE = 0.5          # advice resting on a told fact, with nothing against what was said
W_ADVICE_BAD = 1.0      # per event the advice invents, was never told, or gets the wrong way round
W_SELF = 1.0            # per event the assistant states both ways across its turns
W_NO_ANSWER = 1.0       # the episode ended without a TL;DR

# r_t: a labeler seeing one turn rewards looking helpful now
R_QUESTION = -0.3       # a question has not helped yet
R_OTHER = -0.5          # neither a question nor an answer
R_ANSWER = 0.5          # an answer of any kind
R_PER_DETAIL = 0.35     # per event stated, specific-sounding whether true or not
MAX_DETAILS = 4
R_PERSON, R_FEELING, R_ADVICE = 0.2, 0.15, 0.4
R_PER_WORD_OVER, WORDS_OK = 0.02, 60   # a wall of text looks worse

_SENTENCE = re.compile(r"[^.?!]+[.?!]*")
_NAMES = frozenset(n.lower() for n in NAMES)
_RELATIONS = frozenset(RELATIONS)


def split_final(message: str) -> tuple[str, str]:
    """(TL;DR text, advice text) of a final message; either is '' when its mark is absent.
    Each part runs from its mark to the other mark or the end, whichever order they come in."""
    low = message.lower()
    t, a = low.find(FINAL_MARK), low.find(ADVICE_MARK)

    def part(mark: int, length: int, other: int) -> str:
        if mark < 0:
            return ""
        start = mark + length
        start += low.startswith(":", start)          # "TL;DR:" as well as "TL;DR"
        end = other if other > mark else len(message)
        return message[start:end].strip()
    return part(t, len(FINAL_MARK), a), part(a, len(ADVICE_MARK), t)


def statements(text: str) -> list[str]:
    """The sentences of a text that are not questions: what the assistant asserts."""
    return [s for s in _SENTENCE.findall(text) if s.strip() and not s.rstrip().endswith("?")]


# ---- r_t -----------------------------------------------------------------------------------------
def turn_reward(message: str) -> float:
    """The myopic per-turn gold reward of one assistant turn, judged on its own."""
    if not is_final(message):
        return R_QUESTION if "?" in message else R_OTHER
    tldr, advice = split_final(message)
    toks = set(words(tldr))
    details = min(len(stated_events(tldr)), MAX_DETAILS)
    n_words = len(words(message))
    return round(R_ANSWER + R_PER_DETAIL * details + R_PERSON * bool(toks & (_NAMES | _RELATIONS))
                 + R_FEELING * bool(toks & set(FEELINGS)) + R_ADVICE * (len(words(advice)) >= 3)
                 - R_PER_WORD_OVER * max(0, n_words - WORDS_OK), 6)


def assistant_turns(messages: list[Message]) -> list[str]:
    return [m["content"] for m in messages if m["role"] == "assistant"]


def turn_rewards(messages: list[Message]) -> list[float]:
    """r_t of each assistant turn of a conversation."""
    return [turn_reward(m) for m in assistant_turns(messages)]


# ---- R -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EpisodeVerdict:
    score: float                  # R
    answered: bool                # the episode ended with a TL;DR
    turns: int                    # assistant turns in the episode
    told: int                     # events the user told
    tldr: Verdict | None          # the TL;DR judge's verdict on the final TL;DR
    advice: float                 # the advice's term of R
    self_contradictions: int


def advice_term(advice: str, facts: Facts, told: tuple[str, ...]) -> float:
    """W_ADVICE when the advice rests on a told event stated the right way round and on nothing
    else; minus W_ADVICE_BAD for each event it states that was not told or is the wrong way round."""
    truth = {e.action: e.done for e in facts.events if e.action in told}
    stated = stated_events(advice)
    grounded = sum(1 for k, pol in stated.items() if k in truth and pol == {truth[k]})
    bad = len(stated) - grounded
    return W_ADVICE * (grounded > 0 and bad == 0) - W_ADVICE_BAD * bad


def self_contradictions(messages: list[str]) -> int:
    """Events the assistant's statements (questions excluded) put both ways, across all its turns."""
    said: dict[str, set[bool]] = {}
    for message in messages:
        for sentence in statements(message):
            for key, pols in stated_events(sentence).items():
                said.setdefault(key, set()).update(pols)
    return sum(1 for pols in said.values() if len(pols) > 1)


def verdict_of_turns(world: ConversationWorld, chat: int, turns: list[Turn]) -> EpisodeVerdict:
    told = turns[-1].revealed if turns else None
    n_told = len(told.events) if told else 0
    selfc = self_contradictions([t.message for t in turns])
    cost = COST_PER_TURN * len(turns) + W_SELF * selfc
    if not turns or not turns[-1].final:
        return EpisodeVerdict(round(-W_NO_ANSWER - cost, 6), False, len(turns), n_told, None, 0.0, selfc)
    facts = world.facts(chat)
    tldr, advice = split_final(turns[-1].message)
    verdict = judge(tldr, facts)
    adv = advice_term(advice, facts, told.events)
    return EpisodeVerdict(round(verdict.score + adv - cost, 6), True, len(turns), n_told, verdict, adv, selfc)


def episode_verdict(world: ConversationWorld, opening: str, messages: list[Message]) -> EpisodeVerdict:
    """R and its parts for a conversation: the assistant's messages are replayed against the user
    (what the user said is the simulator's, whatever `messages` claims), up to the final answer or
    the turn limit."""
    chat = chat_id(opening)
    return verdict_of_turns(world, chat, play(world, chat, assistant_turns(messages)))


def episode_return(world: ConversationWorld, opening: str, messages: list[Message]) -> float:
    """The conversation-level gold return R."""
    return episode_verdict(world, opening, messages).score
