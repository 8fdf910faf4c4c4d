from rlhfkit.tasks.tldr.world import SPLITS, make_post, make_split


def test_world_is_deterministic_from_the_seed():
    assert [p.text for p in make_split(3, "train", 20)] == [p.text for p in make_split(3, "train", 20)]
    assert [p.text for p in make_split(3, "train", 20)] != [p.text for p in make_split(4, "train", 20)]


def test_splits_are_disjoint_and_sized():
    texts = {s: {p.text for p in make_split(0, s, 300)} for s in SPLITS}
    assert all(len(t) == 300 for t in texts.values())
    for i, a in enumerate(SPLITS):
        for b in SPLITS[i + 1:]:
            assert not texts[a] & texts[b], (a, b)


def test_a_larger_split_extends_a_smaller_one():
    assert [p.id for p in make_split(0, "test", 50)] == [p.id for p in make_split(0, "test", 80)][:50]


def test_fact_records_have_what_the_design_asks():
    for i in range(200):
        facts = make_post(0, i).facts
        assert 2 <= len(facts.events) <= 5
        assert 1 <= len(facts.people) <= 2 and facts.filler
        assert len({e.action for e in facts.events}) == len(facts.events)


def test_every_event_is_stated_in_the_post_with_its_polarity():
    from rlhfkit.tasks.tldr.judge import stated_events
    for i in range(200):
        post = make_post(0, i)
        stated = stated_events(post.text)
        for ev in post.facts.events:
            assert stated[ev.action] == {ev.done}, (post.text, ev)
