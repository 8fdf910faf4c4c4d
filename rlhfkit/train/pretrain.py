"""`rlhfkit pretrain`: train the BPE tokenizer and the small base Llama on the world's text.

The corpus is "web text" for the synthetic world: pretraining-split posts, each followed by a
TL;DR of any quality (a simulated writer's, sometimes the oracle's), like the mixed-quality
summaries of real web text. The shipped `models/tldr-base` was made by

    rlhfkit pretrain --out models/tldr-base

and the run's figures (parameters, tokens seen, wall time, held-out perplexity) are written to
`OUT/pretrain_report.json`. The package ships it as `rlhfkit/assets/tldr-base` (with its report);
the name `models/tldr-base` finds that copy when the working directory has none.

`--corpus tldr+conversation` adds the conversation world's transcripts (`task.n_train` training
conversations, each by a scripted assistant drawn uniformly at an E drawn from 1..4), so the
tokenizer learns the template's words ("USER", "ASSISTANT", " Advice") and the model has read
conversations before SFT; one base model serves every E:

    rlhfkit pretrain --corpus tldr+conversation --arch.max_len 512 --out models/conversation-base

A transcript is laid out as an RL episode is (EOS after each assistant turn, each user turn
tokenised on its own; `data.collate.conversation_tokens`), every token a target.
"""
from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path

import torch

from rlhfkit import runtime
from rlhfkit.config import ConfigError, PretrainConfig, to_dict
from rlhfkit.data.collate import Example, conversation_tokens, encode_text
from rlhfkit.data.records import Conversation, Where
from rlhfkit.models.lm import build_llama, count_parameters
from rlhfkit.models.tokenizer import train_tokenizer
from rlhfkit.tasks.conversation.assistants import corpus_transcripts
from rlhfkit.tasks.conversation.template import as_conversation
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


def conversations(seed: int, split: str, n: int) -> list[Conversation]:
    """The conversation world's transcripts of a split, cut as episodes are (train for the corpus,
    valid for the held-out perplexity; the test split is never read)."""
    return [as_conversation(m, Where(f"pretrain corpus conversation {split}", i))
            for i, m in enumerate(corpus_transcripts(seed, split, n), start=1)]


def conversation_text(conv: Conversation) -> str:
    """A transcript as the tokenizer's training text (the chat template's rendering)."""
    return conv.opening + "".join(span.text for span in conv.spans)


def conversation_examples(convs: list[Conversation], tokenizer, max_len: int) -> list[Example]:
    """Transcripts for language modelling: an episode's ids, every token a target. A transcript cut
    at max_len would lose its final answer, the part that matters most, so a short context is an
    error rather than a silent truncation."""
    rows = [conversation_tokens(c, tokenizer)[0] for c in convs]
    longest = max(map(len, rows), default=0)
    if longest > max_len:
        over = sum(len(r) > max_len for r in rows)
        raise ConfigError(f"pretrain: {over} of {len(rows)} conversation transcripts are longer than arch.max_len "
                          f"({max_len} tokens; the longest is {longest}): raise --arch.max_len to at least {longest}")
    return [Example(r, list(r)) for r in rows]


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
    with_conversations = "conversation" in cfg.corpus.split("+")
    train_convs = conversations(cfg.task.seed, "train", cfg.task.n_train) if with_conversations else []
    valid_convs = conversations(cfg.task.seed, "valid", cfg.task.n_valid) if with_conversations else []
    tokenizer = train_tokenizer(train_docs + [conversation_text(c) for c in train_convs], cfg.arch.vocab_size)
    # ---- Model
    torch.manual_seed(cfg.train.seed)
    model = build_llama(cfg.arch, tokenizer)
    examples = [encode_text(d, tokenizer, cfg.arch.max_len) for d in train_docs]
    examples += conversation_examples(train_convs, tokenizer, cfg.arch.max_len)
    valid_conv_examples = conversation_examples(valid_convs, tokenizer, cfg.arch.max_len)

    def evaluate() -> dict[str, float]:
        stats = {"valid_ppl": perplexity(model, tokenizer, valid_docs, cfg.arch.max_len)}
        if valid_conv_examples:
            stats["valid_ppl_conversation"] = math.exp(mean_lm_loss(model, valid_conv_examples, tokenizer.pad_token_id))
        return stats

    # ---- Training
    fit(model, tokenizer, examples, cfg.train, out, job=job, desc="pretrain", evaluate=evaluate)
    # ---- Report
    tokens_per_epoch = sum(len(e.input_ids) for e in examples)
    wall_time = time.time() - t0      # the final evaluation is not part of the build
    final = evaluate()
    report = {
        "parameters": count_parameters(model),
        "tokens_seen": int(tokens_per_epoch * cfg.train.epochs),
        "wall_time_s": round(wall_time, 1),
        "valid_perplexity": round(final["valid_ppl"], 4),
        "vocab_size": len(tokenizer),
        "config": to_dict(cfg),
    }
    if with_conversations:
        report |= {"conversations": len(train_convs),
                   "valid_perplexity_conversation": round(final["valid_ppl_conversation"], 4)}
    if runtime.is_main():
        (out / "pretrain_report.json").write_text(json.dumps(report, indent=2) + "\n")
    return job.finish(report)
