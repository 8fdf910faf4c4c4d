import json

import pytest

from rlhfkit.data.collate import IGNORE, encode_demonstration, pad_batch
from rlhfkit.data.records import DataError, Demonstration, Where, load_demonstrations


def write(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


def test_prompt_completion_jsonl(tmp_path):
    f = write(tmp_path / "d.jsonl", [json.dumps({"prompt": "P", "completion": " C"})])
    assert load_demonstrations(f) == [Demonstration("P", " C", Where(str(f), 1))]


def test_malformed_line_names_file_and_line(tmp_path):
    f = write(tmp_path / "d.jsonl", [json.dumps({"prompt": "P", "completion": "C"}), "{not json"])
    with pytest.raises(DataError, match=r"d\.jsonl:2: malformed JSON"):
        load_demonstrations(f)


def test_missing_field_names_the_field(tmp_path):
    f = write(tmp_path / "d.jsonl", [json.dumps({"prompt": "P"})])
    with pytest.raises(DataError, match=r"d\.jsonl:1: missing field 'completion'"):
        load_demonstrations(f)


def test_empty_completion_is_refused(tmp_path):
    f = write(tmp_path / "d.jsonl", [json.dumps({"prompt": "P", "completion": "  "})])
    with pytest.raises(DataError, match=r"d\.jsonl:1: field 'completion' is empty"):
        load_demonstrations(f)


def test_messages_format(tmp_path):
    msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    f = write(tmp_path / "d.jsonl", [json.dumps({"messages": msgs})])
    demo = load_demonstrations(f, chat_template=lambda h: "<" + h[0]["content"] + ">")[0]
    assert (demo.prompt, demo.completion) == ("<hi>", "hello")
    bad = write(tmp_path / "b.jsonl", [json.dumps({"messages": msgs[:1]})])
    with pytest.raises(DataError, match=r"b\.jsonl:1: field 'messages': the last message must be the assistant's"):
        load_demonstrations(bad)


def test_parquet_and_datasets_directory(tmp_path):
    import datasets
    rows = {"prompt": ["P1", "P2"], "completion": ["C1", ""]}
    ds = datasets.Dataset.from_dict(rows)
    ds.to_parquet(str(tmp_path / "d.parquet"))
    ds.save_to_disk(str(tmp_path / "dsdir"))
    for path in (tmp_path / "d.parquet", tmp_path / "dsdir"):
        with pytest.raises(DataError, match=r"row:2: field 'completion' is empty"):
            load_demonstrations(path)
    ds.select([0]).to_parquet(str(tmp_path / "ok.parquet"))
    assert load_demonstrations(tmp_path / "ok.parquet")[0].completion == "C1"


def test_prompt_is_masked_and_eos_appended(tiny_tokenizer):
    tok = tiny_tokenizer
    ex = encode_demonstration(Demonstration("POST: hi\nTL;DR:", " ok"), tok, 64)
    n_prompt = len(tok("POST: hi\nTL;DR:", add_special_tokens=False)["input_ids"]) + 1  # + BOS
    assert ex.labels[:n_prompt] == [IGNORE] * n_prompt
    assert ex.labels[n_prompt:] == ex.input_ids[n_prompt:]
    assert ex.input_ids[-1] == tok.eos_token_id and ex.input_ids[0] == tok.bos_token_id
    batch = pad_batch([ex, ex], tok.pad_token_id)
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape


def test_too_long_sequence_names_the_record(tiny_tokenizer):
    demo = Demonstration("word " * 100, " x", Where("d.jsonl", 7))
    with pytest.raises(DataError, match=r"d\.jsonl:7: .* longer than the model's 50"):
        encode_demonstration(demo, tiny_tokenizer, 50)


def test_comparison_formats(tmp_path):
    from rlhfkit.data.records import load_comparisons
    sff = {"info": {"post": "the post", "title": "T", "subreddit": "r"}, "choice": 1,
           "summaries": [{"text": " worse"}, {"text": " better"}], "worker": "w1"}
    f = write(tmp_path / "c.jsonl", [json.dumps({"prompt": "P", "chosen": "a", "rejected": "b"}),
                                     json.dumps({"prompt": "P", "completions": ["x", "y", "z"], "labeler": "l"}),
                                     json.dumps(sff)])
    pair, ranking, openai = load_comparisons(f)
    assert pair.ranked == ("a", "b") and ranking.ranked == ("x", "y", "z") and ranking.labeler == "l"
    assert openai.ranked == (" better", " worse") and openai.prompt.endswith("POST: the post\nTL;DR:")


def test_bad_comparisons_are_named(tmp_path):
    from rlhfkit.data.records import load_comparisons
    for record, message in (({"prompt": "P", "chosen": "a"}, "missing field 'rejected'"),
                            ({"prompt": "P", "completions": ["only"]}, "at least 2 answers"),
                            ({"prompt": "P", "completions": ["a", 3]}, "'completions[1]' must be a string"),
                            ({"summaries": [{"text": "a"}, {"text": "b"}], "choice": 2, "info": {"post": "p"}},
                             "'choice' must be 0 or 1")):
        f = write(tmp_path / "c.jsonl", [json.dumps(record)])
        with pytest.raises(DataError, match=r"c\.jsonl:1: .*" + message.replace("[", r"\[").replace("]", r"\]")):
            load_comparisons(f)
