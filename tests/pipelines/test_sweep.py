"""The sweep's paired differences between methods, against hand-computed values, and another
sweep's methods joined seed by seed."""
import json
from pathlib import Path

import pytest

from rlhfkit.errors import InputError
from rlhfkit.pipelines.sweep import joined, paired_differences


def _seed(rsft: float, ppo: float, gold: float) -> dict:
    method = lambda win, score: {"winrate_vs_reference": {"mean": win}, "gold_score_mean": score}  # noqa: E731
    return {"methods": {"sft": method(0.4, 1.8), "rsft@100": method(rsft, 2.5), "ppo@100": method(ppo, 2.0),
                        "ppo@300": method(ppo, 2.0), "gold_ppo@100": method(gold, 3.0)}}


def test_each_pair_is_differenced_seed_by_seed_at_the_budgets_both_ran():
    rows = paired_differences([_seed(0.60, 0.50, 0.70), _seed(0.70, 0.50, 0.80), _seed(0.65, 0.60, 0.75)])
    assert [(r["a"], r["b"], r["samples"]) for r in rows] == [("rsft", "ppo", 100), ("gold_ppo", "ppo", 100),
                                                               ("gold_ppo", "rsft", 100)]
    rsft_ppo = rows[0]["winrate"]
    # differences 0.10, 0.20, 0.05: mean 0.1167, sd 0.0764, t(2) 4.303 -> half width 0.1898
    assert rsft_ppo["mean"] == pytest.approx(0.35 / 3)
    assert rsft_ppo["ci_high"] - rsft_ppo["mean"] == pytest.approx(4.303 * 0.076376 / 3 ** 0.5, rel=1e-4)
    # gold_ppo - rsft is 0.10 in every seed: no spread, no width
    assert rows[2]["winrate"]["ci_low"] == pytest.approx(0.10) and rows[2]["winrate"]["ci_high"] == pytest.approx(0.10)
    assert rows[0]["gold"]["mean"] == pytest.approx(0.5)


def test_one_seed_gives_the_difference_without_an_interval():
    rows = paired_differences([_seed(0.60, 0.50, 0.70)])
    assert rows[0]["winrate"] == {"mean": pytest.approx(0.10), "ci_low": None, "ci_high": None}


def _record(tmp_path, name: str, seed: int, methods: dict, demo: dict) -> Path:
    d = tmp_path / name / f"seed{seed}"
    d.mkdir(parents=True)
    (d / "job.json").write_text(json.dumps({"fingerprint": {"stage": "sweep", "seed": seed, "demo": demo},
                                            "result": {"methods": methods}}))
    return tmp_path / name


def test_another_sweeps_methods_join_seed_by_seed_and_a_foreign_one_is_refused(tmp_path):
    demo = {"sft": {"lr": 1e-4}, "label_budget": 100}       # as demo_settings gives it: ignored fields dropped
    own = _seed(0.60, 0.50, 0.70)["methods"]
    del own["gold_ppo@100"]
    gold = {"sft": own["sft"], "gold_ppo@100": {"winrate_vs_reference": {"mean": 0.8}, "gold_score_mean": 3.0},
            "ppo@100": {"winrate_vs_reference": {"mean": 0.0}, "gold_score_mean": 0.0}}
    # a record may hold a field that changes no result (threads): it is not a difference
    other = _record(tmp_path, "gold", 0, gold, demo | {"sft": {"lr": 1e-4, "threads": 1}})
    both = joined({0: {"methods": own, "bon_curve": []}}, other, demo)[0]
    assert list(both["methods"]) == [*own, "gold_ppo@100"] and both["bon_curve"] == []
    assert both["methods"]["ppo@100"] == own["ppo@100"]          # this sweep's own row wins
    with pytest.raises(InputError, match=r"seed 1 is not finished there"):
        joined({1: {"methods": own}}, other, demo)
    foreign = _record(tmp_path, "foreign", 0, gold, demo | {"label_budget": 200})
    with pytest.raises(InputError, match=r"did not start from this sweep's demo seed 0 \(label_budget differ\)"):
        joined({0: {"methods": own}}, foreign, demo)
    shifted = gold | {"sft": {"winrate_vs_reference": {"mean": 0.41}, "gold_score_mean": 1.8}}
    with pytest.raises(InputError, match=r"its SFT evaluation differs"):
        joined({0: {"methods": own}}, _record(tmp_path, "shifted", 0, shifted, demo), demo)
