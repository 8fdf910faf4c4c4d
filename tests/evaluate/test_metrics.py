import pytest

from rlhfkit.evaluate.metrics import bootstrap_ci, rate, win_outcomes


def test_ties_count_half():
    assert win_outcomes([2.0, 1.0, 1.0], [1.0, 1.0, 2.0]) == [1.0, 0.5, 0.0]


def test_bootstrap_ci_brackets_the_mean_and_shrinks_with_n():
    small = bootstrap_ci([0.0, 1.0] * 25, 1000)
    large = bootstrap_ci([0.0, 1.0] * 500, 1000)
    assert small["ci_low"] < 0.5 < small["ci_high"] and small["mean"] == pytest.approx(0.5)
    assert large["ci_high"] - large["ci_low"] < small["ci_high"] - small["ci_low"]
    assert bootstrap_ci([1.0] * 10) == {"mean": 1.0, "ci_low": 1.0, "ci_high": 1.0}


def test_rate():
    assert rate([True, False, False, False]) == 0.25 and rate([]) == 0.0


def test_seed_interval_uses_student_t():
    from rlhfkit.evaluate.metrics import seed_interval
    ci = seed_interval([0.4, 0.5, 0.6])
    half = 4.303 * 0.1 / 3 ** 0.5
    assert ci["mean"] == pytest.approx(0.5)
    assert ci["ci_low"] == pytest.approx(0.5 - half) and ci["ci_high"] == pytest.approx(0.5 + half)
