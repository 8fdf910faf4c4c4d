"""Labels in the loop: the simulated labelers rank answers sampled from a policy.

Used by the demo (and by anyone running the built-in task) between SFT and the reward model,
as human labelers were in Stiennon et al.: K answers per prompt, one labeler ranks them,
within a budget counted in pairwise comparisons (a K-way ranking holds C(K, 2) of them).
"""
from __future__ import annotations

import math
import random

from rlhfkit.tasks.tldr.labelers import LABELERS, rank
from rlhfkit.tasks.tldr.world import Post


def prompts_for_budget(budget: int, k: int) -> int:
    """How many K-way rankings a budget of pairwise comparisons buys."""
    return max(1, budget // math.comb(k, 2))


def rank_answers(posts: list[Post], answers: list[list[str]], seed: int) -> list[dict]:
    """One ranking record per post: {"prompt", "completions": [best..worst], "labeler"}.
    Identical answers are kept: a labeler ranks what it is shown."""
    rng = random.Random(f"label-loop-{seed}")
    records = []
    for post, group in zip(posts, answers, strict=True):
        labeler = rng.choice(LABELERS)
        order = rank(labeler, group, post.facts, rng)
        records.append({"prompt": post.prompt, "completions": [group[i] for i in order], "labeler": labeler.name})
    return records
