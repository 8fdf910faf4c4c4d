"""The Python API: the README's example runs as it stands; configs are checked as on the command line."""
import re
import runpy
from pathlib import Path

import pytest

import rlhfkit
from rlhfkit.config import ConfigError, RLConfig, SFTConfig

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_example() -> str:
    text = README.read_text()
    return re.search(r"<!-- python-api-example -->\n```python\n(.*?)```", text, re.S).group(1)


def test_the_readme_example_runs_from_a_fresh_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)            # as from a fresh clone: the shipped base model, nothing in runs/
    (tmp_path / "example.py").write_text(readme_example())
    runpy.run_path(str(tmp_path / "example.py"), run_name="__main__")
    printed = dict(line.split(" ", 1) for line in capsys.readouterr().out.splitlines() if line[:4] in ("sft ", "rloo"))
    assert set(printed) == {"sft", "rloo"}
    assert float(printed["sft"].split()[1]) == pytest.approx(0.0, abs=1e-4)   # KL of the reference to itself
    assert (tmp_path / "runs/py/rloo/model/README.md").is_file()  # saved with its model card
    log = (tmp_path / "runs/py/rloo/log.jsonl").read_text().splitlines()
    assert len(log) == 4


def test_a_stage_takes_only_its_own_config_checked_as_the_command_line_checks_it(tmp_path):
    with pytest.raises(TypeError, match=r"rlhfkit.sft takes a SFTConfig \(rlhfkit.config\), got RLConfig"):
        rlhfkit.sft(RLConfig())
    bad = SFTConfig(out=str(tmp_path / "x"))
    bad.train.batch_size = 3.7
    with pytest.raises(ConfigError, match="train.batch_size: expected an integer, got 3.7"):
        rlhfkit.sft(bad)
    assert not (tmp_path / "x").exists()
