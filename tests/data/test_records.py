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


# ---- formats users bring (TRL conversational and implicit-prompt pairs, summarize-from-feedback splits)
def test_conversational_pair_uses_the_chat_template_or_role_lines(tmp_path):
    from rlhfkit.data.records import load_comparisons
    record = {"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"}],
              "chosen": [{"role": "assistant", "content": "Hello."}],
              "rejected": [{"role": "assistant", "content": "Go away."}]}
    f = write(tmp_path / "c.jsonl", [json.dumps(record)])
    plain = load_comparisons(f)[0]
    assert plain.prompt == "system: Be brief.\nuser: Hi?\nassistant:" and plain.ranked == ("Hello.", "Go away.")
    templated = load_comparisons(f, chat_template=lambda msgs: "|".join(m["content"] for m in msgs) + ">")[0]
    assert templated.prompt == "Be brief.|Hi?>" and templated.ranked == ("Hello.", "Go away.")


def test_implicit_prompt_is_the_shared_prefix_cut_at_a_word(tmp_path):
    from rlhfkit.data.records import implicit_prompt_end, load_comparisons
    f = write(tmp_path / "c.jsonl", [json.dumps({"chosen": "Q: is it red?\nA: yes it is",
                                                 "rejected": "Q: is it red?\nA: yet"}),
                                     json.dumps({"chosen": "cat", "rejected": "car"})])
    pair, no_space = load_comparisons(f)
    # the common prefix "Q: is it red?\nA: ye" ends mid-word: the prompt stops before " yes" / " yet"
    assert (pair.prompt, pair.ranked) == ("Q: is it red?\nA:", (" yes it is", " yet"))
    assert (no_space.prompt, no_space.ranked) == ("", ("cat", "car"))
    assert implicit_prompt_end("Q?\n\nyes", "Q?\n\nno") == 2     # the answers keep the whole blank line
    assert implicit_prompt_end("a b", "a b c") == 1              # one answer extends the other: " b" / " b c"


def test_implicit_conversational_prompt_is_the_shared_messages(tmp_path):
    from rlhfkit.data.records import load_comparisons
    user = {"role": "user", "content": "2+2?"}
    f = write(tmp_path / "c.jsonl", [json.dumps({"chosen": [user, {"role": "assistant", "content": "4"}],
                                                 "rejected": [user, {"role": "assistant", "content": "5"}]})])
    c = load_comparisons(f)[0]
    assert (c.prompt, c.ranked, c.fields) == ("user: 2+2?\nassistant:", ("4", "5"), ("", "chosen", "rejected"))
    bad = write(tmp_path / "b.jsonl", [json.dumps({"chosen": [user, {"role": "assistant", "content": "4"}],
                                                   "rejected": [{"role": "user", "content": "3+3?"},
                                                                {"role": "assistant", "content": "6"}]})])
    with pytest.raises(DataError, match=r"b\.jsonl:1: field 'chosen': after the prompt, expected one assistant "
                                        r"message, got \['user', 'assistant'\]"):
        load_comparisons(bad)


@pytest.mark.parametrize("record", [{"prompt": "P", "chosen": " same", "rejected": " same"},
                                    {"chosen": "P same", "rejected": "P same"},
                                    {"prompt": [{"role": "user", "content": "P"}],
                                     "chosen": [{"role": "assistant", "content": "x"}],
                                     "rejected": [{"role": "assistant", "content": "x"}]}])
def test_a_pair_of_twins_is_refused_with_its_line(tmp_path, record):
    from rlhfkit.data.records import load_comparisons
    f = write(tmp_path / "c.jsonl", [json.dumps({"prompt": "P", "chosen": "a", "rejected": "b"}), json.dumps(record)])
    with pytest.raises(DataError, match=r"c\.jsonl:2: fields 'chosen' and 'rejected' hold the same answer"):
        load_comparisons(f)


def sff(post: str, split: str, choice: int = 0) -> dict:
    return {"info": {"post": post, "title": "T", "subreddit": "r"}, "split": split, "choice": choice,
            "summaries": [{"text": f" {post} one"}, {"text": f" {post} two"}]}


def test_summarize_from_feedback_split_selects_records(tmp_path):
    from rlhfkit.data.records import load_comparisons
    f = write(tmp_path / "c.jsonl", [json.dumps(sff(p, s)) for p, s in
                                     (("a", "train"), ("b", "valid1"), ("c", "train"), ("d", "valid2"))])
    posts = lambda spec: [c.prompt.split("POST: ")[1].split("\n")[0] for c in load_comparisons(spec)]  # noqa: E731
    assert posts(f) == ["a", "b", "c", "d"]
    assert posts(f"{f}:train") == ["a", "c"]
    assert posts(f"{f}:valid") == ["b", "d"] and posts(f"{f}:valid2") == ["d"]
    assert [c.where.line for c in load_comparisons(f"{f}:valid")] == [2, 4]   # lines of the file, not of the split
    with pytest.raises(DataError, match=r"c\.jsonl: no record has split 'test' \(its splits: train, valid1, valid2\)"):
        load_comparisons(f"{f}:test")
    unsplit = write(tmp_path / "u.jsonl", [json.dumps({"prompt": "P", "chosen": "a", "rejected": "b"})])
    with pytest.raises(DataError, match=r"u\.jsonl:1: missing field 'split' \(the path asks for split 'train'"):
        load_comparisons(f"{unsplit}:train")


def test_too_long_summarize_from_feedback_names_its_fields(tmp_path, tiny_tokenizer):
    from rlhfkit.data.records import load_comparisons
    from rlhfkit.train.reward_model import encode_comparison
    f = write(tmp_path / "c.jsonl", [json.dumps(sff("word " * 100, "train", choice=1))])
    with pytest.raises(DataError, match=r"c\.jsonl:1: fields 'info\.post'\+'summaries\[1\]\.text' are \d+ tokens, "
                                        r"longer than the model's 64"):
        encode_comparison(load_comparisons(f)[0], tiny_tokenizer, 64)


# ---- bytes and files that are not what they claim
def test_text_that_is_not_utf8_or_holds_lone_surrogates(tmp_path):
    good = json.dumps({"prompt": "P", "completion": "C"}).encode()
    f = tmp_path / "d.jsonl"
    f.write_bytes(good + b"\n" + b'{"prompt": "caf\xe9", "completion": "C"}\n')
    with pytest.raises(DataError, match=r"d\.jsonl:2: not UTF-8 text \(byte 0xe9 at column 16\)"):
        load_demonstrations(f)
    f.write_bytes(good + b"\n" + b'{"messages": [{"role": "user", "content": "a\\udc80"}]}\n')
    with pytest.raises(DataError, match=r"d\.jsonl:2: field 'messages\[0\]\.content' holds a lone surrogate"):
        load_demonstrations(f)
    f.write_bytes(b"\xef\xbb\xbf" + good + b"\n" + b'{"prompt": "\\ud83d\\ude00", "completion": "C"}\n')
    assert [d.prompt for d in load_demonstrations(f)] == ["P", "\U0001F600"]   # a BOM and a surrogate *pair* are fine


def test_corrupt_parquet_and_a_directory_that_is_not_a_dataset(tmp_path):
    import datasets
    ds = datasets.Dataset.from_dict({"prompt": ["P"] * 50, "completion": ["C"] * 50})
    ds.to_parquet(str(tmp_path / "d.parquet"))
    data = (tmp_path / "d.parquet").read_bytes()
    (tmp_path / "d.parquet").write_bytes(data[:len(data) // 2])
    with pytest.raises(DataError, match=r"d\.parquet: not a readable Parquet file \(.*magic bytes"):
        load_demonstrations(tmp_path / "d.parquet")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "train.jsonl").write_text(json.dumps({"prompt": "P", "completion": "C"}) + "\n")
    with pytest.raises(DataError, match=r"dir: a directory, but not one `Dataset.save_to_disk` wrote"):
        load_demonstrations(tmp_path / "dir")
