"""The gold judge as an RL reward: the upper bound of what RL reaches when the reward model is
not the limit (the role the gold reward model plays in Gao et al. 2022).

No method of the demo uses it; it exists to locate a shortfall. On seed 0 of the demo, PPO against
this reward (`rlhfkit rl --reward rlhfkit.tasks.tldr.oracle:gold_reward`) shows whether a gap to
the gold judge comes from the reward model or from the RL update (README, "Where PPO stops").

Prompts must come from the default world (`TaskConfig()`: its seed and split sizes).
"""
from __future__ import annotations

from functools import lru_cache

from rlhfkit.config import TaskConfig
from rlhfkit.tasks.tldr.judge import gold_score
from rlhfkit.tasks.tldr.world import Facts, facts_by_prompt


@lru_cache(maxsize=1)
def _facts() -> dict[str, Facts]:
    task = TaskConfig()
    return facts_by_prompt(task.seed, task.n_train, task.n_valid, task.n_test)


def gold_reward(prompts: list[str], completions: list[str]) -> list[float]:
    """The gold score of each completion as a TL;DR of its prompt's post."""
    facts = _facts()
    missing = next((p for p in prompts if p not in facts), None)
    if missing is not None:
        raise ValueError(f"gold_reward: prompt is not a post of the default world (TaskConfig()): {missing[:80]!r}")
    return [gold_score(c, facts[p]) for p, c in zip(prompts, completions, strict=True)]
