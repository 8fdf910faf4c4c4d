import pytest

from rlhfkit.evaluate.reward_model import differences, merge_by_difference, reward_model_report
from rlhfkit.tasks.tldr.judge import judge
from rlhfkit.tasks.tldr.world import Event, make_post
from rlhfkit.tasks.tldr.writers import render

POST = make_post(0, 1)
EVENTS = list(POST.facts.events)


def summary(events: list[Event], question: bool = True) -> str:
    return render(POST.facts, events, None, feeling=True, question=question)


FAITHFUL = summary(EVENTS)
FLIPPED = summary([Event(EVENTS[0].who, EVENTS[0].action, not EVENTS[0].done, EVENTS[0].time)] + EVENTS[1:])
OMITTED = summary(EVENTS[1:])
NO_QUESTION = summary(EVENTS, question=False)


def test_differences_name_what_the_judge_sees_differ():
    v = {name: judge(text, POST.facts) for name, text in
         (("faithful", FAITHFUL), ("flipped", FLIPPED), ("omitted", OMITTED), ("no_question", NO_QUESTION))}
    assert differences(v["faithful"], v["flipped"]) == ["contradiction", "coverage"]
    assert differences(v["faithful"], v["omitted"]) == ["coverage"]
    assert differences(v["faithful"], v["no_question"]) == ["other"]


def test_report_splits_gold_accuracy_by_difference():
    # labeler's (chosen, rejected); the reward model gets the flip wrong, the omission and the question right
    f = POST.facts
    pairs = [(f, FAITHFUL, FLIPPED), (f, FAITHFUL, OMITTED), (f, NO_QUESTION, FAITHFUL)]
    scores = [(0.0, 1.0), (2.0, 1.0), (0.0, 3.0)]
    r = reward_model_report(pairs, scores)
    assert r["accuracy_vs_labels"] == pytest.approx(1 / 3)      # only the omission pair follows the label
    assert r["accuracy_vs_gold"] == pytest.approx(2 / 3)        # the third label was against the judge
    by = r["accuracy_vs_gold_by_difference"]
    assert by["contradiction"] == {"accuracy": 0.0, "n": 1}
    assert by["coverage"] == {"accuracy": 0.5, "n": 2}
    assert by["other"] == {"accuracy": 1.0, "n": 1}
    assert by["invention"] == {"accuracy": None, "n": 0}


def test_merge_weights_seeds_by_their_pair_counts():
    a = {"contradiction": {"accuracy": 0.5, "n": 10}, "coverage": {"accuracy": None, "n": 0},
         "invention": {"accuracy": 1.0, "n": 1}, "other": {"accuracy": 0.0, "n": 0}}
    b = {"contradiction": {"accuracy": 0.8, "n": 30}, "coverage": {"accuracy": 0.6, "n": 5},
         "invention": {"accuracy": 0.0, "n": 3}, "other": {"accuracy": None, "n": 0}}
    m = merge_by_difference([a, b])
    assert m["contradiction"] == {"accuracy": pytest.approx((5 + 24) / 40), "n": 40}
    assert m["coverage"] == {"accuracy": 0.6, "n": 5}
    assert m["invention"] == {"accuracy": 0.25, "n": 4}
    assert m["other"] == {"accuracy": None, "n": 0}
