"""The gold judge: scores any string as a TL;DR of a post, against the post's fact record.

EVALUATION ONLY. It stands in for careful human evaluation (as the gold reward model does in
Gao et al. 2022). Only `rlhfkit.evaluate`, the simulated labelers and `oracle.py` (the judge as
an RL reward on request, for an upper bound) may import it; nothing under `train/`, `rollout/`,
`algorithms/` or `models/` may, so no method of the demo is ever trained on it.

The score rewards covering the key events with the right polarity (did / did not), naming the
people, the feeling and the question; it penalises contradictions (a flipped polarity costs
more than an omission), invented events or people, copied filler, length beyond a budget and
disfluency (words outside the world's lexicon, repetition). It never raises.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from functools import lru_cache

from rlhfkit.tasks.tldr.world import (ACTIONS, FILLER, FILLER_KEYS, NAMES, QUESTION_KEYS, QUESTIONS,
                                      RELATIONS, Facts, make_split)

NEGATIONS = frozenset({"not", "never", "didn't", "didnt", "no", "don't", "dont", "wasn't", "isn't",
                       "doesn't", "won't", "without", "failed", "refused"})
ACTION_KEYS = frozenset(a.key for a in ACTIONS)
_WORD = re.compile(r"[a-z0-9']+|[;,.!?]")
_PUNCTUATION = frozenset(";,.!?")
_CLAUSE_BREAKS = _PUNCTUATION | {"and", "but", "then", "also"}

# weights of the score; see module docstring
W_COVERAGE, W_PEOPLE, W_FEELING, W_QUESTION = 3.0, 0.5, 0.25, 0.25
W_CONTRADICTION, W_INVENTION, W_FILLER = 2.0, 1.0, 0.4
W_WORD, W_OVER_BUDGET, W_DISFLUENCY = 0.02, 0.1, 3.0


@dataclass(frozen=True)
class Verdict:
    score: float
    coverage: float         # share of key events stated with the right polarity
    contradictions: int     # key events stated with the wrong polarity
    inventions: int         # events, people or relations the post does not have
    filler: int             # irrelevant details copied from the post
    people: float           # share of the post's people named (by name or relation)
    feeling: bool
    question: bool
    n_words: int
    over_budget: int        # words beyond the length budget
    disfluency: float       # out-of-lexicon share + repeated-trigram share

    def as_dict(self) -> dict:
        return asdict(self)


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower().replace("\u2019", "'"))


def _clauses(tokens: list[str]) -> list[list[str]]:
    clauses, current = [], []
    for tok in tokens:
        if tok in _CLAUSE_BREAKS:
            if current:
                clauses.append(current)
            current = []
        else:
            current.append(tok)
    if current:
        clauses.append(current)
    return clauses


def stated_events(text: str) -> dict[str, set[bool]]:
    """Each event key the text mentions -> the polarities it is stated with (True = done).
    A clause's polarity is negative when a negation word precedes the key within the clause."""
    found: dict[str, set[bool]] = {}
    for clause in _clauses(words(text)):
        for i, tok in enumerate(clause):
            if tok in ACTION_KEYS:
                negated = any(t in NEGATIONS for t in clause[:i])
                found.setdefault(tok, set()).add(not negated)
    return found


def length_budget(facts: Facts) -> int:
    return 12 + 7 * len(facts.events)


def judge(text: object, facts: Facts) -> Verdict:
    """Score `text` as a TL;DR of the post written from `facts`. Any input gives a float."""
    text = text if isinstance(text, str) else ("" if text is None else str(text))
    toks = [t for t in words(text) if t not in _PUNCTUATION]
    vocab = set(toks)
    stated = stated_events(text)
    truth = {e.action: e.done for e in facts.events}
    covered = sum(1 for key, done in truth.items() if stated.get(key) == {done})
    contradictions = sum(1 for key, done in truth.items() if (not done) in stated.get(key, set()))
    invented_events = sum(1 for key in stated if key not in truth)
    names = {p.name.lower() for p in facts.people}
    relations = {p.relation for p in facts.people}
    invented_people = len((vocab & _NAMES) - names) + len((vocab & _RELATIONS) - relations)
    people = sum(1 for p in facts.people if p.name.lower() in vocab or p.relation in vocab)
    filler = sum(1 for k in FILLER_KEYS if k in vocab)
    feeling = facts.feeling in vocab
    question = QUESTION_KEYS[facts.question] in " ".join(toks)
    n_words = len(toks)
    over = max(0, n_words - length_budget(facts))
    disfluency = _disfluency(toks)
    score = (W_COVERAGE * covered / len(truth) + W_PEOPLE * people / len(facts.people)
             + W_FEELING * feeling + W_QUESTION * question
             - W_CONTRADICTION * contradictions - W_INVENTION * (invented_events + invented_people)
             - W_FILLER * filler - W_WORD * n_words - W_OVER_BUDGET * over - W_DISFLUENCY * disfluency)
    return Verdict(score=round(score, 6), coverage=covered / len(truth), contradictions=contradictions,
                   inventions=invented_events + invented_people, filler=filler,
                   people=people / len(facts.people), feeling=feeling, question=question,
                   n_words=n_words, over_budget=over, disfluency=disfluency)


def gold_score(text: object, facts: Facts) -> float:
    return judge(text, facts).score


def _disfluency(toks: list[str]) -> float:
    if not toks:
        return 0.0
    oov = sum(1 for t in toks if t not in lexicon()) / len(toks)
    # trigrams, not bigrams: "did not" recurs in fluent summaries, "did not pay" should not
    trigrams = list(zip(toks, toks[1:], toks[2:]))
    repeated = (len(trigrams) - len(set(trigrams))) / len(trigrams) if trigrams else 0.0
    return oov + repeated


_NAMES = frozenset(n.lower() for n in NAMES)
_RELATIONS = frozenset(RELATIONS)


@lru_cache(maxsize=1)
def lexicon() -> frozenset[str]:
    """Every word the world and its writers can produce."""
    from rlhfkit.tasks.tldr.writers import WRITERS, oracle_summary, write_summary
    import random
    rng = random.Random(0)
    texts = [q for pair in QUESTIONS for q in pair] + [f for _, f in FILLER]
    for post in make_split(0, "pretrain", 400):
        texts.append(post.text)
        texts.append(oracle_summary(post.facts))
        texts += [write_summary(post, w, rng) for w in WRITERS]
    return frozenset(t for text in texts for t in words(text)) | _NAMES | _RELATIONS
