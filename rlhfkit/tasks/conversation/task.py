"""The conversation world behind the task interface (`rlhfkit.tasks.base.Task`), and its environment.

The environment's reward is the gold return R on the turn that ends the episode (the final answer,
or the turn limit) and 0 before it, so every turn earns credit only through the episode's return;
the myopic per-turn reward r_t is not the environment's (`gold.turn_reward`, for per-turn
baselines and reports).
"""
from __future__ import annotations

from rlhfkit.data.records import Conversation, Where
from rlhfkit.tasks.base import Message, Step
from rlhfkit.tasks.conversation.assistants import transcripts
from rlhfkit.tasks.conversation.gold import episode_return, verdict_of_turns
from rlhfkit.tasks.conversation.labelers import CONVERSATION_LABELERS, ConversationLabeler
from rlhfkit.tasks.conversation.simulator import play
from rlhfkit.tasks.conversation.template import USER, as_conversation, observation
from rlhfkit.tasks.conversation.world import ConversationWorld, chat_id


class ConversationEnvironment:
    """Stateless: each step replays the episode's assistant messages against the user simulator."""

    def __init__(self, world: ConversationWorld) -> None:
        self.world = world

    def reset(self, opening: str) -> str:
        chat_id(opening)     # refuses a text that is not an opening of this world
        return opening       # an opening already ends with the assistant header

    def step(self, history: list[Message], assistant_message: str) -> Step:
        chat = chat_id(history[0]["content"])
        messages = [m["content"] for m in history if m["role"] == "assistant"] + [assistant_message]
        turns = play(self.world, chat, messages)
        last = turns[-1]
        if last.reply is None:
            return Step("", verdict_of_turns(self.world, chat, turns).score, True)
        return Step(observation(last.reply), 0.0, False)


def split_episode(world: ConversationWorld, opening: str, text: str) -> list[str]:
    """The assistant's turns of an episode from its text (what follows the opening: turn,
    observation, turn, ...). An observation is recognised only where replaying the turns so far
    gives exactly it, so a turn that itself writes "USER: ..." stays one turn."""
    chat, turns, rest = chat_id(opening), [], text
    while (cut := _observation_at(world, chat, turns, rest)) is not None:
        at, seen = cut
        turns.append(rest[:at])
        rest = rest[at + len(seen):]
    return turns + [rest]


def _observation_at(world: ConversationWorld, chat: int, turns: list[str], rest: str) -> tuple[int, str] | None:
    """Where in `rest` the environment's observation after the next turn starts, and its text."""
    at = rest.find(USER)
    while at >= 0:
        last = play(world, chat, turns + [rest[:at]])[-1]
        if last.reply is not None and rest.startswith(observation(last.reply), at):
            return at, observation(last.reply)
        at = rest.find(USER, at + 1)
    return None


class ConversationTask:
    name = "conversation"

    def __init__(self, cfg, events: int | None = None) -> None:
        self.cfg = cfg
        # E: the constructor's (a dose sweep builds one task per E), else the run's `--task.events`
        events = events if events is not None else cfg.events
        self.world = ConversationWorld(cfg.seed, events)

    def size(self, split: str) -> int:
        sizes = {"train": self.cfg.n_train, "valid": self.cfg.n_valid, "test": self.cfg.n_test}
        if split not in sizes:
            raise ValueError(f"conversation: unknown split {split!r}; expected one of {tuple(sizes)}")
        return sizes[split]

    def prompts(self, split: str) -> list[str]:
        return self.world.openings(split, self.size(split))

    def transcripts(self, split: str, assistant: str | None = None) -> list[list[Message]]:
        """Whole conversations as `messages` records, by one scripted assistant or the mix."""
        return transcripts(self.world, split, self.size(split), assistant)

    def demonstrations(self, split: str) -> list[Conversation]:
        """The mixed-skill transcripts whole, one record each, laid out as episodes are: what
        `rlhfkit sft --data conversation` trains on (loss on every assistant turn and its EOS)."""
        return [as_conversation(m, Where(f"conversation {split}", i))
                for i, m in enumerate(self.transcripts(split), start=1)]

    def labelers(self) -> tuple[ConversationLabeler, ...]:
        return CONVERSATION_LABELERS

    def episode_return(self, opening: str, messages: list[Message]) -> float:
        return episode_return(self.world, opening, messages)

    def gold(self, prompts: list[str], answers: list[str]) -> list[float]:
        """R of each episode from its opening and text (evaluation only)."""
        return [self.episode_return(p, [{"role": "assistant", "content": t}
                                        for t in split_episode(self.world, p, text)])
                for p, text in zip(prompts, answers, strict=True)]

    def environment(self) -> ConversationEnvironment:
        return ConversationEnvironment(self.world)
