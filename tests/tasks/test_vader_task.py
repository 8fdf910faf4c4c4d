"""The VADER ratings behind the task interface: the very prompts and demonstrations `rlhfkit data
vader` writes, and VADER's compound score as the gold judge. Never touches the network."""
import json

import pytest

from rlhfkit.config import TaskConfig
from rlhfkit.data.records import DataError
from rlhfkit.tasks.vader import VaderTask
from rlhfkit.tasks.vader.config import DataVaderConfig
from rlhfkit.tasks.vader.export import run
from test_vader_data import write_sdist


def read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_prompts_and_demonstrations_are_those_data_vader_writes(tmp_path):
    sdist = write_sdist(tmp_path)
    run(DataVaderConfig(out=str(tmp_path / "out"), archive=str(sdist), seed=3))
    task = VaderTask(TaskConfig(seed=3), archive=str(sdist))
    for split in ("train", "valid", "test"):
        assert task.prompts(split) == [r["prompt"] for r in read(tmp_path / "out" / f"prompts_{split}.jsonl")]
    for split in ("train", "valid"):
        demos = task.demonstrations(split)
        written = read(tmp_path / "out" / f"sft_{split}.jsonl")
        assert [(d.prompt, d.completion) for d in demos] == [(r["prompt"], r["completion"]) for r in written]
    assert task.demonstrations("train"), "the tiny archive has positive training sentences"
    assert task.labelers() == () and task.environment() is None


def test_built_without_the_ratings_read_on_first_use(tmp_path):
    task = VaderTask(TaskConfig(), archive=str(tmp_path / "missing.tar.gz"))   # nothing read yet
    with pytest.raises(DataError, match="no such file or directory"):
        task.prompts("train")


def test_gold_is_vaders_compound_of_opening_and_answer():
    pytest.importorskip("vaderSentiment")
    from rlhfkit.tasks.vader.judges import vader_compound
    good, bad = VaderTask(TaskConfig()).gold(["The movie was", "The movie was"], [" good.", " not good."])
    assert [good, bad] == vader_compound(["The movie was good.", "The movie was not good."])
    assert good > 0.05 > bad
