"""The synthetic TL;DR world behind the task interface (`rlhfkit.tasks.base.Task`).

Everything is a function of the run's TaskConfig (seed and split sizes), so the stages that take
`--prompts tldr` or `--data tldr` regenerate the same posts, references and gold scores anywhere.
"""
from __future__ import annotations

from rlhfkit.config import TaskConfig
from rlhfkit.data.records import Demonstration, Where
from rlhfkit.tasks.tldr.judge import gold_score
from rlhfkit.tasks.tldr.labelers import LABELERS, Labeler
from rlhfkit.tasks.tldr.world import Facts, Post, facts_by_prompt, make_split
from rlhfkit.tasks.tldr.writers import reference_summary


class TldrTask:
    name = "tldr"

    def __init__(self, cfg: TaskConfig) -> None:
        self.cfg = cfg
        self._facts: dict[str, Facts] | None = None

    def size(self, split: str) -> int:
        """How many posts the config gives `split` (train, valid or test)."""
        sizes = {"train": self.cfg.n_train, "valid": self.cfg.n_valid, "test": self.cfg.n_test}
        if split not in sizes:
            raise ValueError(f"tldr: unknown split {split!r}; expected one of {tuple(sizes)}")
        return sizes[split]

    def posts(self, split: str) -> list[Post]:
        return make_split(self.cfg.seed, split, self.size(split))

    def prompts(self, split: str) -> list[str]:
        return [p.prompt for p in self.posts(split)]

    def demonstrations(self, split: str) -> list[Demonstration]:
        """Each post with one simulated writer's reference TL;DR (uneven skill, like real references)."""
        return [Demonstration(p.prompt, reference_summary(p, self.cfg.seed, writers=self.cfg.writers)[1],
                              Where(f"tldr {split} post", i))
                for i, p in enumerate(self.posts(split), start=1)]

    def labelers(self) -> tuple[Labeler, ...]:
        return LABELERS

    def facts(self) -> dict[str, Facts]:
        """The fact record behind every train, valid and test prompt; built once, since gold is
        called once per batch."""
        if self._facts is None:
            self._facts = facts_by_prompt(self.cfg.seed, self.cfg.n_train, self.cfg.n_valid, self.cfg.n_test)
        return self._facts

    def gold(self, prompts: list[str], answers: list[str]) -> list[float]:
        """The gold judge's score of each answer as a TL;DR of its prompt's post (evaluation only)."""
        facts = self.facts()
        missing = next((p for p in prompts if p not in facts), None)
        if missing is not None:
            raise ValueError(f"tldr gold: prompt is not a post of this world (task.seed {self.cfg.seed}, "
                             f"n_train/n_valid/n_test {self.cfg.n_train}/{self.cfg.n_valid}/{self.cfg.n_test}): "
                             f"{missing[:80]!r}")
        return [gold_score(a, facts[p]) for p, a in zip(prompts, answers, strict=True)]

    def environment(self) -> None:
        return None     # one answer per prompt: no conversation to continue
