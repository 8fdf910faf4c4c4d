from rlhfkit.tasks.tldr.labels import prompts_for_budget, rank_answers
from rlhfkit.tasks.tldr.world import make_split
from rlhfkit.tasks.tldr.writers import oracle_summary


def test_budget_counts_pairwise_comparisons():
    assert prompts_for_budget(6000, 4) == 1000 and prompts_for_budget(100, 2) == 100


def test_labelers_rank_the_oracle_above_an_empty_answer():
    posts = make_split(0, "train", 200)
    records = rank_answers(posts, [[" i feel.", oracle_summary(p.facts)] for p in posts], seed=0)
    best = sum(r["completions"][0] != " i feel." for r in records) / len(records)
    assert best > 0.9
    assert all(sorted(r["completions"]) == sorted([" i feel.", oracle_summary(p.facts)])
               for r, p in zip(records, posts))
