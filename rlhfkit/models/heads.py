"""Reward and value models: the LM with a scalar head, as `AutoModelForSequenceClassification`
(num_labels=1), so any `transformers` user can load them.

The head is initialised N(0, 1/(d+1)) (Stiennon et al. 2020). A reward is read at the last
real token of prompt + response (the EOS when there is one), found from the attention mask so
left and right padding both work. After training, `config.reward_offset` holds the mean score
of reference answers; `sequence_rewards` subtracts it so references score 0 on average.
The value model is the same network read at every position.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification

from rlhfkit.models.lm import (ModelError, add_pad_token, check_tokenizer, from_pretrained, packed_forward,
                               position_inputs, resolve_model_dir, right_pad, save_atomic, shared_prefix_forward,
                               split_shared_prefix)

def scalar_model_from_lm(path: str | Path):
    """A fresh reward model from a causal-LM directory: its backbone plus a new scalar head.
    A tokenizer without a distinct pad gets the one `load_causal_lm` would give it, so the
    reward model reads the same ids as a policy loaded from the same directory."""
    path = resolve_model_dir(path)
    model, tokenizer = from_pretrained(AutoModelForSequenceClassification, path, num_labels=1)
    add_pad_token(model, tokenizer)
    model.config.pad_token_id = tokenizer.pad_token_id   # transformers' own forward finds the last token by it
    head = score_head(model)
    with torch.no_grad():
        head.weight.normal_(0.0, 1.0 / math.sqrt(head.in_features + 1))
        if head.bias is not None:
            head.bias.zero_()
    model.config.reward_offset = 0.0
    return model, tokenizer

def load_scalar_model(path: str | Path):
    """A trained reward (or value) model and its tokenizer."""
    path = resolve_model_dir(path)
    model, tokenizer = from_pretrained(AutoModelForSequenceClassification, path)
    if model.config.num_labels != 1:
        raise ModelError(f"{path}: a reward model has one output, this one has {model.config.num_labels}")
    check_tokenizer(model, tokenizer, str(path))
    model.eval()
    return model, tokenizer

def score_head(model) -> torch.nn.Linear:
    """The scalar head. Every causal architecture's sequence-classification model in transformers
    names it `score` (Llama, GPT-2, OPT, GPT-NeoX, Qwen2, Phi, Gemma, BLOOM, Falcon, ...)."""
    head = getattr(model, "score", None)
    if not isinstance(head, torch.nn.Linear):
        raise ModelError(f"{type(model).__name__}: no `score` head; rlhfkit reads rewards from a "
                         "causal LM's sequence-classification model")
    return head

def token_values(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The scalar head at every position: (B, T)."""
    # base_model is the backbone under whatever name the architecture gives it (model, transformer, gpt_neox)
    backbone = model.base_model
    hidden = packed_forward(lambda ids, mask: backbone(input_ids=ids, attention_mask=mask,
                                                       **position_inputs(backbone, mask)).last_hidden_state,
                            input_ids, attention_mask)                                  # (B, T, d)
    return score_head(model)(hidden).squeeze(-1).float()

def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Index of the rightmost real token of each row: (B,)."""
    positions = torch.arange(attention_mask.size(1), device=attention_mask.device)
    return (positions * attention_mask).argmax(dim=1)

def sequence_rewards(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The reward of each whole sequence, read at its last real token, minus the offset: (B,)."""
    values = token_values(model, input_ids, attention_mask)
    last = last_token_index(attention_mask)
    offset = float(getattr(model.config, "reward_offset", 0.0))
    return values.gather(1, last.unsqueeze(1)).squeeze(1) - offset

def group_rewards(model, sequences: list[list[int]], sizes: list[int], pad_id: int) -> torch.Tensor:
    """The reward of each sequence, (N,), for sequences in groups that share a prompt (a ranking's
    answers, laid out group after group): `sequence_rewards`' numbers, with each group's shared
    tokens run through the backbone once (`shared_prefix_forward`)."""
    batch = split_shared_prefix(sequences, sizes, pad_id)
    if batch is None:
        ids, mask = right_pad(sequences, pad_id)
        return sequence_rewards(model, ids, mask)
    hidden = shared_prefix_forward(model.base_model, batch).last_hidden_state
    last = hidden[torch.arange(hidden.size(0)), last_token_index(batch.suffix_mask)]
    offset = float(getattr(model.config, "reward_offset", 0.0))
    return score_head(model)(last).squeeze(-1).float() - offset

def save_scalar_model(path: str | Path, model, tokenizer) -> None:
    def write(d: Path) -> None:
        model.save_pretrained(d, safe_serialization=True)
        tokenizer.save_pretrained(d)
    save_atomic(path, write)

def load_reward_model(path: str | Path, policy_tokenizer):
    """A frozen reward model in eval mode, checked to read the policy's tokens."""
    model, tok = load_scalar_model(path)
    if tok.get_vocab() != policy_tokenizer.get_vocab():
        raise ModelError(f"{path}: its tokenizer differs from the policy's; the reward model must read the "
                         "policy's tokens")
    return model.eval().requires_grad_(False)
