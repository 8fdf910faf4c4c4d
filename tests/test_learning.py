"""Slow learning tests: the claims of the demo on a small world. Skipped by default; run with
`python -m pytest -m slow` (the benchmarks do)."""
import pytest

from rlhfkit.config import DemoConfig, RLAlgoConfig, TaskConfig
from rlhfkit.pipelines.demo import run


@pytest.mark.slow
def test_ppo_beats_sft_on_a_small_world(tmp_path):
    cfg = DemoConfig(out=str(tmp_path / "demo"), n_prompts=300, label_budget=3000,
                     task=TaskConfig(n_train=1500, n_test=300), rl=RLAlgoConfig(steps=30))
    cfg.validate()
    result = run(cfg)["winrate_vs_reference"]
    assert result["ppo"]["mean"] > result["sft"]["mean"] + 0.05, result
