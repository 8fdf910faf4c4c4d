"""The prompts a rollout starts from: a registered task's, or a file's, checked against the context.

A file's prompts are checked up front against the context left for the response, so a bad
record stops the run before any work, named by file:line.
"""
from __future__ import annotations

from rlhfkit.config import TaskConfig
from rlhfkit.data.records import DataError, read_records, text_field
from rlhfkit.tasks.base import TASKS, load_task


def load_prompts(spec: str, task: TaskConfig, split: str, tokenizer, max_prompt_len: int) -> list[str]:
    """spec a registered task's name ('tldr'): the task's prompts of `split` (train, valid or test),
    built from the run's TaskConfig; else a JSONL / Parquet file or `datasets` directory with a
    'prompt' field."""
    if spec in TASKS:
        return load_task(spec, task).prompts(split)
    prompts = []
    for where, record in read_records(spec):
        prompt = text_field(record, "prompt", where)
        n = len(tokenizer(prompt, add_special_tokens=False)["input_ids"]) + 1   # + BOS
        if n > max_prompt_len:
            raise DataError(f"{where}: field 'prompt' is {n} tokens; with sample.max_new_tokens the model's "
                            f"context leaves {max_prompt_len}")
        prompts.append(prompt)
    if not prompts:
        raise DataError(f"{spec}: no records")
    return prompts
