"""The task interface: everything a world hands to the stages, and the registry of worlds.

A task is one folder in `tasks/` with one class that has these methods, and one line in `TASKS`.
Stages name a task only through the string a user gives (`--prompts tldr`, `--data tldr`): no
trainer imports a task. Nothing here imports torch or anything above `tasks/`.

    prompts(split)         -> the openings an episode starts from (train, valid or test)
    demonstrations(split)  -> records for SFT: Demonstration (prompt, completion), or a multi-turn
                              task's Conversation (a whole transcript, laid out as its episodes are)
    labelers()             -> the simulated labelers who rank answers (for comparisons)
    gold(prompts, answers) -> the evaluation-only judge; training never receives it
    environment()          -> an Environment for multi-turn episodes, or None (one answer per prompt)

An environment plays the other side of a conversation. `reset(opening)` gives the text the first
assistant turn continues; `step(history, assistant_message)` answers a finished assistant turn
with the next observation (the text appended before the next assistant turn, formatting
included), that turn's reward, and whether the episode is over. `history` holds the messages so
far, {"role": "user" | "assistant", "content": str}, the opening first, so an environment keeps no
state between calls and a batch of episodes can be stepped in any order.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Protocol

Message = dict[str, str]     # {"role": "user" | "assistant", "content": ...}


@dataclass(frozen=True)
class Step:
    observation: str     # appended after the assistant's turn ('' once done)
    reward: float        # this turn's reward: placed on the turn's last token
    done: bool


class Environment(Protocol):
    def reset(self, opening: str) -> str: ...

    def step(self, history: list[Message], assistant_message: str) -> Step: ...


class Task(Protocol):
    name: str

    def prompts(self, split: str) -> list[str]: ...

    def demonstrations(self, split: str) -> list: ...

    def labelers(self) -> tuple: ...

    def gold(self, prompts: list[str], answers: list[str]) -> list[float]: ...

    def environment(self) -> Environment | None: ...


@dataclass(frozen=True)
class TaskEntry:
    factory: str          # "module:Class", called with the run's TaskConfig
    environment: bool     # episodes are multi-turn, rewarded by the environment


TASKS: dict[str, TaskEntry] = {
    "tldr": TaskEntry("rlhfkit.tasks.tldr:TldrTask", environment=False),
    "echo": TaskEntry("rlhfkit.tasks.echo:EchoTask", environment=True),
    "conversation": TaskEntry("rlhfkit.tasks.conversation:ConversationTask", environment=True),
}


def load_task(name: str, cfg) -> Task:
    """The task registered as `name`, built from the run's TaskConfig section."""
    module, _, cls = TASKS[name].factory.partition(":")
    return getattr(importlib.import_module(module), cls)(cfg)
