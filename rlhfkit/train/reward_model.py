"""`rlhfkit rm`: a reward model from comparisons and K-way rankings.

The LM with a scalar head read at the last token of prompt + answer (the EOS; `--readout` reads it
otherwise: the head's mean over the answer, the EOS head plus the answer's log-likelihood under
the backbone's own LM head, or a verdict token's logit under it, see `rlhfkit.models.heads`); loss
-log sigmoid(r_w - r_l) over every ranked pair, each prompt's pairs weighted 1/C(K,2) so a
prompt counts once (InstructGPT). After training the head's output is shifted so the training
answers score 0 on average (`config.reward_offset`; Stiennon et al. normalise references to 0).

    rlhfkit rm --model runs/sft --data comparisons.jsonl --valid_data valid.jsonl --out runs/rm
"""
from __future__ import annotations

import statistics
from pathlib import Path

import torch

from rlhfkit.algorithms.reward import ranking_loss
from rlhfkit.config import ConfigError, RMConfig, check_max_len
from rlhfkit.data.collate import IGNORE, Example, encode_record
from rlhfkit.data.records import Comparison, chat_template_of, load_comparisons
from rlhfkit.models import lora
from rlhfkit.models.heads import check_readout, group_rewards, scalar_model_from_lm, score_head
from rlhfkit.models.lm import context_length, save_model
from rlhfkit.train.job import Job
from rlhfkit.train.loop import fit

Group = list  # the encoded answers of one comparison, best first


def encode_comparison(c: Comparison, tokenizer, max_len: int) -> Group:
    return [encode_record(d, tokenizer, max_len) for d in c.demonstrations()]


def answer_mask(ex: Example) -> list[int]:
    """1 at the tokens the example trains (the answer), 0 at the prompt's."""
    return [int(label != IGNORE) for label in ex.labels]


def verdict_ids(cfg: RMConfig, tokenizer) -> tuple[list[int], list[int]]:
    """The verdict prompt's tokens and the [yes, no] token ids; each verdict word must be one token."""
    words = []
    for field in ("verdict_yes", "verdict_no"):
        ids = tokenizer.encode(getattr(cfg, field), add_special_tokens=False)
        if len(ids) != 1:
            raise ConfigError(f"rm.{field}: {getattr(cfg, field)!r} is {len(ids)} tokens in {cfg.model}'s tokenizer; "
                              "the verdict read-out reads the logit of one token")
        words += ids
    if words[0] == words[1]:
        raise ConfigError(f"rm.verdict_yes and rm.verdict_no are the same token ({words[0]})")
    return tokenizer.encode(cfg.verdict_prompt, add_special_tokens=False), words


def rm_step(model, groups: list[Group], pad_id: int, autocast, center: float = 0.0) -> tuple[torch.Tensor, dict]:
    flat = [ex.input_ids for g in groups for ex in g]
    with autocast:
        rewards = group_rewards(model, flat, [len(g) for g in groups], pad_id,
                                [answer_mask(ex) for g in groups for ex in g])
    loss, stats = ranking_loss(rewards, [len(g) for g in groups], center)
    stats["seq_tokens"] = sum(len(ids) for ids in flat)
    return loss, stats


def group_chunks(groups: list[list], batch_size: int):
    """Consecutive runs of whole groups, each of at most `batch_size` items (or one larger group)."""
    chunk: list[list] = []
    for g in groups:
        if chunk and sum(map(len, chunk)) + len(g) > batch_size:
            yield chunk
            chunk = []
        chunk.append(g)
    if chunk:
        yield chunk


@torch.no_grad()
def score_groups(model, groups: list[Group], pad_id: int, batch_size: int = 64) -> list[list[float]]:
    """Rewards of every answer of every group, in order; whole groups per batch of at most
    `batch_size` answers."""
    model.eval()
    out: list[list[float]] = []
    for chunk in group_chunks(groups, batch_size):
        sizes = [len(g) for g in chunk]
        rewards = group_rewards(model, [ex.input_ids for g in chunk for ex in g], sizes, pad_id,
                                [answer_mask(ex) for g in chunk for ex in g])
        out += [r.tolist() for r in rewards.split(sizes)]
    return out


def pair_accuracy(group_scores: list[list[float]]) -> float:
    """Share of ranked pairs the model orders like the label (ties count half), each prompt weighted once."""
    per_prompt = []
    for s in group_scores:
        pairs = [(s[i], s[j]) for i in range(len(s)) for j in range(i + 1, len(s))]
        per_prompt.append(statistics.fmean(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in pairs))
    return statistics.fmean(per_prompt)


def run(cfg: RMConfig) -> dict:
    cfg.validate()
    job = Job.begin("rm", cfg, models={"model": cfg.model}, data={"data": cfg.data, "valid_data": cfg.valid_data})
    if job.result is not None:
        return job.result
    # ---- Model and data
    torch.manual_seed(cfg.train.seed)     # the new head's draw is part of the run, like the data order
    model, tokenizer = scalar_model_from_lm(cfg.model)
    check_readout(model, cfg.readout)
    lora.apply(model, cfg.lora, cfg.train.seed, train_beside=(score_head(model),))
    model.config.reward_readout, model.config.likelihood_weight = cfg.readout, cfg.likelihood_weight
    if cfg.readout == "verdict":
        model.config.verdict_prompt_ids, model.config.verdict_token_ids = verdict_ids(cfg, tokenizer)
    max_len = cfg.max_len or context_length(model)
    check_max_len(max_len, context_length(model))
    if cfg.readout == "verdict":     # the verdict prompt follows every answer inside the context
        max_len -= len(model.config.verdict_prompt_ids)
    template = chat_template_of(tokenizer)
    train = [encode_comparison(c, tokenizer, max_len) for c in load_comparisons(cfg.data, template)]
    valid = [encode_comparison(c, tokenizer, max_len) for c in load_comparisons(cfg.valid_data, template)] \
        if cfg.valid_data else []
    # ---- Training
    out = Path(cfg.out)
    fit(model, tokenizer, train, cfg.train, out, job=job, desc="rm",
        step_fn=lambda m, groups, ac: rm_step(m, groups, tokenizer.pad_token_id, ac, cfg.center),
        length=lambda group: max(len(ex.input_ids) for ex in group), units=len)   # the loss is a mean over prompts
    # ---- Normalise: training answers score 0 on average
    train_scores = score_groups(model, train[:512], tokenizer.pad_token_id)
    model.config.reward_offset = statistics.fmean(x for s in train_scores for x in s)
    save_model(out / "model", model, tokenizer)
    result = {"train_accuracy": pair_accuracy(score_groups(model, train[:512], tokenizer.pad_token_id)),
              "reward_offset": model.config.reward_offset, "comparisons": len(train), "out": str(out / "model")}
    if valid:
        result["valid_accuracy"] = pair_accuracy(score_groups(model, valid, tokenizer.pad_token_id))
    return job.finish(result)
