"""`echo`: a small multi-turn game, deterministic and pure Python, for testing multi-turn RL.

Each episode names a letter per turn ("USER: e"); the assistant should answer with that letter.
The reward comes only at the end, after `TURNS` turns: the share of turns whose answer contains
the letter asked for. So every turn's tokens earn credit only through the
episode's return, and the user's turns, which sit between the assistant's, are not actions.
"""
from __future__ import annotations

import random

from rlhfkit.data.records import Demonstration, Where
from rlhfkit.tasks.base import Message, Step

TURNS = 3
LETTERS = "ae"
SPLIT_OFFSET = {"train": 0, "valid": 1_000_000, "test": 2_000_000}


def letters_of(opening: str) -> str:
    """The letter asked for at each turn, drawn from the opening's game number."""
    rng = random.Random(opening)
    return "".join(rng.choice(LETTERS) for _ in range(TURNS))


def ask(letter: str) -> str:
    return f"\nUSER: {letter}\nASSISTANT:"


def hit(answer: str, letter: str) -> bool:
    return letter in answer.lower()


def episode_return(opening: str, answers: list[str]) -> float:
    return sum(hit(a, x) for a, x in zip(answers, letters_of(opening))) / TURNS


class EchoEnvironment:
    def reset(self, opening: str) -> str:
        return opening + ask(letters_of(opening)[0])

    def step(self, history: list[Message], assistant_message: str) -> Step:
        answers = [m["content"] for m in history if m["role"] == "assistant"] + [assistant_message]
        opening = history[0]["content"].split("\n", 1)[0]
        if len(answers) < TURNS:
            return Step(ask(letters_of(opening)[len(answers)]), 0.0, False)
        return Step("", episode_return(opening, answers), True)


class EchoTask:
    name = "echo"

    def __init__(self, cfg) -> None:
        self.sizes = {"train": cfg.n_train, "valid": cfg.n_valid, "test": cfg.n_test}
        self.seed = cfg.seed

    def prompts(self, split: str) -> list[str]:
        start = SPLIT_OFFSET[split] + 10_000_000 * self.seed
        return [f"echo game {start + i}: answer with the letter asked for." for i in range(self.sizes[split])]

    def demonstrations(self, split: str) -> list[Demonstration]:
        """The first turn answered perfectly."""
        return [Demonstration(EchoEnvironment().reset(p), " " + letters_of(p)[0] * 3, Where(f"echo {split}", i))
                for i, p in enumerate(self.prompts(split), start=1)]

    def labelers(self) -> tuple:
        return ()

    def gold(self, prompts: list[str], answers: list[str]) -> list[float]:
        """The return of each whole episode, from its text (the answers between the user's turns)."""
        out = []
        for p, text in zip(prompts, answers, strict=True):
            turns, rest = [], text
            for x in letters_of(p)[1:]:
                turn, _, rest = rest.partition(ask(x))
                turns.append(turn)
            out.append(episode_return(p, turns + [rest]))
        return out

    def environment(self) -> EchoEnvironment:
        return EchoEnvironment()
