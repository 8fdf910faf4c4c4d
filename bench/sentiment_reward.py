"""A reward function for `rlhfkit rl --reward bench/sentiment_reward.py:positive`: VADER's compound
sentiment of each completion (no reward model to train first, so a systems benchmark times PPO
alone)."""
from __future__ import annotations

from collections.abc import Sequence

from rlhfkit.tasks.vader.judges import vader_compound


def positive(prompts: Sequence[str], completions: Sequence[str]) -> list[float]:
    return vader_compound(completions)
