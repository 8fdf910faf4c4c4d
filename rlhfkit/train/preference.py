"""`rlhfkit dpo` and `rlhfkit slic`: a policy trained straight on comparisons, no reward model.

Items are whole comparisons (a K-way ranking is one item): the K answers of a prompt go
through the model once and every ranked pair is formed from their log-probs, each prompt's
pairs weighted 1/C(K,2) as in the reward model, so both see the same data the same way.

    dpo:  -log sigmoid(beta h), or IPO's (h - 1/(2 beta))^2, h the log-ratio margin against the
          frozen starting policy, whose log-probs are computed once before training
    slic: max(0, delta - log pi(y_w) + log pi(y_l)) + lambda * per-token CE of y_w

    rlhfkit dpo --model runs/sft --data rankings.jsonl --valid_data valid.jsonl --out runs/dpo
    rlhfkit dpo --loss ipo --beta 0.5 --model runs/sft --data rankings.jsonl --out runs/ipo
    rlhfkit slic --model runs/sft --data rankings.jsonl --out runs/slic
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from rlhfkit.algorithms import dpo, slic
from rlhfkit.algorithms.reward import group_pairs
from rlhfkit.algorithms.sft import IGNORE
from rlhfkit.config import DPOConfig, SLiCConfig, check_max_len
from rlhfkit.data.collate import Example, pad_batch, scored_positions
from rlhfkit.data.records import chat_template_of, load_comparisons
from rlhfkit.models import lora
from rlhfkit.models.lm import (context_length, disable_dropout, load_causal_lm, logits_from, shared_prefix_forward,
                               split_shared_prefix)
from rlhfkit.train.job import Job
from rlhfkit.train.loop import autocast_for, budget, fit
from rlhfkit.train.reward_model import encode_comparison, group_chunks


@dataclass
class Group:
    answers: list[Example]           # the answers of one prompt, best first
    ref_logprobs: list[float]        # log pi_ref of each answer (summed over its tokens)


def answers_length(group: Group) -> int:
    """Tokens a group pads its batch to: its longest answer's."""
    return max(len(a.input_ids) for a in group.answers)


def sequence_logprobs(model, examples: list[Example], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of log pi over each answer's tokens (N,), answer lengths in tokens (N,))."""
    batch = pad_batch(examples, pad_id)
    keep = scored_positions(batch["labels"])
    logits = logits_from(model, batch["input_ids"], batch["attention_mask"], keep)
    return answer_logprobs(logits, batch["labels"][:, -keep:])


def group_logprobs(model, examples: list[Example], sizes: list[int], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`sequence_logprobs` of answers in groups that share a prompt (laid out group after group),
    each group's prompt run through the model once (`shared_prefix_forward`)."""
    first_scored = [max(next(i for i, x in enumerate(e.labels) if x != IGNORE) - 1, 0) for e in examples]
    batch = split_shared_prefix([e.input_ids for e in examples], sizes, pad_id, first_scored)
    if batch is None:
        return sequence_logprobs(model, examples, pad_id)
    cuts = batch.prefix_mask.sum(dim=1)[batch.group].tolist()
    labels = torch.full_like(batch.suffix_ids, IGNORE)
    for row, (e, c) in enumerate(zip(examples, cuts)):
        labels[row, :len(e.labels) - c] = torch.tensor(e.labels[c:])
    return answer_logprobs(shared_prefix_forward(model, batch).logits, labels)


def answer_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """logits (N, T, V) of positions whose next tokens are labels[:, 1:] -> (sum of log-probs of
    the labelled tokens (N,), their number (N,))."""
    targets = labels[:, 1:]                                            # token t+1 from position t
    mask = targets != IGNORE
    logits = logits[:, :-1].float()
    # the target's logit minus the log-normaliser: no second (N, T, V) tensor, which matters with
    # a 49k vocabulary (log_softmax would hold one)
    logp = logits.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)
    return (logp * mask).sum(1), mask.sum(1)


@torch.no_grad()
def reference_groups(ref_model, groups: list[list[Example]], pad_id: int, autocast,
                     batch_size: int = 32) -> list[Group]:
    """Attach the frozen reference's log-probs to every answer, once, under the autocast the
    policy trains with (so the DPO loss starts at exactly log 2); whole groups per batch of about
    `batch_size` answers."""
    ref_model.eval()
    out: list[Group] = []
    chunks = list(group_chunks(groups, batch_size))
    for chunk in tqdm(chunks, desc="reference log-probs", unit="batch", dynamic_ncols=True):
        sizes = [len(g) for g in chunk]
        with autocast:
            logp = group_logprobs(ref_model, [ex for g in chunk for ex in g], sizes, pad_id)[0]
        out += [Group(g, x.tolist()) for g, x in zip(chunk, logp.split(sizes))]
    return out


def _pairs(model, groups: list[Group], pad_id: int, autocast):
    """Log-probs of the better and worse answer of every ranked pair, their references and weights."""
    sizes = [len(g.answers) for g in groups]
    with autocast:
        logp, lengths = group_logprobs(model, [ex for g in groups for ex in g.answers], sizes, pad_id)
    ref = torch.tensor([x for g in groups for x in g.ref_logprobs])
    chosen, rejected, weights = group_pairs(sizes)
    return logp, lengths, ref, chosen, rejected, torch.tensor(weights)


def dpo_step(model, groups: list[Group], pad_id: int, cfg: DPOConfig, autocast) -> tuple[torch.Tensor, dict]:
    logp, lengths, ref, c, r, w = _pairs(model, groups, pad_id, autocast)
    loss, stats = dpo.loss(logp[c], logp[r], ref[c], ref[r], cfg.beta, cfg.loss, w)
    stats["answer_tokens"] = stats["seq_tokens"] = int(lengths.sum())
    return loss, stats


def slic_step(model, groups: list[Group], pad_id: int, cfg: SLiCConfig, autocast) -> tuple[torch.Tensor, dict]:
    logp, lengths, _, c, r, w = _pairs(model, groups, pad_id, autocast)
    reg_nll = -logp[c] / lengths[c]
    loss, stats = slic.loss(logp[c], logp[r], reg_nll, cfg.delta, cfg.reg_weight, w)
    stats["answer_tokens"] = stats["seq_tokens"] = int(lengths.sum())
    return loss, stats


@torch.no_grad()
def ranking_accuracy(model, groups: list[Group], pad_id: int, use_reference: bool, autocast) -> float:
    """Share of held-out ranked pairs (each prompt weighted once) the policy orders like the label:
    by the implicit reward log pi - log pi_ref (DPO), or by log pi alone (SLiC)."""
    model.eval()
    correct = 0.0
    for i in range(0, len(groups), 32):
        logp, _, ref, c, r, w = _pairs(model, groups[i:i + 32], pad_id, autocast)
        score = logp - ref if use_reference else logp
        correct += ((score[c] > score[r]).float() * w).sum().item()
    return correct / len(groups)


def _load(cfg: DPOConfig | SLiCConfig, with_reference: bool) -> tuple:
    """The policy, and the train / valid comparisons as Groups (reference log-probs 0 without one)."""
    model, tokenizer = load_causal_lm(cfg.model)
    disable_dropout(model)   # the margin compares the policy with its reference: no dropout noise in it
    adapters = getattr(cfg, "lora", None)
    lora.apply(model, adapters, cfg.train.seed)
    # with adapters the reference is the policy with them off: no second copy of the weights
    ref = (model if adapters and adapters.r else load_causal_lm(cfg.model)[0]) if with_reference else None
    max_len = cfg.max_len or context_length(model)
    check_max_len(max_len, context_length(model))

    def groups(path: str) -> list[Group]:
        comparisons = load_comparisons(path, chat_template_of(tokenizer)) if path else []
        encoded = [encode_comparison(c, tokenizer, max_len) for c in comparisons]
        if ref is None:
            return [Group(g, [0.0] * len(g)) for g in encoded]
        with lora.disabled(ref):
            return reference_groups(ref, encoded, tokenizer.pad_token_id, autocast_for(cfg.train))
    return model, tokenizer, groups(cfg.data), groups(cfg.valid_data)


def run_dpo(cfg: DPOConfig) -> dict:
    cfg.validate()
    job = Job.begin(cfg.loss, cfg, models={"model": cfg.model}, data={"data": cfg.data, "valid_data": cfg.valid_data})
    if job.result is not None:
        return job.result
    # ---- Model, frozen reference's log-probs, data
    model, tokenizer, train, valid = _load(cfg, with_reference=True)
    pad = tokenizer.pad_token_id
    # ---- Training
    stats = fit(model, tokenizer, train, cfg.train, Path(cfg.out), job=job, desc=cfg.loss,
                step_fn=lambda m, groups, ac: dpo_step(m, groups, pad, cfg, ac), length=answers_length,
                units=len)   # the loss is a mean over prompts
    result = {"loss": stats.get("loss"), "comparisons": len(train), "budget": budget([Path(cfg.out) / "log.jsonl"]),
              "out": str(Path(cfg.out) / "model")}
    if valid:
        result["valid_accuracy"] = ranking_accuracy(model, valid, pad, use_reference=True, autocast=autocast_for(cfg.train))
    return job.finish(result)


def run_slic(cfg: SLiCConfig) -> dict:
    cfg.validate()
    job = Job.begin("slic", cfg, models={"model": cfg.model}, data={"data": cfg.data, "valid_data": cfg.valid_data})
    if job.result is not None:
        return job.result
    # ---- Model and data (SLiC needs no reference)
    model, tokenizer, train, valid = _load(cfg, with_reference=False)
    pad = tokenizer.pad_token_id
    # ---- Training
    stats = fit(model, tokenizer, train, cfg.train, Path(cfg.out), job=job, desc="slic",
                step_fn=lambda m, groups, ac: slic_step(m, groups, pad, cfg, ac), length=answers_length,
                units=len)   # the loss is a mean over prompts
    result = {"loss": stats.get("loss"), "comparisons": len(train), "budget": budget([Path(cfg.out) / "log.jsonl"]),
              "out": str(Path(cfg.out) / "model")}
    if valid:
        result["valid_accuracy"] = ranking_accuracy(model, valid, pad, use_reference=False, autocast=autocast_for(cfg.train))
    return job.finish(result)
