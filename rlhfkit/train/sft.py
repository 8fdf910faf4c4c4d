"""`rlhfkit sft`: supervised fine-tuning on demonstrations.

Cross-entropy on response tokens only (prompt masked), EOS appended (DESIGN section 4). Data is
a registered task's demonstrations (`tldr`: the built-in world's reference TL;DRs; `conversation`:
whole transcripts, one example each, tokenised as RL episodes are, with the loss on every assistant
turn and its EOS and none on the user's), or any JSONL / Parquet file or `datasets` directory in
prompt/completion or messages format. Writes `OUT/model` (loadable with
`AutoModelForCausalLM.from_pretrained`), resumable `OUT/checkpoint`, and `OUT/log.jsonl`.

    rlhfkit sft --model models/tldr-base --out runs/sft
    rlhfkit sft --model path/to/hf-model --data demos.jsonl --train.lr 3e-5 --out runs/my-sft
    rlhfkit sft --model models/conversation-base --data conversation --task.events 2 --out runs/conv-sft
"""
from __future__ import annotations

import math
from pathlib import Path

from rlhfkit.config import SFTConfig, check_max_len
from rlhfkit.data.collate import encode_record
from rlhfkit.data.records import Conversation, Demonstration, Where, chat_template_of, load_demonstrations
from rlhfkit.models import lora
from rlhfkit.models.lm import context_length, load_causal_lm
from rlhfkit.tasks.base import TASKS, load_task
from rlhfkit.train.job import Job
from rlhfkit.train.loop import budget, fit, mean_lm_loss


def load_data(path: str, tokenizer, cfg: SFTConfig, split: str) -> list[Demonstration] | list[Conversation]:
    """A registered task's demonstrations of `split` (its name, e.g. 'tldr'; a multi-turn task's
    are whole conversations), else a file's."""
    if path in TASKS:
        return load_task(path, cfg.task).demonstrations(split)
    return load_demonstrations(path, chat_template_of(tokenizer))


def run(cfg: SFTConfig) -> dict:
    cfg.validate()
    job = Job.begin("sft", cfg, models={"model": cfg.model}, data={"data": cfg.data, "valid_data": cfg.valid_data})
    if job.result is not None:
        return job.result
    # ---- Model and data
    model, tokenizer = load_causal_lm(cfg.model)
    lora.apply(model, cfg.lora, cfg.train.seed)
    max_len = cfg.max_len or context_length(model)
    check_max_len(max_len, context_length(model))
    train = [encode_record(d, tokenizer, max_len) for d in load_data(cfg.data, tokenizer, cfg, "train")]
    valid_path = cfg.valid_data or (cfg.data if cfg.data in TASKS else "")   # a task brings its own valid split
    valid = [encode_record(d, tokenizer, max_len) for d in load_data(valid_path, tokenizer, cfg, "valid")] \
        if valid_path else []
    # ---- Training
    evaluate = (lambda: {"valid_loss": mean_lm_loss(model, valid, tokenizer.pad_token_id)}) if valid else None
    stats = fit(model, tokenizer, train, cfg.train, Path(cfg.out), job=job, desc="sft", evaluate=evaluate)
    result = {"train_loss": stats.get("loss"), "examples": len(train), "budget": budget([Path(cfg.out) / "log.jsonl"]),
              "out": str(Path(cfg.out) / "model")}
    if valid:
        result["valid_loss"] = mean_lm_loss(model, valid, tokenizer.pad_token_id)
        result["valid_ppl"] = math.exp(result["valid_loss"])
    return job.finish(result)
