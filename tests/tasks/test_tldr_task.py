"""The TL;DR world behind the task interface gives the stages exactly what they read before it."""
import pytest

from rlhfkit.config import SFTConfig, TaskConfig
from rlhfkit.data.records import Demonstration, Where
from rlhfkit.rollout.prompts import load_prompts
from rlhfkit.tasks.base import TASKS, load_task
from rlhfkit.tasks.tldr import TldrTask
from rlhfkit.tasks.tldr.judge import gold_score
from rlhfkit.tasks.tldr.labelers import LABELERS
from rlhfkit.tasks.tldr.world import make_split
from rlhfkit.tasks.tldr.writers import reference_summary
from rlhfkit.train import sft

CFG = TaskConfig(seed=2, n_train=5, n_valid=3, n_test=4)
SIZES = {"train": 5, "valid": 3, "test": 4}


def old_demonstrations(seed: int, split: str, n: int) -> list[Demonstration]:
    """`train/sft.py:tldr_demonstrations` as it was before the task interface."""
    return [Demonstration(p.prompt, reference_summary(p, seed)[1], Where(f"tldr {split} post", i))
            for i, p in enumerate(make_split(seed, split, n), start=1)]


def test_registered_and_built_from_the_task_config():
    assert TASKS["tldr"].environment is False
    task = load_task("tldr", CFG)
    assert isinstance(task, TldrTask) and task.name == "tldr" and task.environment() is None
    assert task.labelers() is LABELERS


@pytest.mark.parametrize("split", ["train", "valid", "test"])
def test_prompts_are_the_worlds_posts(split):
    assert load_task("tldr", CFG).prompts(split) == [p.prompt for p in make_split(2, split, SIZES[split])]
    # the stages read them through the registry: `--prompts tldr`
    assert load_prompts("tldr", CFG, split, None, 0) == [p.prompt for p in make_split(2, split, SIZES[split])]


@pytest.mark.parametrize("split", ["train", "valid"])
def test_demonstrations_are_the_old_reference_tldrs(split):
    assert load_task("tldr", CFG).demonstrations(split) == old_demonstrations(2, split, SIZES[split])
    # `--data tldr`: sft reads them through the registry
    assert sft.load_data("tldr", None, SFTConfig(model="m", task=CFG), split) == old_demonstrations(2, split, SIZES[split])


def test_unknown_split_is_refused():
    with pytest.raises(ValueError, match="unknown split 'pretrain'"):
        load_task("tldr", CFG).prompts("pretrain")


def test_gold_is_the_judge_on_any_split_and_refuses_other_prompts():
    task = load_task("tldr", CFG)
    posts = make_split(2, "train", 5)[:1] + make_split(2, "test", 4)[-1:]
    answers = [reference_summary(posts[0], 2)[1], "nothing happened"]
    assert task.gold([p.prompt for p in posts], answers) == [gold_score(a, p.facts) for a, p in zip(answers, posts)]
    with pytest.raises(ValueError, match="not a post of this world"):
        task.gold(["POST: a post from elsewhere\nTL;DR:"], ["an answer"])


HARD = "decent,rushed,rambler,sloppy,copycat"


def test_the_hard_world_draws_its_references_without_the_careful_writer():
    from rlhfkit.errors import InputError
    from rlhfkit.tasks.tldr.export import stats
    from rlhfkit.tasks.tldr.writers import WRITERS, writer_pool
    assert writer_pool("") == WRITERS and [w.name for w in writer_pool("sloppy, decent")] == ["decent", "sloppy"]
    with pytest.raises(InputError, match="task.writers: unknown writer 'tidy'; choose from careful, decent"):
        writer_pool("decent,tidy")
    posts = make_split(0, "train", 300)
    easy = [reference_summary(p, 0)[0] for p in posts]
    hard = [reference_summary(p, 0, writers=HARD)[0] for p in posts]
    assert "careful" in easy and "careful" not in hard and set(hard) == set(HARD.split(","))
    # the SFT data, the evaluation's references and the statistics all come from the world's writers
    task = load_task("tldr", TaskConfig(n_train=300, writers=HARD))
    assert [d.completion for d in task.demonstrations("train")] == [reference_summary(p, 0, writers=HARD)[1]
                                                                     for p in posts]
    # poorer references: the oracle beats them more often
    assert stats(0, 300, HARD)["oracle_winrate_vs_reference"] > stats(0, 300)["oracle_winrate_vs_reference"]


def test_oracle_share_counts_samples_at_the_oracles_gold_score():
    from rlhfkit.evaluate.probes import oracle_share
    from rlhfkit.tasks.tldr.writers import oracle_summary
    posts = make_split(0, "test", 2)
    records = [{"candidates": [oracle_summary(p.facts), " nothing happened.", " nothing.", oracle_summary(p.facts)]}
               for p in posts]
    assert gold_score(" nothing happened.", posts[0].facts) < gold_score(oracle_summary(posts[0].facts), posts[0].facts)
    assert oracle_share(records, posts) == 0.5


def test_an_unknown_writer_is_one_line_before_the_demo_starts(capsys):
    from rlhfkit.cli import main
    assert main(["demo", "--task.writers", "tidy", "--out", "/nonexistent/never"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "task.writers: unknown writer 'tidy'" in err
