"""`rlhfkit pretrain`: train the BPE tokenizer and the small base Llama on the world's text.

The corpus is "web text" for the synthetic world: pretraining-split posts, each followed by a
TL;DR of any quality (a simulated writer's, sometimes the oracle's), like the mixed-quality
summaries of real web text. The shipped `models/tldr-base` was made by

    rlhfkit pretrain --out models/tldr-base

and the run's figures (parameters, tokens seen, wall time, held-out perplexity) are written to
`OUT/pretrain_report.json`. The package ships it as `rlhfkit/assets/tldr-base` (with its report);
the name `models/tldr-base` finds that copy when the working directory has none.
"""
from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path

import torch

from rlhfkit.config import PretrainConfig, to_dict
from rlhfkit.data.collate import encode_text
from rlhfkit.models.lm import build_llama, count_parameters
from rlhfkit.models.tokenizer import train_tokenizer
from rlhfkit.tasks.tldr.world import make_split
from rlhfkit.tasks.tldr.writers import oracle_summary, reference_summary
from rlhfkit.train.job import Job
from rlhfkit.train.loop import fit, mean_lm_loss

ORACLE_SHARE = 0.1  # share of corpus TL;DRs that are the oracle's: good summaries exist on the web too


def corpus(seed: int, split: str, n: int) -> list[str]:
    rng = random.Random(f"corpus-{seed}-{split}")
    docs = []
    for post in make_split(seed, split, n):
        summary = oracle_summary(post.facts) if rng.random() < ORACLE_SHARE else reference_summary(post, seed, 7)[1]
        docs.append(post.prompt + summary)
    return docs


def perplexity(model, tokenizer, docs: list[str], max_len: int) -> float:
    return math.exp(mean_lm_loss(model, [encode_text(d, tokenizer, max_len) for d in docs], tokenizer.pad_token_id))


def run(cfg: PretrainConfig) -> dict:
    cfg.validate()
    job = Job.begin("pretrain", cfg)
    if job.result is not None:
        return job.result
    out = Path(cfg.out)
    t0 = time.time()
    # ---- Corpus and tokenizer
    train_docs = corpus(cfg.task.seed, "pretrain", cfg.task.n_pretrain)
    valid_docs = corpus(cfg.task.seed, "valid", cfg.task.n_valid)
    tokenizer = train_tokenizer(train_docs, cfg.arch.vocab_size)
    # ---- Model
    torch.manual_seed(cfg.train.seed)
    model = build_llama(cfg.arch, tokenizer)
    examples = [encode_text(d, tokenizer, cfg.arch.max_len) for d in train_docs]
    # ---- Training
    fit(model, tokenizer, examples, cfg.train, out, job=job, desc="pretrain",
        evaluate=lambda: {"valid_ppl": perplexity(model, tokenizer, valid_docs, cfg.arch.max_len)})
    # ---- Report
    tokens_per_epoch = sum(len(e.input_ids) for e in examples)
    report = {
        "parameters": count_parameters(model),
        "tokens_seen": int(tokens_per_epoch * cfg.train.epochs),
        "wall_time_s": round(time.time() - t0, 1),
        "valid_perplexity": round(perplexity(model, tokenizer, valid_docs, cfg.arch.max_len), 4),
        "vocab_size": len(tokenizer),
        "config": to_dict(cfg),
    }
    (out / "pretrain_report.json").write_text(json.dumps(report, indent=2) + "\n")
    return job.finish(report)
