import math

import pytest

from rlhfkit.evaluate import claims, probes
from rlhfkit.tasks.tldr.judge import gold_score
from rlhfkit.tasks.tldr.world import make_split


def test_probe_texts_reword_or_flip_one_polarity_and_the_judge_sees_which():
    posts = make_split(0, "test", 20)
    for post, (faithful, reworded, flipped) in zip(posts, probes.probe_texts(posts, seed=0)):
        assert len({faithful, flipped}) == 2
        assert abs(len(faithful.split()) - len(flipped.split())) <= 2     # one "not" / "did not ever" more or less
        assert gold_score(reworded, post.facts) > gold_score(flipped, post.facts)
        assert gold_score(faithful, post.facts) > gold_score(flipped, post.facts)


@pytest.mark.parametrize("form,g", [("bon", lambda d: d * d), ("rl", lambda d: d * math.log(d))])
def test_fit_gao_recovers_known_coefficients(form, g):
    alpha, beta = 1.5, 0.4
    points = [(d * d, alpha * d - beta * g(d)) for d in (0.3, 0.6, 1.0, 1.4, 2.0, 2.5)]
    fit = probes.fit_gao(points, form)
    assert fit["alpha"] == pytest.approx(alpha) and fit["beta"] == pytest.approx(beta)
    assert fit["r2"] == pytest.approx(1.0)


def _method(win, low=None, high=None, contradiction=0.1):
    return {"winrate_vs_reference": {"mean": win, "ci_low": low if low is not None else win - 0.04,
                                     "ci_high": high if high is not None else win + 0.04},
            "failure_rates": {"contradiction": contradiction}}


def test_claims_follow_the_numbers_both_ways():
    rm = {"accuracy_vs_labels": 0.65, "accuracy_vs_gold": 0.72}
    results = {"methods": {"sft": _method(0.42), "dpo": _method(0.45), "rwsft": _method(0.47), "ppo": _method(0.55)},
               "reward_model": rm}
    c = claims.decide(results)
    assert c["scoring_vs_generating"]["supported"] and c["constrained_sl"]["supported"] and c["rl_beats_sl"]["supported"]
    assert c["negation"]["supported"] is None            # no probe in this run
    view = lambda pref: {"prefers_reworded_to_flipped": pref, "flip_relative_change": 0.01}  # noqa: E731
    results["negation_probe"] = {"token_cross_entropy": view(0.5), "gold_score": view(1.0), "reward_model": view(0.9)}
    assert claims.decide(results)["negation"]["supported"]
    results["negation_probe"]["reward_model"] = view(0.55)   # a reward model blind to polarity: no
    assert not claims.decide(results)["negation"]["supported"]
    results["methods"]["dpo"] = _method(0.53)             # DPO inside PPO's CI: an honest "no"
    c = claims.decide(results)
    assert not c["scoring_vs_generating"]["supported"] and not c["rl_beats_sl"]["supported"]
    results["methods"]["rwsft"] = _method(0.40)           # worse than SFT: no help
    assert not claims.decide(results)["constrained_sl"]["supported"]


def test_gold_upper_bounds_decide_reasons_2_and_4_with_a_perfect_reward():
    rm = {"accuracy_vs_labels": 0.65, "accuracy_vs_gold": 0.72}
    results = {"methods": {"sft": _method(0.42), "rsft": _method(0.53), "ppo": _method(0.50)}, "reward_model": rm}
    assert all("with_gold_reward" not in c for c in claims.decide(results).values())     # no upper bounds run
    results["methods"] |= {"gold_rsft": _method(0.56), "gold_ppo": _method(0.66, low=0.65)}
    c = claims.decide(results)
    assert not c["rl_beats_sl"]["supported"]                                   # with the reward model: no
    assert c["rl_beats_sl"]["with_gold_reward"]["supported"] and c["constrained_sl"]["with_gold_reward"]["supported"]
    assert "with_gold_reward" not in c["negation"] and "with_gold_reward" not in c["scoring_vs_generating"]
    results["methods"]["gold_ppo"] = _method(0.63, low=0.55)                   # its interval reaches gold_rsft's mean
    assert not claims.decide(results)["rl_beats_sl"]["with_gold_reward"]["supported"]


def test_the_regime_is_read_from_the_run_config():
    assert claims.regime({}) == claims.regime({"task": {"writers": ""}, "samples": 0, "rm_readout": "eos"})
    default = claims.regime({"samples": 0})
    assert "default TL;DR world" in default and "each method's own budget" in default and "eos read-out" in default
    hard = claims.regime({"task": {"writers": "decent,rushed"}, "samples": 2560, "rm_readout": "verdict"})
    assert "writers: decent,rushed" in hard and "2,560 reward-scored samples per method" in hard and "verdict" in hard
