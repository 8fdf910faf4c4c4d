"""The gold judge as an RL reward: the upper bound of what RL reaches when the reward model is
not the limit (the role the gold reward model plays in Gao et al. 2022).

It exists to locate a shortfall, never as a method. PPO or RSFT against it
(`rlhfkit rl --reward rlhfkit.tasks.tldr.oracle:gold_reward`, `rlhfkit rsft --reward ...`) shows
whether a gap to the gold judge comes from the reward model or from the update; the demo's
gold_rsft and gold_ppo rows are those upper bounds on the same samples (`gold_reward_for` over the
demo's own world). `gold_reward` takes prompts of the default world (`TaskConfig()`).
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
    """The gold score of each completion as a TL;DR of its prompt's post (of the default world)."""
    return gold_scores(_facts(), prompts, completions, "the default world (TaskConfig())")


def gold_scores(facts: dict[str, Facts], prompts: list[str], completions: list[str], world: str) -> list[float]:
    """The gold score of each completion as a TL;DR of its prompt's post, the posts' facts given."""
    missing = next((p for p in prompts if p not in facts), None)
    if missing is not None:
        raise ValueError(f"gold reward: prompt is not a post of {world}: {missing[:80]!r}")
    return [gold_score(c, facts[p]) for p, c in zip(prompts, completions, strict=True)]


def gold_reward_for(facts: dict[str, Facts]):
    """The gold reward over a given world's posts (e.g. the demo's, whatever its TaskConfig)."""
    def gold_reward(prompts: list[str], completions: list[str]) -> list[float]:
        return gold_scores(facts, prompts, completions, "this world")
    return gold_reward
