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
