"""The sweep's paired differences between methods, against hand-computed values."""
import pytest

from rlhfkit.pipelines.sweep import paired_differences


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
