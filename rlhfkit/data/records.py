"""Data records and their I/O: JSONL, Parquet or a `datasets` directory, in common formats.

Formats understood for comparisons (answers ranked best first):
- chosen/rejected (the TRL convention): {"prompt", "chosen", "rejected"}
- conversational chosen/rejected: "prompt" a list of messages, "chosen" and "rejected" lists
  holding one assistant message each; the prompt is rendered like a `messages` demonstration's
- implicit prompt: {"chosen", "rejected"} only, whole texts (or message lists) that start alike;
  what they share is the prompt (for texts, cut back to a whitespace so no answer starts mid-word)
- ranked list: {"prompt", "completions": [best, ..., worst]}  (K-way rankings, K >= 2)
- OpenAI summarize-from-feedback: {"info": {"post", "title", "subreddit"}, "summaries": [{"text"}, {"text"}],
  "choice": 0 or 1}
A pair whose two answers are the same text is refused: it holds no preference.

Formats understood for demonstrations:
- prompt/completion: {"prompt": "...", "completion": "..."}
- messages: {"messages": [{"role": "user", "content": ...}, {"role": "assistant", "content": ...}]}
  (the last assistant message is the completion; the conversation before it is the prompt,
  rendered with the tokenizer's chat template when it has one, else as "role: content" lines)

A path may end in `:SPLIT` to keep the records whose "split" field is SPLIT, or SPLIT followed by
digits (summarize-from-feedback's "train", "valid1", "valid2"): `comparisons.jsonl:valid`.

Every error names the file, the line (1-based, or the row for Parquet / `datasets`) and the field.
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from rlhfkit import runtime
from rlhfkit.errors import DataError   # defined with the other error classes; imported from here too

ChatTemplate = Callable[[list[dict]], str]   # messages -> prompt text, ending where the assistant's answer starts


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
    fields: tuple[str, str] = ("prompt", "completion")   # the record's fields they came from ("" for none)


@dataclass(frozen=True)
class Span:
    """One stretch of a conversation after its opening: a policy turn or the environment's reply."""
    text: str
    action: bool        # a turn of the policy (EOS follows it, as it follows every sampled turn); else an observation
    loss: bool = True   # an action the loss sees (False: an earlier turn kept only as context)


@dataclass(frozen=True)
class Conversation:
    """A whole multi-turn demonstration, laid out as `rollout/episodes.py` lays out an episode: the
    opening (the text the first turn continues), then the policy's turns and the environment's
    observations in order, each tokenised on its own (`data.collate.encode_conversation`)."""
    opening: str
    spans: tuple[Span, ...]
    where: Where | None = None


@dataclass(frozen=True)
class Comparison:
    prompt: str
    ranked: tuple[str, ...] | tuple[Conversation, ...]    # 2..K answers (or whole episodes), best first
    labeler: str | None = None
    where: Where | None = None
    fields: tuple[str, ...] = ()  # the record's fields of the prompt, then of each answer ("" for none)

    def demonstrations(self) -> list[Demonstration] | list[Conversation]:
        """Each answer after the prompt, as the sequence a reward model or DPO reads."""
        if isinstance(self.ranked[0], Conversation):
            return list(self.ranked)
        prompt_field, *answer_fields = self.fields or ("prompt", *["completion"] * len(self.ranked))
        return [Demonstration(self.prompt, answer, self.where, (prompt_field, field))
                for answer, field in zip(self.ranked, answer_fields, strict=True)]


# ---- Reading files ---------------------------------------------------------------------------
def split_spec(spec: str | Path) -> tuple[Path, str | None]:
    """`FILE:SPLIT` as (FILE, SPLIT) when FILE exists and the whole does not; else (spec, None)."""
    path = Path(spec)
    if not path.exists():
        head, sep, split = str(spec).rpartition(":")
        if sep and re.fullmatch(r"\w+", split) and Path(head).exists():
            return Path(head), split
    return path, None


def read_records(spec: str | Path) -> Iterator[tuple[Where, dict]]:
    """Yield (where, record) from a JSONL file, a Parquet file or a `datasets` directory, optionally
    only those of one split (`FILE:SPLIT`)."""
    path, split = split_spec(spec)
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    if path.is_dir():
        records = _read_datasets_dir(path)
    elif path.suffix == ".parquet":
        records = _read_parquet(path)
    else:
        records = _read_jsonl(path)
    if split is None:
        yield from records
        return
    seen, kept = set(), False
    for where, record in records:
        name = record.get("split")
        if not isinstance(name, str):
            raise DataError(f"{where}: missing field 'split' (the path asks for split '{split}'; "
                            f"fields: {sorted(record)})")
        seen.add(name)
        if name == split or name.rstrip("0123456789") == split:
            kept = True
            yield where, record
    if not kept:
        raise DataError(f"{path}: no record has split '{split}' (its splits: {', '.join(sorted(seen)) or 'none'})")


# a JSON escape of one half of a surrogate pair; a lone one decodes to a str no UTF-8 text can hold
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\\ud800-\\udfff]")


def _read_jsonl(path: Path) -> Iterator[tuple[Where, dict]]:
    try:
        f = path.open("rb")
    except OSError as e:
        raise DataError(f"{path}: cannot read it ({e.strerror})") from None
    with f:
        for n, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8-sig" if n == 1 else "utf-8").rstrip("\r\n")   # a leading BOM is harmless
            except UnicodeDecodeError as e:
                raise DataError(f"{path}:{n}: not UTF-8 text (byte 0x{raw[e.start]:02x} at column {e.start + 1}); "
                                "save the file as UTF-8") from None
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{n}: malformed JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(record, dict):
                raise DataError(f"{path}:{n}: expected a JSON object, got {type(record).__name__}")
            if _SURROGATE_ESCAPE.search(raw) and (field := _lone_surrogate(record)) is not None:
                raise DataError(f"{path}:{n}: field '{field}' holds a lone surrogate (a \\ud800-\\udfff escape "
                                "without its other half): not Unicode text")
            yield Where(str(path), n), record


def _lone_surrogate(value: object, name: str = "") -> str | None:
    """The name of the first string in `value` holding a lone surrogate, or None."""
    if isinstance(value, str):
        return name if _SURROGATE.search(value) else None
    if isinstance(value, dict):
        children = [(f"{name}.{k}" if name else str(k), v) for k, v in value.items()]
    elif isinstance(value, list):
        children = [(f"{name}[{i}]", v) for i, v in enumerate(value)]
    else:
        return None
    for child, v in children:
        if _SURROGATE.search(child):        # in a key: name it with the escape, which prints
            return child.encode("utf-8", "backslashreplace").decode()
        if (found := _lone_surrogate(v, child)) is not None:
            return found
    return None


def _read_parquet(path: Path) -> Iterator[tuple[Where, dict]]:
    import pyarrow as pa
    import pyarrow.parquet as pq
    try:
        rows = pq.read_table(path).to_pylist()
    except (pa.ArrowException, OSError) as e:
        raise DataError(f"{path}: not a readable Parquet file ({_one_line(e)})") from None
    for n, record in enumerate(rows, start=1):
        yield Where(f"{path} row", n), record


def _read_datasets_dir(path: Path) -> Iterator[tuple[Where, dict]]:
    try:
        import datasets
    except ImportError:
        raise DataError(f"{path}: reading a `datasets` directory needs the `datasets` package") from None
    if not any((path / name).is_file() for name in ("state.json", "dataset_dict.json")):
        raise DataError(f"{path}: a directory, but not one `Dataset.save_to_disk` wrote (no state.json or "
                        "dataset_dict.json); give a JSONL or Parquet file, or such a directory")
    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as e:  # noqa: BLE001 -- a damaged directory fails in arrow, json or datasets itself
        raise DataError(f"{path}: not a readable `datasets` directory ({_one_line(e)})") from None
    if isinstance(ds, datasets.DatasetDict):
        if "train" not in ds:
            raise DataError(f"{path}: a DatasetDict without a 'train' split; point at one split's directory")
        ds = ds["train"]
    for n, record in enumerate(ds, start=1):
        yield Where(f"{path} row", n), record


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())[:300] or type(e).__name__


# ---- Fields -------------------------------------------------------------------------------
def _field(record: dict, name: str, where: Where) -> object:
    if name not in record:
        raise DataError(f"{where}: missing field '{name}' (fields: {sorted(record)})")
    return record[name]


def text_field(record: dict, name: str, where: Where, allow_empty: bool = False) -> str:
    value = _field(record, name, where)
    if not isinstance(value, str):
        raise DataError(f"{where}: field '{name}' must be a string, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise DataError(f"{where}: field '{name}' is empty")
    return value


def _messages(value: object, where: Where, name: str) -> list[dict]:
    """A list of {"role", "content"} messages with string contents, else a DataError naming the field."""
    if not isinstance(value, list) or not value:
        raise DataError(f"{where}: field '{name}' must be a non-empty list of messages")
    for i, m in enumerate(value):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise DataError(f"{where}: field '{name}[{i}]' needs 'role' and 'content'")
        if not isinstance(m["content"], str):
            raise DataError(f"{where}: field '{name}[{i}].content' must be a string, got {type(m['content']).__name__}")
    return value


def chat_template_of(tokenizer) -> ChatTemplate | None:
    """The tokenizer's chat template as messages -> prompt text, or None when it has none."""
    if not getattr(tokenizer, "chat_template", None):
        return None
    return lambda msgs: tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)


def _render(history: list[dict], where: Where, name: str, chat_template: ChatTemplate | None) -> str:
    """The conversation before an assistant answer as prompt text."""
    if chat_template is None:
        return "".join(f"{m['role']}: {m['content']}\n" for m in history) + "assistant:"
    try:
        return chat_template(history)
    except Exception as e:  # noqa: BLE001 -- templates are Jinja and raise what they like
        raise DataError(f"{where}: field '{name}': the tokenizer's chat template refuses it ({_one_line(e)})") from None


# ---- Demonstrations -------------------------------------------------------------------------
def to_demonstration(record: dict, where: Where,
                     chat_template: ChatTemplate | None = None) -> Demonstration | Conversation:
    """A prompt/completion or messages record as a Demonstration; a prompt/episode record as a
    Conversation."""
    if "episode" in record:
        return Conversation(text_field(record, "prompt", where), _episode(record["episode"], where, "episode"), where)
    if "messages" in record:
        return _from_messages(record["messages"], where, chat_template)
    if "prompt" not in record and "completion" not in record:
        raise DataError(f"{where}: expected fields 'prompt' and 'completion' or 'messages' "
                        f"(fields: {sorted(record)})")
    return Demonstration(text_field(record, "prompt", where, allow_empty=True),
                         text_field(record, "completion", where), where)


def _from_messages(messages: object, where: Where, chat_template: ChatTemplate | None) -> Demonstration:
    messages = _messages(messages, where, "messages")
    if messages[-1]["role"] != "assistant":
        raise DataError(f"{where}: field 'messages': the last message must be the assistant's")
    completion = messages[-1]["content"]
    if not completion.strip():
        raise DataError(f"{where}: field 'messages[{len(messages) - 1}].content' is empty")
    return Demonstration(_render(messages[:-1], where, "messages", chat_template), completion, where,
                         ("", "messages"))


# ---- Episodes: a multi-turn exchange exactly as a policy and an environment produced it --------
# {"prompt": OPENING, "episode": [{"text": " What happened?", "action": true}, {"text": "\nUSER: ...",
# "action": false}, ...]}: the pieces after the opening, each tokenised on its own as in an episode;
# an action may say "loss": false (kept as context, not trained). Any chat template, already applied.
def _episode(value: object, where: Where, name: str) -> tuple[Span, ...]:
    if not isinstance(value, list) or not value:
        raise DataError(f"{where}: field {name!r} must be a non-empty list of {{'text', 'action'}} pieces")
    spans = []
    for i, piece in enumerate(value):
        here = f"{name}[{i}]"
        if not isinstance(piece, dict) or not isinstance(piece.get("text"), str) \
                or not isinstance(piece.get("action"), bool) or not isinstance(piece.get("loss", True), bool):
            raise DataError(f"{where}: field {here!r} must be {{'text': str, 'action': bool}} (and optionally "
                            "'loss': bool)")
        spans.append(Span(piece["text"], piece["action"], piece.get("loss", True)))
    if not any(s.action and s.loss for s in spans):
        raise DataError(f"{where}: field {name!r} has no action with a loss: nothing to train on")
    return tuple(spans)


def episode_record(conv: Conversation) -> dict:
    """A Conversation as the JSON record `to_demonstration` reads back."""
    return {"prompt": conv.opening, "episode": [{"text": s.text, "action": s.action} | ({} if s.loss else {"loss": False})
                                                for s in conv.spans]}


def load_demonstrations(path: str | Path,
                        chat_template: ChatTemplate | None = None) -> list[Demonstration | Conversation]:
    demos = [to_demonstration(r, w, chat_template) for w, r in read_records(path)]
    if not demos:
        raise DataError(f"{path}: no records")
    return demos


def write_jsonl(path: str | Path, records: list[dict]) -> None:
    """Write records atomically: a killed write leaves no half file. Under torchrun only the main
    process writes."""
    if not runtime.is_main():
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    tmp.replace(path)


# ---- Comparisons ----------------------------------------------------------------------------
def to_comparison(record: dict, where: Where, chat_template: ChatTemplate | None = None) -> Comparison:
    """A chosen/rejected (plain, conversational or implicit-prompt), ranked-list or
    summarize-from-feedback record as a Comparison."""
    labeler = record.get("labeler") or record.get("worker")
    # answers may be empty here: policies do emit empty answers, and a reward model must learn
    # to score them (an empty *demonstration* is still an error)
    if "chosen" in record or "rejected" in record:
        return _from_pair(record, where, labeler, chat_template)
    if "episodes" in record:     # whole episodes of one opening, best first (see `_episode`)
        episodes = record["episodes"]
        if not isinstance(episodes, list) or len(episodes) < 2:
            raise DataError(f"{where}: field 'episodes' must be a list of at least 2 episodes, best first")
        prompt = text_field(record, "prompt", where)
        return Comparison(prompt, tuple(Conversation(prompt, _episode(e, where, f"episodes[{i}]"), where)
                                        for i, e in enumerate(episodes)), labeler, where)
    if "completions" in record:
        answers = record["completions"]
        if not isinstance(answers, list) or len(answers) < 2:
            raise DataError(f"{where}: field 'completions' must be a list of at least 2 answers, best first")
        for i, a in enumerate(answers):
            if not isinstance(a, str):
                raise DataError(f"{where}: field 'completions[{i}]' must be a string, got {type(a).__name__}")
        return Comparison(text_field(record, "prompt", where, allow_empty=True), tuple(answers), labeler, where,
                          ("prompt", *(f"completions[{i}]" for i in range(len(answers)))))
    if "summaries" in record and "choice" in record:
        return _from_summarize_from_feedback(record, where, labeler)
    raise DataError(f"{where}: expected 'prompt' with 'chosen'/'rejected', 'completions' or 'episodes', or a "
                    f"summarize-from-feedback record (fields: {sorted(record)})")


def _from_pair(record: dict, where: Where, labeler, chat_template: ChatTemplate | None) -> Comparison:
    _field(record, "chosen", where), _field(record, "rejected", where)
    if any(isinstance(record.get(k), list) for k in ("prompt", "chosen", "rejected")):
        prompt, ranked, prompt_field = _conversational_pair(record, where, chat_template)
    elif "prompt" in record:
        prompt, prompt_field = text_field(record, "prompt", where, allow_empty=True), "prompt"
        ranked = (text_field(record, "chosen", where, allow_empty=True),
                  text_field(record, "rejected", where, allow_empty=True))
    else:
        chosen, rejected = (text_field(record, k, where, allow_empty=True) for k in ("chosen", "rejected"))
        cut = implicit_prompt_end(chosen, rejected)
        prompt, ranked, prompt_field = chosen[:cut], (chosen[cut:], rejected[cut:]), ""
    if ranked[0] == ranked[1]:
        raise DataError(f"{where}: fields 'chosen' and 'rejected' hold the same answer; a pair needs two "
                        "different answers")
    return Comparison(prompt, ranked, labeler, where, (prompt_field, "chosen", "rejected"))


def implicit_prompt_end(chosen: str, rejected: str) -> int:
    """Where the prompt two whole texts share ends: their common prefix, cut back to the start of
    its last run of whitespace, so both answers start with that whitespace and a whole word
    ("...Assistant: yes" / "...Assistant: no" -> prompt "...Assistant:", answers " yes" / " no")."""
    n = 0
    while n < min(len(chosen), len(rejected)) and chosen[n] == rejected[n]:
        n += 1
    last_space = re.search(r"\s+\S*\Z", chosen[:n])
    return last_space.start() if last_space else 0


def _conversational_pair(record: dict, where: Where,
                         chat_template: ChatTemplate | None) -> tuple[str, tuple[str, str], str]:
    """(prompt, (chosen, rejected), prompt field) of a record whose answers are message lists."""
    chosen, rejected = _messages(record["chosen"], where, "chosen"), _messages(record["rejected"], where, "rejected")
    if "prompt" in record:
        history, prompt_field = _messages(record["prompt"], where, "prompt"), "prompt"
    else:   # implicit prompt: the messages both lists start with
        k = 0
        while k < min(len(chosen), len(rejected)) - 1 and chosen[k] == rejected[k]:
            k += 1
        history, chosen, rejected, prompt_field = chosen[:k], chosen[k:], rejected[k:], ""
    answers = []
    for name, msgs in (("chosen", chosen), ("rejected", rejected)):
        if len(msgs) != 1 or msgs[0]["role"] != "assistant":
            raise DataError(f"{where}: field '{name}': after the prompt, expected one assistant message, got "
                            f"{[m['role'] for m in msgs]}")
        answers.append(msgs[0]["content"])
    return _render(history, where, prompt_field or "chosen", chat_template), (answers[0], answers[1]), prompt_field


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
    if texts[0] == texts[1]:
        raise DataError(f"{where}: fields 'summaries[0].text' and 'summaries[1].text' hold the same summary; "
                        "a pair needs two different answers")
    return Comparison(prompt, (texts[choice], texts[1 - choice]), labeler, where,
                      ("info.post", f"summaries[{choice}].text", f"summaries[{1 - choice}].text"))


def load_comparisons(path: str | Path, chat_template: ChatTemplate | None = None) -> list[Comparison]:
    comparisons = [to_comparison(r, w, chat_template) for w, r in read_records(path)]
    if not comparisons:
        raise DataError(f"{path}: no records")
    return comparisons
