"""Tokenise prompt/response pairs and whole conversations, and pad them into batches.

Labels are -100 on prompt tokens and padding, so the loss sees response tokens only; EOS is
appended to every response so the model learns to stop. A whole conversation is tokenised as
`rollout/episodes.py` builds an episode, so what SFT trains on is token for token what RL samples
and scores: BOS and the opening, then each policy turn with its EOS (labelled), each observation of
the environment tokenised on its own (not labelled).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from rlhfkit.data.records import Conversation, DataError, Demonstration

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


def conversation_tokens(conv: Conversation, tokenizer) -> tuple[list[int], list[int]]:
    """(input_ids, labels) of a whole conversation, any length. Each piece is tokenised on its own,
    as the sampler and the environment produce them: merging a turn's last token with the next
    observation's first would give ids no episode holds."""
    ids = tokenizer(conv.opening, add_special_tokens=False)["input_ids"]
    if tokenizer.bos_token_id is not None:
        ids = [tokenizer.bos_token_id] + ids
    labels = [IGNORE] * len(ids)
    for span in conv.spans:
        piece = tokenizer(span.text, add_special_tokens=False)["input_ids"]
        if span.action:
            piece = piece + [tokenizer.eos_token_id]   # a sampled turn ends in EOS: the model must learn to yield
        ids += piece
        labels += piece if span.action and span.loss else [IGNORE] * len(piece)
    return ids, labels


def encode_conversation(conv: Conversation, tokenizer, max_len: int) -> Example:
    """A whole conversation with the loss on its policy turns (and their EOS) only."""
    ids, labels = conversation_tokens(conv, tokenizer)
    if len(ids) > max_len:
        raise DataError(f"{conv.where or 'conversation'}: the conversation is {len(ids)} tokens, longer than the "
                        f"model's {max_len}; raise max_len or use a model with a longer context")
    return Example(ids, labels)


def encode_record(record: Demonstration | Conversation, tokenizer, max_len: int) -> Example:
    """A demonstration of either kind as a training example."""
    if isinstance(record, Conversation):
        return encode_conversation(record, tokenizer, max_len)
    return encode_demonstration(record, tokenizer, max_len)


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


def scored_positions(labels: torch.Tensor) -> int:
    """How many last positions of a padded batch's logits any loss reads: from the one before the
    batch's first labelled token on (a prompt's logits are never scored). (B, T) labels -> k <= T."""
    first = int((labels != IGNORE).long().argmax(dim=1).min())
    return labels.size(1) - max(first - 1, 0)
