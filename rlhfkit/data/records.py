"""Data records and their I/O: JSONL, Parquet or a `datasets` directory, in common formats.

Formats understood for comparisons (answers ranked best first):
- chosen/rejected (the TRL convention): {"prompt", "chosen", "rejected"}
- ranked list: {"prompt", "completions": [best, ..., worst]}  (K-way rankings, K >= 2)
- OpenAI summarize-from-feedback: {"info": {"post", "title", "subreddit"}, "summaries": [{"text"}, {"text"}],
  "choice": 0 or 1}

Formats understood for demonstrations:
- prompt/completion: {"prompt": "...", "completion": "..."}
- messages: {"messages": [{"role": "user", "content": ...}, {"role": "assistant", "content": ...}]}
  (the last assistant message is the completion; the conversation before it is the prompt,
  rendered with the tokenizer's chat template when it has one)

Every error names the file, the line (1-based, or the row for Parquet / `datasets`) and the field.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


class DataError(ValueError):
    """A malformed input record; the message names file, line and field."""


@dataclass(frozen=True)
class Where:
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Demonstration:
    prompt: str
    completion: str
    where: Where | None = None


@dataclass(frozen=True)
class Comparison:
    prompt: str
    ranked: tuple[str, ...]      # 2..K answers, best first
    labeler: str | None = None
    where: Where | None = None


def read_records(path: str | Path) -> Iterator[tuple[Where, dict]]:
    """Yield (where, record) from a JSONL file, a Parquet file or a `datasets` directory."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    if path.is_dir():
        yield from _read_datasets_dir(path)
    elif path.suffix == ".parquet":
        yield from _read_parquet(path)
    else:
        yield from _read_jsonl(path)


def _read_jsonl(path: Path) -> Iterator[tuple[Where, dict]]:
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{n}: malformed JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(record, dict):
                raise DataError(f"{path}:{n}: expected a JSON object, got {type(record).__name__}")
            yield Where(str(path), n), record


def _read_parquet(path: Path) -> Iterator[tuple[Where, dict]]:
    import pyarrow.parquet as pq
    for n, record in enumerate(pq.read_table(path).to_pylist(), start=1):
        yield Where(f"{path} row", n), record


def _read_datasets_dir(path: Path) -> Iterator[tuple[Where, dict]]:
    try:
        import datasets
    except ImportError:
        raise DataError(f"{path}: reading a `datasets` directory needs the `datasets` package") from None
    ds = datasets.load_from_disk(str(path))
    if isinstance(ds, datasets.DatasetDict):
        if "train" not in ds:
            raise DataError(f"{path}: a DatasetDict without a 'train' split; point at one split's directory")
        ds = ds["train"]
    for n, record in enumerate(ds, start=1):
        yield Where(f"{path} row", n), record


def text_field(record: dict, name: str, where: Where, allow_empty: bool = False) -> str:
    if name not in record:
        raise DataError(f"{where}: missing field '{name}' (fields: {sorted(record)})")
    value = record[name]
    if not isinstance(value, str):
        raise DataError(f"{where}: field '{name}' must be a string, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise DataError(f"{where}: field '{name}' is empty")
    return value


def to_demonstration(record: dict, where: Where, chat_template=None) -> Demonstration:
    """A prompt/completion or messages record as a Demonstration."""
    if "messages" in record:
        return _from_messages(record["messages"], where, chat_template)
    if "prompt" not in record and "completion" not in record:
        raise DataError(f"{where}: expected fields 'prompt' and 'completion' or 'messages' "
                        f"(fields: {sorted(record)})")
    return Demonstration(text_field(record, "prompt", where, allow_empty=True),
                         text_field(record, "completion", where), where)


def _from_messages(messages: object, where: Where, chat_template) -> Demonstration:
    if not isinstance(messages, list) or not messages:
        raise DataError(f"{where}: field 'messages' must be a non-empty list")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise DataError(f"{where}: field 'messages[{i}]' needs 'role' and 'content'")
    if messages[-1]["role"] != "assistant":
        raise DataError(f"{where}: field 'messages': the last message must be the assistant's")
    completion = messages[-1]["content"]
    if not isinstance(completion, str) or not completion.strip():
        raise DataError(f"{where}: field 'messages[{len(messages) - 1}].content' is empty")
    history = messages[:-1]
    if chat_template is not None:
        prompt = chat_template(history)
    else:
        prompt = "".join(f"{m['role']}: {m['content']}\n" for m in history) + "assistant:"
    return Demonstration(prompt, completion, where)


def load_demonstrations(path: str | Path, chat_template=None) -> list[Demonstration]:
    demos = [to_demonstration(r, w, chat_template) for w, r in read_records(path)]
    if not demos:
        raise DataError(f"{path}: no records")
    return demos


def write_jsonl(path: str | Path, records: list[dict]) -> None:
    """Write records atomically: a killed write leaves no half file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    tmp.replace(path)


def to_comparison(record: dict, where: Where) -> Comparison:
    """A chosen/rejected, ranked-list or summarize-from-feedback record as a Comparison."""
    labeler = record.get("labeler") or record.get("worker")
    # answers may be empty here: policies do emit empty answers, and a reward model must learn
    # to score them (an empty *demonstration* is still an error)
    if "chosen" in record or "rejected" in record:
        ranked = (text_field(record, "chosen", where, allow_empty=True),
                  text_field(record, "rejected", where, allow_empty=True))
        return Comparison(text_field(record, "prompt", where, allow_empty=True), ranked, labeler, where)
    if "completions" in record:
        answers = record["completions"]
        if not isinstance(answers, list) or len(answers) < 2:
            raise DataError(f"{where}: field 'completions' must be a list of at least 2 answers, best first")
        for i, a in enumerate(answers):
            if not isinstance(a, str):
                raise DataError(f"{where}: field 'completions[{i}]' must be a string, got {type(a).__name__}")
        return Comparison(text_field(record, "prompt", where, allow_empty=True), tuple(answers), labeler, where)
    if "summaries" in record and "choice" in record:
        return _from_summarize_from_feedback(record, where, labeler)
    raise DataError(f"{where}: expected 'prompt' with 'chosen'/'rejected' or 'completions', or a "
                    f"summarize-from-feedback record (fields: {sorted(record)})")


def _from_summarize_from_feedback(record: dict, where: Where, labeler) -> Comparison:
    info = record.get("info")
    if not isinstance(info, dict):
        raise DataError(f"{where}: field 'info' must be an object with 'post'")
    post = text_field(info, "post", where)
    prompt = (f"SUBREDDIT: r/{info.get('subreddit') or ''}\nTITLE: {info.get('title') or ''}\n"
              f"POST: {post}\nTL;DR:")
    summaries, choice = record["summaries"], record["choice"]
    if not isinstance(summaries, list) or len(summaries) != 2:
        raise DataError(f"{where}: field 'summaries' must hold exactly 2 summaries")
    if choice not in (0, 1):
        raise DataError(f"{where}: field 'choice' must be 0 or 1, got {choice!r}")
    texts = [text_field(s, "text", where, allow_empty=True) if isinstance(s, dict) else None for s in summaries]
    if None in texts:
        raise DataError(f"{where}: field 'summaries' entries must be objects with 'text'")
    return Comparison(prompt, (texts[choice], texts[1 - choice]), labeler, where)


def load_comparisons(path: str | Path) -> list[Comparison]:
    comparisons = [to_comparison(r, w) for w, r in read_records(path)]
    if not comparisons:
        raise DataError(f"{path}: no records")
    return comparisons
