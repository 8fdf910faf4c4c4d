"""Scorers that people's labels can be held against in the labeling app's admin pages: the gold
judge (for prompts of the built-in world) and a trained reward model. Each is a function
(prompt, answers) -> scores, or None for a prompt it cannot score."""
from __future__ import annotations

from collections.abc import Callable

import torch

from rlhfkit.config import TaskConfig
from rlhfkit.tasks.tldr.judge import gold_score
from rlhfkit.tasks.tldr.world import make_split

Scorer = Callable[[str, list[str]], list[float] | None]


def gold_scorer(task: TaskConfig) -> Scorer:
    facts = {p.prompt: p.facts for split, n in (("train", task.n_train), ("valid", task.n_valid),
                                                ("test", task.n_test)) for p in make_split(task.seed, split, n)}

    def score(prompt: str, answers: list[str]) -> list[float] | None:
        return [gold_score(a, facts[prompt]) for a in answers] if prompt in facts else None
    return score


def reward_model_scorer(path: str) -> Scorer:
    from rlhfkit.data.collate import encode_demonstration, pad_batch
    from rlhfkit.data.records import DataError, Demonstration
    from rlhfkit.models.heads import load_scalar_model, sequence_rewards
    from rlhfkit.models.lm import context_length
    model, tokenizer = load_scalar_model(path)

    @torch.no_grad()
    def score(prompt: str, answers: list[str]) -> list[float] | None:
        try:
            examples = [encode_demonstration(Demonstration(prompt, a), tokenizer, context_length(model)) for a in answers]
        except DataError:       # longer than the reward model's context
            return None
        batch = pad_batch(examples, tokenizer.pad_token_id)
        return sequence_rewards(model, batch["input_ids"], batch["attention_mask"]).tolist()
    return score
