"""Reward and value models: the LM with a scalar head, as `AutoModelForSequenceClassification`
(num_labels=1), so any `transformers` user can load them.

The head is initialised N(0, 1/(d+1)) (Stiennon et al. 2020). A reward is read at the last
real token of prompt + response (the EOS when there is one), found from the attention mask so
left and right padding both work. After training, `config.reward_offset` holds the mean score
of reference answers; `sequence_rewards` subtracts it so references score 0 on average.
The value model is the same network read at every position.

How a reward is read out of the network (`config.reward_readout`, set by `rlhfkit rm --readout`):
  eos         the head at the last real token (the default above)
  mean        the head averaged over the answer's tokens
  likelihood  the head at the last token plus `config.likelihood_weight` times the answer's mean
              token log-probability under the backbone's own LM head (the input embeddings, tied):
              how well the answer follows from the post, which a scalar head at EOS may not learn
              from a few thousand comparisons (a polarity flipped against the post)
  verdict     a generative reward model: the LM head kept (tied to the input embeddings), the
              sequence followed by a verdict prompt (`config.verdict_prompt_ids`), the reward the
              logit of the "yes" token minus the "no" token's there (`config.verdict_token_ids`);
              the scalar head is not read
Mean and likelihood need each row's answer tokens (`answer_mask`).
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification

from rlhfkit.models.lm import (ModelError, add_pad_token, check_tokenizer, from_pretrained, packed_forward,
                               position_inputs, resolve_model_dir, right_pad, shared_prefix_forward,
                               split_shared_prefix)

def scalar_model_from_lm(path: str | Path):
    """A fresh reward model from a causal-LM directory: its backbone plus a new scalar head.
    A tokenizer without a distinct pad gets the one `load_causal_lm` would give it, so the
    reward model reads the same ids as a policy loaded from the same directory."""
    path = resolve_model_dir(path)
    model, tokenizer = from_pretrained(AutoModelForSequenceClassification, path, num_labels=1)
    add_pad_token(model, tokenizer)
    model.config.pad_token_id = tokenizer.pad_token_id   # transformers' own forward finds the last token by it
    fresh_head(model)
    return model, tokenizer


def fresh_head(model) -> None:
    """A new scalar head, N(0, 1/(d+1)), read at the EOS with no offset."""
    head = score_head(model)
    with torch.no_grad():
        head.weight.normal_(0.0, 1.0 / math.sqrt(head.in_features + 1))
        if head.bias is not None:
            head.bias.zero_()
    model.config.reward_offset = 0.0
    model.config.reward_readout = "eos"

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

def readout_of(model) -> str:
    return getattr(model.config, "reward_readout", "eos")


def backbone_hidden(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The backbone's last hidden states, (B, T, d)."""
    # base_model is the backbone under whatever name the architecture gives it (model, transformer, gpt_neox)
    backbone = model.base_model
    return packed_forward(lambda ids, mask: backbone(input_ids=ids, attention_mask=mask,
                                                     **position_inputs(backbone, mask)).last_hidden_state,
                          input_ids, attention_mask)


def token_values(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The scalar head at every position: (B, T)."""
    return score_head(model)(backbone_hidden(model, input_ids, attention_mask)).squeeze(-1).float()


def check_readout(model, readout: str) -> None:
    """Refuse a read-out the model cannot give: likelihood and verdict need the LM head tied to the
    input embeddings (the sequence-classification model keeps no separate LM head)."""
    if readout in ("likelihood", "verdict") and not getattr(model.config, "tie_word_embeddings", False):
        raise ModelError(f"{type(model).__name__}: the {readout} read-out needs an LM head tied to the input "
                         "embeddings; this model's LM head is separate (use --readout eos or mean)")


def verdict_prompt_ids(model) -> list[int]:
    """The tokens the verdict read-out appends to every sequence (none for the other read-outs)."""
    return list(model.config.verdict_prompt_ids) if readout_of(model) == "verdict" else []


def with_verdict_prompt(model, input_ids: torch.Tensor, attention_mask: torch.Tensor):
    """Each row with the verdict prompt placed right after its last real token (the row one prompt wider)."""
    prompt = torch.tensor(verdict_prompt_ids(model), dtype=input_ids.dtype, device=input_ids.device)
    rows, width = input_ids.size(0), prompt.numel()
    ids = torch.cat([input_ids, input_ids.new_full((rows, width), model.config.pad_token_id)], dim=1)
    mask = torch.cat([attention_mask, attention_mask.new_zeros(rows, width)], dim=1)
    where = last_token_index(attention_mask)[:, None] + 1 + torch.arange(width, device=ids.device)
    return ids.scatter(1, where, prompt.expand(rows, width)), mask.scatter(1, where, 1)


def last_token_reward(model, last: torch.Tensor) -> torch.Tensor:
    """The reward read from each row's last hidden state, (B, d) -> (B,): the scalar head, or for the
    verdict read-out the tied LM head's logit of the "yes" token minus the "no" token's."""
    if readout_of(model) != "verdict":
        return score_head(model)(last).squeeze(-1).float()
    yes, no = model.config.verdict_token_ids
    embeddings = model.get_input_embeddings().weight
    return last.float() @ (embeddings[yes] - embeddings[no]).float()


def answer_logprob(model, hidden: torch.Tensor, input_ids: torch.Tensor, answer_mask: torch.Tensor) -> torch.Tensor:
    """Mean log-probability of each row's answer tokens under the tied LM head, (B,)."""
    logits = hidden[:, :-1].float() @ model.get_input_embeddings().weight.float().T       # (B, T-1, V)
    logp = torch.log_softmax(logits, dim=-1).gather(-1, input_ids[:, 1:, None]).squeeze(-1)
    mask = answer_mask[:, 1:].float()
    return (logp * mask).sum(1) / mask.sum(1).clamp(min=1.0)


def read_rewards(model, hidden: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                 answer_mask: torch.Tensor | None) -> torch.Tensor:
    """Each row's reward from the backbone's hidden states by the model's read-out, before the offset."""
    readout = readout_of(model)
    if readout in ("mean", "likelihood") and answer_mask is None:
        raise ValueError(f"the {readout} read-out needs each row's answer tokens (answer_mask)")
    if readout == "mean":
        mask = answer_mask.float()
        return (score_head(model)(hidden).squeeze(-1).float() * mask).sum(1) / mask.sum(1).clamp(min=1.0)
    rewards = last_token_reward(model, hidden[torch.arange(hidden.size(0)), last_token_index(attention_mask)])
    if readout == "likelihood":
        rewards = rewards + float(model.config.likelihood_weight) * answer_logprob(model, hidden, input_ids,
                                                                                  answer_mask)
    return rewards

def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Index of the rightmost real token of each row: (B,)."""
    positions = torch.arange(attention_mask.size(1), device=attention_mask.device)
    return (positions * attention_mask).argmax(dim=1)

def sequence_rewards(model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                     answer_mask: torch.Tensor | None = None) -> torch.Tensor:
    """The reward of each whole sequence by the model's read-out (at its last real token by
    default), minus the offset: (B,)."""
    if readout_of(model) == "verdict":
        input_ids, attention_mask = with_verdict_prompt(model, input_ids, attention_mask)
    hidden = backbone_hidden(model, input_ids, attention_mask)
    offset = float(getattr(model.config, "reward_offset", 0.0))
    return read_rewards(model, hidden, input_ids, attention_mask, answer_mask) - offset

def group_rewards(model, sequences: list[list[int]], sizes: list[int], pad_id: int,
                  answer_masks: list[list[int]] | None = None) -> torch.Tensor:
    """The reward of each sequence, (N,), for sequences in groups that share a prompt (a ranking's
    answers, laid out group after group): `sequence_rewards`' numbers, with each group's shared
    tokens run through the backbone once (`shared_prefix_forward`) for the read-outs at the last
    token (eos, verdict). The others read every answer token, so each sequence runs whole."""
    batch = split_shared_prefix([s + verdict_prompt_ids(model) for s in sequences], sizes, pad_id) \
        if readout_of(model) in ("eos", "verdict") else None
    if batch is None:
        ids, mask = right_pad(sequences, pad_id)
        answer = right_pad(answer_masks, 0)[0] if answer_masks is not None else None
        return sequence_rewards(model, ids, mask, answer)
    hidden = shared_prefix_forward(model.base_model, batch).last_hidden_state
    last = hidden[torch.arange(hidden.size(0)), last_token_index(batch.suffix_mask)]
    offset = float(getattr(model.config, "reward_offset", 0.0))
    return last_token_reward(model, last) - offset

def load_reward_model(path: str | Path, policy_tokenizer):
    """A frozen reward model in eval mode, checked to read the policy's tokens."""
    model, tok = load_scalar_model(path)
    if tok.get_vocab() != policy_tokenizer.get_vocab():
        raise ModelError(f"{path}: its tokenizer differs from the policy's; the reward model must read the "
                         "policy's tokens")
    return model.eval().requires_grad_(False)
