"""Scorers that people's labels can be held against in the labeling app's admin pages: the gold
judge (for prompts of the built-in world) and a trained reward model. Each is a function
(prompt, answers) -> scores, or None for a prompt it cannot score."""
from __future__ import annotations

from collections.abc import Callable

from rlhfkit.config import TaskConfig
from rlhfkit.tasks.tldr.judge import gold_score
from rlhfkit.tasks.tldr.world import facts_by_prompt

Scorer = Callable[[str, list[str]], list[float] | None]


def gold_scorer(task: TaskConfig) -> Scorer:
    facts = facts_by_prompt(task.seed, task.n_train, task.n_valid, task.n_test)

    def score(prompt: str, answers: list[str]) -> list[float] | None:
        return [gold_score(a, facts[prompt]) for a in answers] if prompt in facts else None
    return score


def reward_model_scorer(path: str) -> Scorer:
    from rlhfkit.data.records import Comparison, DataError
    from rlhfkit.models.heads import load_scalar_model
    from rlhfkit.models.lm import context_length
    from rlhfkit.train.reward_model import encode_comparison, score_groups
    model, tokenizer = load_scalar_model(path)

    def score(prompt: str, answers: list[str]) -> list[float] | None:
        try:
            group = encode_comparison(Comparison(prompt, tuple(answers)), tokenizer, context_length(model))
        except DataError:       # longer than the reward model's context
            return None
        return score_groups(model, [group], tokenizer.pad_token_id)[0]
    return score
