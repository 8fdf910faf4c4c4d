"""Tokenise prompt/response pairs and pad them into batches.

Labels are -100 on prompt tokens and padding, so the loss sees response tokens only; EOS is
appended to every response so the model learns to stop.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from rlhfkit.data.records import DataError, Demonstration

IGNORE = -100


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]
    weight: float = 1.0      # scales this sequence's loss (reward-weighted SFT); 1 elsewhere


def encode_demonstration(demo: Demonstration, tokenizer, max_len: int) -> Example:
    prompt_ids = tokenizer(demo.prompt, add_special_tokens=False)["input_ids"]
    response_ids = tokenizer(demo.completion, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    if tokenizer.bos_token_id is not None:
        prompt_ids = [tokenizer.bos_token_id] + prompt_ids
    n = len(prompt_ids) + len(response_ids)
    if n > max_len:
        # named by the record's own fields (e.g. 'info.post'+'summaries[1].text'), so the user can find them
        fields = [f"'{f}'" for f in demo.fields if f]
        what = f"fields {'+'.join(fields)} are" if len(fields) > 1 else f"field {fields[0]} is"
        raise DataError(f"{demo.where or 'record'}: {what} {n} tokens, longer than the model's {max_len}; "
                        "shorten it or raise max_len")
    return Example(prompt_ids + response_ids, [IGNORE] * len(prompt_ids) + response_ids)


def encode_text(text: str, tokenizer, max_len: int) -> Example:
    """A whole document for language modelling (every token is a target), truncated to max_len."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    if tokenizer.bos_token_id is not None:
        ids = [tokenizer.bos_token_id] + ids
    ids = ids[:max_len]
    return Example(ids, list(ids))


def pad_batch(examples: list[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad to the longest example: input_ids, attention_mask, labels (B, T); weights (B,)."""
    T = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), T), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), T), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(examples), T), dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e.input_ids)
        ids[i, :n] = torch.tensor(e.input_ids)
        labels[i, :n] = torch.tensor(e.labels)
        mask[i, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels,
            "weights": torch.tensor([e.weight for e in examples])}
