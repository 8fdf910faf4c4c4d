import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlhfkit.tasks.tldr.export import stats
from rlhfkit.tasks.tldr.judge import W_CONTRADICTION, W_COVERAGE, judge
from rlhfkit.tasks.tldr.world import Event, make_post
from rlhfkit.tasks.tldr.writers import oracle_summary, render

FACTS = make_post(0, 1).facts


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_judge_never_raises_on_any_string(text):
    verdict = judge(text, FACTS)
    assert isinstance(verdict.score, float)
    assert 0.0 <= verdict.coverage <= 1.0


def test_judge_takes_non_strings_without_raising():
    for value in (None, 3, b"bytes", ["list"]):
        assert isinstance(judge(value, FACTS).score, float)


def test_oracle_is_fully_covered_and_clean():
    for i in range(50):
        facts = make_post(0, i).facts
        v = judge(oracle_summary(facts), facts)
        assert (v.coverage, v.contradictions, v.inventions, v.filler) == (1.0, 0, 0, 0)
        assert v.feeling and v.question and v.over_budget == 0


def test_a_flipped_polarity_costs_coverage_and_a_contradiction():
    facts = FACTS
    events = list(facts.events)
    ev = events[0]
    flipped = events.copy()
    flipped[0] = Event(ev.who, ev.action, not ev.done, ev.time)
    good = judge(render(facts, events, None, feeling=True, question=True), facts)
    bad = judge(render(facts, flipped, None, feeling=True, question=True), facts)
    assert bad.contradictions == 1
    # the same words but one: the drop is one event's coverage plus the contradiction, up to word count
    expected = W_COVERAGE / len(events) + W_CONTRADICTION
    assert abs((good.score - bad.score) - expected) < 0.1


def test_inventions_and_filler_are_counted():
    facts = FACTS
    base = judge(oracle_summary(facts), facts)
    other = next(k for k in ("rent", "party", "kitchen", "wedding") if k not in {e.action for e in facts.events})
    invented = judge(oracle_summary(facts) + f" they paid the {other}", facts)
    assert invented.inventions == base.inventions + 1 and invented.score < base.score
    filler = judge(oracle_summary(facts) + " i had pasta for lunch", facts)
    assert filler.filler == 1 and filler.score < base.score


def test_repetition_is_disfluent():
    facts = FACTS
    looped = " ".join([oracle_summary(facts)] * 3)
    assert judge(looped, facts).disfluency > 0.3
    assert judge(looped, facts).score < judge(oracle_summary(facts), facts).score


def test_world_statistics_meet_their_targets():
    s = stats(seed=0, n=2000)
    assert 0.70 <= s["labeler_gold_agreement"] <= 0.80, s
    assert 0.70 <= s["labeler_labeler_agreement"] <= 0.80, s
    assert s["oracle_winrate_vs_reference"] >= 0.85, s
    assert s["flip_loses_rate"] >= 0.95, s


def test_labelers_follow_bradley_terry():
    from rlhfkit.tasks.tldr.labelers import Labeler, prefers_first
    rng = random.Random(0)
    facts = FACTS
    good, bad = oracle_summary(facts), render(facts, list(facts.events)[:1], None, feeling=False, question=False)
    labeler = Labeler("test", temperature=1.0)
    from rlhfkit.tasks.tldr.judge import gold_score
    import math
    p = 1 / (1 + math.exp(-(gold_score(good, facts) - gold_score(bad, facts))))
    observed = sum(prefers_first(labeler, good, bad, facts, rng) for _ in range(4000)) / 4000
    assert abs(observed - p) < 0.03


def test_oracle_reward_is_the_judge_on_world_prompts_and_refuses_others():
    from rlhfkit.tasks.tldr.judge import gold_score
    from rlhfkit.tasks.tldr.oracle import gold_reward
    from rlhfkit.tasks.tldr.world import make_split
    posts = make_split(0, "train", 3000)[:2]
    answers = [oracle_summary(posts[0].facts), "nothing happened"]
    got = gold_reward([p.prompt for p in posts], answers)
    assert got == [gold_score(a, p.facts) for a, p in zip(answers, posts)]
    assert got[0] > got[1]
    with pytest.raises(ValueError, match="not a post of the default world"):
        gold_reward(["POST: a post from elsewhere\nTL;DR:"], ["an answer"])
