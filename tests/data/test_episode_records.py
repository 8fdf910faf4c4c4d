"""Episode records: a multi-turn exchange written exactly as a policy and an environment produced
it, for SFT (`episode`) and for comparisons (`episodes`, best first) read by `rlhfkit rm` and
`rlhfkit dpo` with the loss on the policy's turns only."""
import json

import pytest

from rlhfkit.data.collate import encode_conversation
from rlhfkit.data.records import (Conversation, DataError, Span, Where, episode_record, load_comparisons,
                                  load_demonstrations)
from rlhfkit.models.lm import load_causal_lm
from rlhfkit.train.reward_model import encode_comparison

OPENING = "chat 7\nUSER: I need advice.\nASSISTANT:"
SPANS = (Span(" What happened?", True, loss=False), Span("\nUSER: Sam left.\nASSISTANT:", False),
         Span(" TL;DR: Sam left.", True))


def _write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_an_episode_record_reads_back_as_the_conversation_it_was_written_from(tmp_path):
    conv = Conversation(OPENING, SPANS)
    [read] = load_demonstrations(_write(tmp_path / "d.jsonl", [episode_record(conv)]))
    assert read == Conversation(OPENING, SPANS, Where(str(tmp_path / "d.jsonl"), 1))


def test_a_comparison_of_episodes_trains_on_the_policy_turns_only(tmp_path, tiny_model_dir):
    better = episode_record(Conversation(OPENING, SPANS))["episode"]
    worse = episode_record(Conversation(OPENING, SPANS[:2] + (Span(" TL;DR: Sam stayed.", True),)))["episode"]
    [c] = load_comparisons(_write(tmp_path / "c.jsonl", [{"prompt": OPENING, "episodes": [better, worse]}]))
    assert all(isinstance(a, Conversation) for a in c.ranked) and c.ranked[0].spans == SPANS
    _, tok = load_causal_lm(tiny_model_dir)
    group = encode_comparison(c, tok, 512)
    for example, conv in zip(group, c.ranked):
        assert example.input_ids == encode_conversation(conv, tok, 512).input_ids
        trained = tok.decode([t for t in example.labels if t >= 0], skip_special_tokens=True)
        assert trained == conv.spans[-1].text       # the first turn is context (loss false), the user's never


@pytest.mark.parametrize("record, message", [
    ({"prompt": OPENING, "episode": []}, "field 'episode' must be a non-empty list"),
    ({"prompt": OPENING, "episode": [{"text": " hi"}]}, "field 'episode[0]' must be {'text': str, 'action': bool}"),
    ({"prompt": OPENING, "episode": [{"text": "\nUSER: x", "action": False}]}, "has no action with a loss"),
    ({"episode": [{"text": " hi", "action": True}]}, "'prompt'"),
])
def test_a_bad_episode_record_is_one_line_naming_the_file_line_and_field(tmp_path, record, message):
    path = _write(tmp_path / "d.jsonl", [record])
    with pytest.raises(DataError) as e:
        load_demonstrations(path)
    assert f"{path}:1" in str(e.value) and message in str(e.value) and "\n" not in str(e.value)


def test_a_comparison_needs_two_episodes(tmp_path):
    path = _write(tmp_path / "c.jsonl", [{"prompt": OPENING, "episodes": [[{"text": " a", "action": True}]]}])
    with pytest.raises(DataError, match=r"c.jsonl:1: field 'episodes' must be a list of at least 2 episodes"):
        load_comparisons(path)
