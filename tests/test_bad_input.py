"""Bad input is one line, never a traceback.

Each case runs `rlhfkit` in process (`cli.main`, from a fresh working directory) on one bad file,
model directory, reward module or flag, and checks the exit code (2: usage and input, 1: a run
that fails while running), the one line on stderr naming file, line and field, and that the
output of an earlier run in `--out` is untouched.
"""
from __future__ import annotations

import json
import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from rlhfkit.cli import main

TINY_TASK = ["--task.n_train", "8", "--task.n_valid", "4", "--task.n_test", "4"]
GOOD_DEMO = {"prompt": "P", "completion": " C"}
GOOD_PAIR = {"prompt": "P", "chosen": " a", "rejected": " b"}
EARLIER = {"model/model.safetensors": b"weights of an earlier run", "notes.txt": b"earlier notes"}


class Env:
    """The user's working directory: files they bring, and a copy of the tiny model to break."""

    def __init__(self, root: Path, model: Path):
        self.root, self.model = root, model

    def jsonl(self, name: str, *records) -> str:
        (self.root / name).write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
        return name

    def raw(self, name: str, data: bytes) -> str:
        (self.root / name).write_bytes(data)
        return name

    def broken_model(self, break_it: Callable[[Path], None]) -> str:
        shutil.copytree(self.model, self.root / "m")
        break_it(self.root / "m")
        return "m"


def cut_in_half(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def edit_json(path: Path, **changes) -> None:
    path.write_text(json.dumps(json.loads(path.read_text()) | changes))


def parquet(env: Env, name: str, rows: dict) -> str:
    import datasets
    datasets.Dataset.from_dict(rows).to_parquet(str(env.root / name))
    return name


def campaign(env: Env, data: str) -> list:
    return ["label", "campaign", "create", "--from", data, "--db", f"sqlite:///{env.root / 'labels.db'}"]


def sff(choice=0, texts=(" one", " two"), post="my post") -> dict:
    return {"info": {"post": post, "title": "T", "subreddit": "r"}, "summaries": [{"text": t} for t in texts],
            "choice": choice, "split": "train"}


def sft(env: Env, data: str, *extra, model=None) -> list:
    return ["sft", "--model", model or env.model, "--data", data, "--out", "out", *extra]


def rm(env: Env, data: str, stage: str = "rm", model=None) -> list:
    return [stage, "--model", model or env.model, "--data", data, "--out", "out"]


def rl(env: Env, *extra) -> list:
    return ["rl", "--algo", "grpo", "--policy", env.model, "--out", "out", "--rl.steps", "1",
            "--rl.prompts_per_step", "4", "--rl.k", "2", "--sample.max_new_tokens", "4", *TINY_TASK, *extra]


def reward(env: Env, name: str, text: str, spec: str) -> list:
    env.raw(name, text.encode())
    return rl(env, "--reward", spec)


def messages(*pairs) -> list[dict]:
    return [{"role": r, "content": c} for r, c in pairs]


USER, ANSWER = ("user", "Hi?"), ("assistant", " Hello.")

CASES = [
    # ---- demonstrations (sft): bytes, JSON, fields, formats
    ("non-utf8", lambda e: sft(e, e.raw("d.jsonl", b'{"prompt": "P", "completion": " C"}\n{"prompt": "\xff"}\n')),
     2, r"d\.jsonl:2: not UTF-8 text \(byte 0xff at column 13\)"),
    ("latin-1 file", lambda e: sft(e, e.raw("d.jsonl", '{"prompt": "café", "completion": " C"}\n'.encode("latin-1"))),
     2, r"d\.jsonl:1: not UTF-8 text \(byte 0xe9 at column 16\)"),
    ("lone surrogate", lambda e: sft(e, e.jsonl("d.jsonl", GOOD_DEMO, '{"prompt": "P", "completion": "x\\ud800"}')),
     2, r"d\.jsonl:2: field 'completion' holds a lone surrogate"),
    ("lone low surrogate in messages", lambda e: sft(e, e.jsonl(
        "d.jsonl", '{"messages": [{"role": "user", "content": "\\udfff"}, {"role": "assistant", "content": "A"}]}')),
     2, r"d\.jsonl:1: field 'messages\[0\]\.content' holds a lone surrogate"),
    ("malformed json", lambda e: sft(e, e.jsonl("d.jsonl", GOOD_DEMO, GOOD_DEMO, '{"prompt": "P",')),
     2, r"d\.jsonl:3: malformed JSON \(Expecting property name enclosed in double quotes at column 16\)"),
    ("not an object", lambda e: sft(e, e.jsonl("d.jsonl", ["P", "C"])),
     2, r"d\.jsonl:1: expected a JSON object, got list"),
    ("missing completion", lambda e: sft(e, e.jsonl("d.jsonl", GOOD_DEMO, {"prompt": "P"})),
     2, r"d\.jsonl:2: missing field 'completion' \(fields: \['prompt'\]\)"),
    ("empty completion", lambda e: sft(e, e.jsonl("d.jsonl", {"prompt": "P", "completion": "  "})),
     2, r"d\.jsonl:1: field 'completion' is empty"),
    ("prompt a number", lambda e: sft(e, e.jsonl("d.jsonl", {"prompt": 7, "completion": "C"})),
     2, r"d\.jsonl:1: field 'prompt' must be a string, got int"),
    ("messages end with the user", lambda e: sft(e, e.jsonl("d.jsonl", {"messages": messages(USER)})),
     2, r"d\.jsonl:1: field 'messages': the last message must be the assistant's"),
    ("message without role", lambda e: sft(e, e.jsonl("d.jsonl", {"messages": [{"content": "x"}]})),
     2, r"d\.jsonl:1: field 'messages\[0\]' needs 'role' and 'content'"),
    ("message content a list", lambda e: sft(e, e.jsonl("d.jsonl", {"messages": [{"role": "user", "content": []}]})),
     2, r"d\.jsonl:1: field 'messages\[0\]\.content' must be a string, got list"),
    ("empty file", lambda e: sft(e, e.raw("d.jsonl", b"\n\n")), 2, r"d\.jsonl: no records"),
    ("missing file", lambda e: sft(e, "nowhere.jsonl"), 2, r"nowhere\.jsonl: no such file or directory"),
    ("too long demonstration", lambda e: sft(e, e.jsonl("d.jsonl", GOOD_DEMO, {"prompt": "word " * 80,
                                                                               "completion": " C"}), "--max_len", "32"),
     2, r"d\.jsonl:2: fields 'prompt'\+'completion' are \d+ tokens, longer than the model's 32"),
    ("too long messages", lambda e: sft(e, e.jsonl("d.jsonl", {"messages": messages(("user", "word " * 80), ANSWER)}),
                                        "--max_len", "32"),
     2, r"d\.jsonl:1: field 'messages' is \d+ tokens, longer than the model's 32"),
    ("truncated parquet", lambda e: sft(e, e.raw("d.parquet", (e.root / parquet(e, "ok.parquet", {
        "prompt": ["P"] * 40, "completion": ["C"] * 40})).read_bytes()[:300])),
     2, r"d\.parquet: not a readable Parquet file \("),
    ("parquet bad row", lambda e: sft(e, parquet(e, "d.parquet", {"prompt": ["P", "P"], "completion": ["C", ""]})),
     2, r"d\.parquet row:2: field 'completion' is empty"),
    ("directory of jsonl", lambda e: (e.root / "dir").mkdir() or sft(e, "dir"),
     2, r"dir: a directory, but not one `Dataset\.save_to_disk` wrote"),
    # ---- comparisons (rm, dpo, slic) and their formats
    ("twins", lambda e: rm(e, e.jsonl("c.jsonl", GOOD_PAIR, {"prompt": "P", "chosen": " x", "rejected": " x"})),
     2, r"c\.jsonl:2: fields 'chosen' and 'rejected' hold the same answer"),
    ("implicit-prompt twins", lambda e: rm(e, e.jsonl("c.jsonl", {"chosen": "P x", "rejected": "P x"})),
     2, r"c\.jsonl:1: fields 'chosen' and 'rejected' hold the same answer"),
    ("conversational twins", lambda e: rm(e, e.jsonl("c.jsonl", {"prompt": messages(USER), "chosen": messages(ANSWER),
                                                                 "rejected": messages(ANSWER)}), "dpo"),
     2, r"c\.jsonl:1: fields 'chosen' and 'rejected' hold the same answer"),
    ("conversational answer of two messages", lambda e: rm(e, e.jsonl(
        "c.jsonl", {"prompt": messages(USER), "chosen": messages(ANSWER, USER), "rejected": messages(ANSWER)}), "slic"),
     2, r"c\.jsonl:1: field 'chosen': after the prompt, expected one assistant message, got \['assistant', 'user'\]"),
    ("conversational prompt a string", lambda e: rm(e, e.jsonl(
        "c.jsonl", {"prompt": "Hi?", "chosen": messages(ANSWER), "rejected": messages(("assistant", "No."))})),
     2, r"c\.jsonl:1: field 'prompt' must be a non-empty list of messages"),
    ("summarize-from-feedback twins", lambda e: rm(e, e.jsonl("c.jsonl", sff(), sff(texts=(" same", " same")))),
     2, r"c\.jsonl:2: fields 'summaries\[0\]\.text' and 'summaries\[1\]\.text' hold the same summary"),
    ("summarize-from-feedback choice", lambda e: rm(e, e.jsonl("c.jsonl", sff(choice=2))),
     2, r"c\.jsonl:1: field 'choice' must be 0 or 1, got 2"),
    ("summarize-from-feedback without post", lambda e: rm(e, e.jsonl("c.jsonl", sff() | {"info": {"title": "T"}})),
     2, r"c\.jsonl:1: missing field 'post'"),
    ("summarize-from-feedback too long", lambda e: rm(e, e.jsonl("c.jsonl", sff(choice=1, post="word " * 600))),
     2, r"c\.jsonl:1: fields 'info\.post'\+'summaries\[1\]\.text' are \d+ tokens, longer than the model's 512"),
    ("no such split", lambda e: rm(e, e.jsonl("c.jsonl", sff(), sff()) + ":valid"),
     2, r"c\.jsonl: no record has split 'valid' \(its splits: train\)"),
    ("split of records without one", lambda e: rm(e, e.jsonl("c.jsonl", GOOD_PAIR) + ":train"),
     2, r"c\.jsonl:1: missing field 'split' \(the path asks for split 'train'"),
    ("missing rejected", lambda e: rm(e, e.jsonl("c.jsonl", {"prompt": "P", "chosen": " a"}), "dpo"),
     2, r"c\.jsonl:1: missing field 'rejected'"),
    ("ranking of one", lambda e: rm(e, e.jsonl("c.jsonl", {"prompt": "P", "completions": [" a"]})),
     2, r"c\.jsonl:1: field 'completions' must be a list of at least 2 answers"),
    ("unknown comparison format", lambda e: rm(e, e.jsonl("c.jsonl", {"question": "Q", "answer": "A"})),
     2, r"c\.jsonl:1: expected 'prompt' with 'chosen'/'rejected', 'completions' or 'episodes'.*"
        r"\(fields: \['answer', 'question'\]\)"),
    ("comparison not utf-8", lambda e: rm(e, e.raw("c.jsonl", b'{"prompt": "P", "chosen": "\xc3(", "rejected": "b"}\n'),
                                          "slic"),
     2, r"c\.jsonl:1: not UTF-8 text \(byte 0xc3 at column 28\)"),
    # ---- model directories
    ("truncated safetensors", lambda e: sft(e, "tldr", *TINY_TASK, model=e.broken_model(
        lambda m: cut_in_half(m / "model.safetensors"))),
     2, r"m/model\.safetensors: truncated or corrupt \(Error while deserializing header"),
    ("garbage safetensors", lambda e: rm(e, e.jsonl("c.jsonl", GOOD_PAIR), model=e.broken_model(
        lambda m: (m / "model.safetensors").write_bytes(b"not weights" * 20))),
     2, r"m/model\.safetensors: truncated or corrupt"),
    ("empty safetensors", lambda e: rm(e, e.jsonl("c.jsonl", GOOD_PAIR), "dpo", model=e.broken_model(
        lambda m: (m / "model.safetensors").write_bytes(b""))),
     2, r"m/model\.safetensors: truncated or corrupt"),
    ("no weights", lambda e: sft(e, "tldr", *TINY_TASK, model=e.broken_model(
        lambda m: (m / "model.safetensors").unlink())),
     2, r"m: cannot load the model \(.*no file named model\.safetensors"),
    ("config.json malformed", lambda e: sft(e, "tldr", *TINY_TASK, model=e.broken_model(
        lambda m: (m / "config.json").write_text('{"model_type": "llama",\n "hidden_size": 32,,\n}'))),
     2, r"m/config\.json:2: malformed JSON \(Expecting property name enclosed in double quotes at column 20\)"),
    ("config.json unknown model type", lambda e: sft(e, "tldr", *TINY_TASK, model=e.broken_model(
        lambda m: edit_json(m / "config.json", model_type="no-such-arch"))),
     2, r"m/config\.json: cannot load it as a model config \(.*model type `no-such-arch`"),
    ("config.json field of the wrong type", lambda e: rm(e, e.jsonl("c.jsonl", GOOD_PAIR), model=e.broken_model(
        lambda m: edit_json(m / "config.json", hidden_size="big"))),
     2, r"m/config\.json: cannot load it as a model config \(.*'hidden_size'.*expected int"),
    ("no tokenizer", lambda e: sft(e, "tldr", *TINY_TASK, model=e.broken_model(
        lambda m: [(m / f).unlink() for f in ("tokenizer.json", "tokenizer_config.json")])),
     2, r"m: no tokenizer \(neither tokenizer\.json nor tokenizer_config\.json\)"),
    ("tokenizer.json malformed", lambda e: sft(e, "tldr", *TINY_TASK, model=e.broken_model(
        lambda m: (m / "tokenizer.json").write_text("{not json"))),
     2, r"m: cannot load the tokenizer \("),
    ("not a model directory", lambda e: (e.root / "empty").mkdir() or rm(e, e.jsonl("c.jsonl", GOOD_PAIR),
                                                                        model="empty"),
     2, r"empty: not a Hugging Face model directory \(no config\.json\)"),
    ("broken reward model", lambda e: rl(e, "--reward_model", e.broken_model(
        lambda m: cut_in_half(m / "model.safetensors"))),
     2, r"m/model\.safetensors: truncated or corrupt"),
    ("eval of a broken policy", lambda e: ["eval", "--policies", "base=" + e.broken_model(
        lambda m: (m / "config.json").write_text("{")), "--kl_ref", "", "--n_prompts", "4", "--out", "out", *TINY_TASK],
     2, r"m/config\.json:1: malformed JSON"),
    # ---- the user's reward function: found, imported, and its output checked
    ("reward file missing", lambda e: rl(e, "--reward", "rewards.py:brevity"),
     2, r"reward 'rewards\.py:brevity': no such file rewards\.py \(a relative path starts at "),
    ("reward module missing", lambda e: rl(e, "--reward", "no_such_rewards_module:brevity"),
     2, r"reward 'no_such_rewards_module:brevity': no module 'no_such_rewards_module' in the working directory"),
    ("reward syntax error", lambda e: reward(e, "r.py", "def f(p, c):\n    return [0 for x in c\n", "r.py:f"),
     2, r"reward 'r\.py:f': importing it failed at \S*r\.py:2: SyntaxError: "),
    ("reward module raises", lambda e: reward(e, "bad_rewards_mod.py", "import os\nKEY = os.environ['NO_SUCH_VAR_X']\n",
                                              "bad_rewards_mod:f"),
     2, r"reward 'bad_rewards_mod:f': importing it failed at \S*bad_rewards_mod\.py:2: KeyError: 'NO_SUCH_VAR_X'"),
    ("reward dependency missing", lambda e: reward(e, "r.py", "import numpy\nimport not_a_real_dependency\n", "r.py:f"),
     2, r"reward 'r\.py:f': importing it failed at \S*r\.py:2: ModuleNotFoundError: No module named "
        r"'not_a_real_dependency'"),
    ("reward function missing", lambda e: reward(e, "r.py", "def brevity(p, c):\n    return [0.0] * len(c)\n",
                                                 "r.py:f"),
     2, r"reward 'r\.py:f': r\.py defines no 'f' \(it defines: brevity\)"),
    ("reward not callable", lambda e: reward(e, "r.py", "f = 3\n", "r.py:f"),
     2, r"reward 'r\.py:f': 'f' in r\.py is a int, not a function"),
    ("reward returns nan", lambda e: reward(e, "r.py", "def f(p, c):\n    return [0.0, 0.0, float('nan')] + [0.0] * "
                                                       "(len(c) - 3)\n", "r.py:f"),
     1, r"reward r\.py:f returned nan for prompt 2 of the batch \([\"']POST: "),
    ("reward returns inf", lambda e: reward(e, "r.py", "def f(p, c):\n    return [float('-inf')] * len(c)\n", "r.py:f"),
     1, r"reward r\.py:f returned -inf for prompt 0 of the batch"),
    ("reward returns too few", lambda e: reward(e, "r.py", "def f(p, c):\n    return [1.0]\n", "r.py:f"),
     1, r"reward r\.py:f returned 1 values for 8 completions"),
    ("reward returns text", lambda e: reward(e, "r.py", "def f(p, c):\n    return [str(len(x)) for x in c]\n",
                                             "r.py:f"),
     1, r"reward r\.py:f returned '\d+' for prompt 0 of the batch .*; expected a finite number"),
    ("reward raises", lambda e: reward(e, "r.py", "def f(p, c):\n    return [1 / 0 for x in c]\n", "r.py:f"),
     1, r"reward r\.py:f raised ZeroDivisionError: division by zero \(at \S*r\.py:2\)"),
    # ---- labeling campaigns from rollouts, comparisons and summarize-from-feedback files
    ("campaign twins", lambda e: campaign(e, e.jsonl("c.jsonl", GOOD_PAIR, GOOD_PAIR | {"rejected": " a"})),
     2, r"c\.jsonl:2: fields 'chosen' and 'rejected' hold the same answer"),
    ("campaign too many answers", lambda e: campaign(e, e.jsonl("r.jsonl", {"prompt": "P",
                                                                           "completions": list("abcdefghijklmnopq")})),
     2, r"r\.jsonl:1: field 'completions' holds 17 answers; a campaign item shows 2 to 16"),
    ("campaign summarize-from-feedback", lambda e: campaign(e, e.jsonl("c.jsonl", sff(), sff(choice=None))),
     2, r"c\.jsonl:2: field 'choice' must be 0 or 1, got None"),
    # ---- usage
    ("unknown flag", lambda e: ["sft", "--nope", "1"], 2, r"rlhfkit: error: unrecognized arguments: --nope 1"),
    ("unknown stage", lambda e: ["train"], 2, r"rlhfkit: error: argument STAGE: invalid choice: 'train'"),
]


@pytest.fixture
def user_dir(tmp_path, monkeypatch, request):
    """A fresh working directory holding an earlier run's output in `out/`; sys.path and the
    modules a reward import adds are restored afterwards."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    request.addfinalizer(lambda: [sys.modules.pop(name) for name, m in list(sys.modules.items())
                                  if str(getattr(m, "__file__", None)).startswith(str(tmp_path))])
    for name, data in EARLIER.items():
        (tmp_path / "out" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "out" / name).write_bytes(data)
    return tmp_path


def tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("setup, code, message", [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_bad_input_is_one_line(setup, code, message, user_dir, tiny_model_dir, capsys):
    argv = [str(a) for a in setup(Env(user_dir, tiny_model_dir))]
    before = tree(user_dir / "out")
    capsys.readouterr()
    try:
        exit_code = main(argv)
    except SystemExit as e:        # argparse's usage errors
        exit_code = e.code
    err = capsys.readouterr().err
    assert exit_code == code, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    if code == 2:                  # nothing ran: the message is all there is
        assert len(lines) == 1, err
        assert tree(user_dir / "out") == before
    else:                          # a run stopped: the progress bar closed, the message is the last line
        assert sum(line.startswith("rlhfkit ") for line in lines) == 1, err
        assert {k: v for k, v in tree(user_dir / "out").items() if k.startswith("model/")} == \
               {k: v for k, v in before.items() if k.startswith("model/")}
    assert re.search(message, lines[-1]), lines[-1]


def test_there_are_forty_cases_or_more():
    assert len(CASES) >= 40 and len({c[0] for c in CASES}) == len(CASES)


def test_a_failed_run_leaves_no_empty_out(user_dir, tiny_model_dir, capsys):
    env = Env(user_dir, tiny_model_dir)
    argv = [str(a) for a in reward(env, "r.py", "def f(p, c):\n    return [float('nan')] * len(c)\n", "r.py:f")]
    argv[argv.index("out")] = "new/run"        # neither new/ nor new/run exists yet
    assert main(argv) == 1
    assert "reward r.py:f returned nan" in capsys.readouterr().err
    assert not (user_dir / "new").exists()
