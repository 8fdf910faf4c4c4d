"""The supervised training loop shared by `pretrain`, `sft` and `rm`: batches, AdamW with warmup and
cosine decay, gradient clipping, a progress bar, atomic checkpoints and exact resume.

A stage directory holds `model/` (the final Hugging Face model), `checkpoint/` (model +
`trainer_state.pt`: optimizer, scheduler, step, RNG; `job.json`: the job's fingerprint and step)
and `log.jsonl` (one line per step). A killed run started again with the same job continues from
its last checkpoint, with the same data order, as if it had not stopped (`rlhfkit.train.job`
decides whether a checkpoint is this job's). A finished run removes its checkpoint. Every step
checks the loss and the gradient norm before the optimizer step, and no weights are written
unless all are finite.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import random
import shutil
import time
from collections.abc import Callable
from typing import Any
from pathlib import Path

import torch
from tqdm import tqdm

from rlhfkit import runtime
from rlhfkit.algorithms.sft import sft_loss
from rlhfkit.config import TrainConfig
from rlhfkit.data.collate import IGNORE, Example, pad_batch, scored_positions
from rlhfkit.errors import ModelError, RunError
from rlhfkit.models.attention import use_for_training
from rlhfkit.models import lora
from rlhfkit.models.lm import TRAINABLE_FILE, logits_from, recover_atomic, save_atomic, save_model, save_weights
from rlhfkit.train.job import Job, last_good_checkpoint
from rlhfkit.train.tracking import Tracker, open_tracker

StepFn = Callable[[Any, list, Any], tuple[torch.Tensor, dict]]


def lr_lambda(step: int, warmup: int, total: int) -> float:
    """Linear warmup to the peak, then cosine decay to 10% of it."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))


def epoch_order(n: int, epoch: int, seed: int) -> list[int]:
    """The data order of an epoch: a function of (seed, epoch) alone, so resume can rebuild it."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g, device="cpu").tolist()     # the same order on any device


LENGTH_WINDOW = 64   # batches whose items are sorted by length together (TrainConfig.group_by_length)


def epoch_batches(n: int, epoch: int, seed: int, batch_size: int, lengths: list[int] | None = None) -> list[list[int]]:
    """The batches (item indices) of an epoch, a function of (seed, epoch) alone. With `lengths`, the
    shuffled items are sorted by length within windows of LENGTH_WINDOW batches and the batches then
    shuffled, so a batch pads to little more than its own items while the data order stays random."""
    order = epoch_order(n, epoch, seed)
    if lengths is None:
        return [order[i:i + batch_size] for i in range(0, n, batch_size)]
    batches = []
    window = batch_size * LENGTH_WINDOW
    for start in range(0, n, window):
        chunk = sorted(order[start:start + window], key=lambda i: lengths[i])
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    shuffle = torch.randperm(len(batches), generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch + 1),
                             device="cpu")
    return [batches[i] for i in shuffle.tolist()]


def batch_at(items: list, step: int, batch_size: int, seed: int, lengths: list[int] | None = None) -> list:
    """The items of optimizer step `step` (epochs follow one another)."""
    steps_per_epoch = math.ceil(len(items) / batch_size)
    epoch, k = divmod(step, steps_per_epoch)
    return [items[i] for i in epoch_batches(len(items), epoch, seed, batch_size, lengths)[k]]


def example_length(example: Example) -> int:
    return len(example.input_ids)


def answer_token_count(examples: list[Example]) -> int:
    """The tokens an LM loss averages over: the labelled ones (`sft_loss`'s denominator)."""
    return sum(sum(label != IGNORE for label in ex.labels[1:]) for ex in examples)


class StepModule(torch.nn.Module):
    """A model and its step function as one module: a data-parallel wrapper then sees the whole step
    as its forward, whichever parts of the model the step calls."""

    def __init__(self, model: torch.nn.Module, step_fn: StepFn) -> None:
        super().__init__()
        self.model, self.step_fn = model, step_fn

    def forward(self, items: list, autocast) -> tuple[torch.Tensor, dict]:
        if not items:       # a process with no share of this micro-batch still joins the gradient sync
            return sum(p.sum() for p in self.model.parameters() if p.requires_grad) * 0.0, {}
        loss, stats = self.step_fn(self.model, items, autocast)
        return loss, stats | {"loss": loss.item()}     # the whole objective (a ranking loss's centring term too)


COUNTED = ("answer_tokens", "seq_tokens")     # statistics that add up over micro-batches; the rest are means


def combine_stats(parts: list[tuple[dict, float]]) -> dict:
    """One step's statistics from its micro-batches' (stats, units): counts summed, the rest
    weighted by units (so the loss is the global batch's)."""
    if len(parts) == 1:
        return dict(parts[0][0])
    total = sum(n for _, n in parts) or 1.0
    keys = dict.fromkeys(k for stats, _ in parts for k in stats)
    return {k: sum(stats.get(k, 0) for stats, _ in parts) if k in COUNTED else
            sum(stats[k] * n for stats, n in parts if k in stats) / total for k in keys}


def accumulate(runner: torch.nn.Module, batch: list, micro_batches: int, units: Callable[[list], float],
               autocast) -> dict:
    """Forward and backward of one optimizer step's global batch: this process's share (`runtime.shard`)
    in `micro_batches` pieces, each loss weighted by its share of the step's units (answer tokens,
    prompts) over every process, so the gradient is the global batch's mean however it is split.
    Returns the step's statistics."""
    mine = runtime.shard(batch)
    pieces = [mine[i * len(mine) // micro_batches:(i + 1) * len(mine) // micro_batches] for i in range(micro_batches)]
    counts = [units(piece) for piece in pieces]
    total = runtime.sum_over([sum(counts)])[0]
    world = runtime.current().world_size
    parts = []
    for i, (piece, n) in enumerate(zip(pieces, counts)):
        # FSDP2 gathers weights in a forward pass every process must make: an empty share runs a stand-in, weight 0
        stand_in = not piece and runtime.sharded()
        with runtime.no_sync(runner) if i < micro_batches - 1 else contextlib.nullcontext():
            loss, stats = runner(batch[:1] if stand_in else piece, autocast)
            (loss * (n * world / total)).backward()     # a data-parallel wrapper averages over the processes
        parts.append(({} if stand_in else stats, n))
    return combine_stats([part for rank_parts in runtime.gather(parts) for part in rank_parts])


def lm_step(model, examples: list[Example], pad_id: int, autocast) -> tuple[torch.Tensor, dict]:
    """The language-modelling step of pretrain and SFT: loss on the labelled tokens."""
    batch = pad_batch(examples, pad_id)
    labels = batch["labels"]
    keep = scored_positions(labels)
    with autocast:
        logits = logits_from(model, batch["input_ids"], batch["attention_mask"], keep)
    loss, stats = sft_loss(logits, labels[:, -keep:], batch["weights"])
    stats["seq_tokens"] = int(batch["attention_mask"].sum())
    return loss, stats


@torch.no_grad()
def mean_lm_loss(model, examples: list[Example], pad_id: int, batch_size: int = 32) -> float:
    """Mean per-token loss on the labelled tokens of held-out examples."""
    model.eval()
    total, n = 0.0, 0
    for i in range(0, len(examples), batch_size):
        loss, stats = lm_step(model, examples[i:i + batch_size], pad_id, runtime.autocast("float32"))
        total += loss.item() * stats["answer_tokens"]
        n += stats["answer_tokens"]
    return total / n


def autocast_for(cfg: TrainConfig) -> torch.autocast:
    """The autocast context a TrainConfig asks for (off unless dtype is bfloat16)."""
    return runtime.autocast(cfg.dtype)


def fit(model, tokenizer, items: list, cfg: TrainConfig, out: Path, *, job: Job, desc: str = "train",
        evaluate: Callable[[], dict] | None = None, step_fn: StepFn | None = None,
        length: Callable[[Any], int] = example_length, units: Callable[[list], float] = answer_token_count) -> dict:
    """Train `model` on `items` (Examples for the LM loss, or whatever `step_fn` takes); write
    `out/model`. `step_fn(model, batch_items, autocast) -> (loss, stats)`, the loss a mean over
    `units(batch_items)` (answer tokens by default; prompts for ranking losses); stats may carry
    "seq_tokens" for the throughput figure. `length(item)` is the tokens an item pads its batch to
    (for cfg.group_by_length). `job` (checked against `out` by `Job.begin`) stamps
    the checkpoints. A non-finite loss or gradient, or a loss above `cfg.max_loss`, stops the run
    before the optimizer step, keeping the last good checkpoint. Under torchrun each process trains
    on its share of every global batch (`accumulate`); the result is the one-process run's.
    Returns the last logged stats."""
    if step_fn is None:
        step_fn = lambda m, batch, ac: lm_step(m, batch, tokenizer.pad_token_id, ac)  # noqa: E731
    if runtime.is_main():
        out.mkdir(parents=True, exist_ok=True)
    job.claim()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    total = max(1, math.ceil(cfg.epochs * math.ceil(len(items) / cfg.batch_size)))
    torch.manual_seed(cfg.seed)
    resuming = _resume_weights(model, out / "checkpoint")
    use_for_training(model, cfg.dtype)
    runner = runtime.wrap(StepModule(model, step_fn))      # before the optimizer: FSDP2 replaces the parameters
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                                  betas=(0.9, 0.95), eps=1e-8, **runtime.optimizer_options())
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_lambda(s, cfg.warmup_steps, total))
    step = _resume_trainer(optimizer, scheduler, out / "checkpoint") if resuming else 0
    autocast = autocast_for(cfg)
    lengths = [length(x) for x in items] if cfg.group_by_length else None
    runner.train()
    stats: dict = {}
    with (open_log(out / "log.jsonl", step, job, cfg.report_to) as log,      # a tracker not installed stops here
          tqdm(total=total, initial=step, desc=desc, unit="step", dynamic_ncols=True,
               disable=not runtime.is_main()) as bar):
        t0, tokens = time.time(), 0
        while step < total:
            optimizer.zero_grad(set_to_none=True)
            stats = accumulate(runner, batch_at(items, step, cfg.batch_size, cfg.seed, lengths), cfg.grad_accum,
                               units, autocast)
            # the norm is always measured (an infinite max clips nothing) so a non-finite gradient is seen
            stats["grad_norm"] = runtime.clip_grad_norm(list(model.parameters()), cfg.grad_clip or math.inf)
            check_step(desc, step + 1, {"loss": stats["loss"], "grad_norm": stats["grad_norm"]},
                       {"loss": cfg.max_loss}, f"lr {scheduler.get_last_lr()[0]:.1e}", out)
            optimizer.step()
            scheduler.step()
            step += 1
            tokens += stats.pop("seq_tokens", 0)
            stats.update(step=step, lr=scheduler.get_last_lr()[0], tok_per_s=tokens / (time.time() - t0))
            bar.update(1)
            bar.set_postfix(loss=f"{stats['loss']:.3f}", lr=f"{stats['lr']:.1e}", tok_s=f"{stats['tok_per_s']:.0f}")
            if evaluate is not None and (step % max(1, total // 5) == 0 or step == total):
                stats.update(evaluate())
                runner.train()
            log.record(stats)
            log.flush()
            if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < total:
                _save_checkpoint(model, tokenizer, optimizer, scheduler, step, out / "checkpoint", job)
    save_final(desc, out, tokenizer, {"model": model.eval()})
    return stats


def save_final(stage: str, out: Path, tokenizer, models: dict[str, torch.nn.Module]) -> None:
    """OUT/<name> for each of `models` (OUT/model, and RL's OUT/value), only if every weight of every
    one is finite; the checkpoint is then not needed."""
    check_weights(stage, models, out)
    for name, model in models.items():
        save_model(out / name, model, tokenizer)
    if runtime.is_main():
        shutil.rmtree(out / "checkpoint", ignore_errors=True)  # the run is complete: nothing left to resume
    runtime.barrier()


def budget(logs: list[Path] = (), samples: int = 0, reward_calls: int = 0) -> dict[str, int]:
    """What a method spent: fresh samples it drew, reward-model (or judge) calls, optimizer steps
    and answer tokens it trained on. Steps and tokens are summed from its training logs (one line
    per optimizer step, or an RL iteration's line saying how many steps, episodes and calls it
    made); a resumed run's log holds each step once, so the sums hold across a kill."""
    total = {"samples": samples, "reward_calls": reward_calls, "optimizer_steps": 0, "answer_tokens": 0}
    for path in logs:
        for line in Path(path).read_text().splitlines():
            record = json.loads(line)
            total["optimizer_steps"] += int(record.get("optimizer_steps", 1))
            total["answer_tokens"] += int(record.get("answer_tokens", 0))
            total["samples"] += int(record.get("episodes", 0))
            total["reward_calls"] += int(record.get("reward_calls", 0))
    return total


class RunLog:
    """A run's log.jsonl, one line per step, each also sent to the run's tracker (`report_to`)."""

    def __init__(self, file, tracker: Tracker) -> None:
        self.file, self.tracker = file, tracker

    def record(self, stats: dict) -> None:
        self.file.write(json.dumps(stats) + "\n")
        self.tracker.scalars(stats, int(stats.get("step", 0)))

    def completions(self, rows: list[list], step: int) -> None:
        self.tracker.completions(rows, step)

    def flush(self) -> None:
        self.file.flush()

    def close(self) -> None:
        self.file.close()
        self.tracker.close()

    def __enter__(self) -> "RunLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_log(path: Path, step: int, job=None, report_to: str = "none") -> RunLog:
    """`log.jsonl` for appending, holding only the lines of steps up to `step` (the checkpoint's):
    lines a killed run wrote after its last checkpoint are dropped, as the resumed run redoes them.
    With `report_to`, each line also goes to that tracker, with the job's config. Off the main
    process, a sink."""
    if not runtime.is_main():
        return RunLog(open(os.devnull, "a"), Tracker())
    kept = []
    if step and path.is_file():
        for line in path.read_text().splitlines(keepends=True):
            try:
                record = json.loads(line)
            except ValueError:      # a line torn by the kill: nothing after it was complete either
                break
            if record.get("step", 0) <= step:
                kept.append(line if line.endswith("\n") else line + "\n")
    path.write_text("".join(kept))
    file = path.open("a")
    try:
        tracker = open_tracker(report_to, path.parent, job.stage if job else path.parent.name,
                               job.config if job else {}, fresh=step == 0)
    except BaseException:
        file.close()
        raise
    return RunLog(file, tracker)


def check_step(stage: str, step: int, values: dict[str, float], limits: dict[str, float], context: str,
               out: Path) -> None:
    """Stop the run (RunError) on a non-finite value or one above its limit (a limit of 0 is none)."""
    for name, value in values.items():
        limit = limits.get(name, 0.0)
        if not math.isfinite(value):
            problem = f"{name} is {value}"
        elif limit and value > limit:
            problem = f"{name} is {value:.4g}, above the limit {limit:g}"
        else:
            continue
        raise RunError(f"{stage}: step {step}: {problem} ({context}); {last_good_checkpoint(out)}")


def check_weights(stage: str, models: dict[str, torch.nn.Module], out: Path) -> None:
    """Refuse to write weights that are not all finite (RunError), whatever wrote them."""
    for name, model in models.items():
        for pname, p in model.named_parameters():
            if not torch.isfinite(runtime.full(p)).all():
                raise RunError(f"{stage}: {name} weight {pname} is not finite; nothing written; "
                               f"{last_good_checkpoint(out)}")


def rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "python": random.getstate(), **runtime.device_rng_state()}


def trainer_state(optimizer, scheduler, step: int, **extra) -> dict:
    """Everything besides the weights that an exact resume needs: every process's random state
    (`rank_rng`, gathered) and the optimizer's (whole, where it is sharded), so call it on every
    process."""
    ranks = runtime.gather(rng_state())
    return {"optimizer": runtime.optimizer_state(optimizer), "scheduler": scheduler.state_dict(), "step": step,
            "torch_rng": ranks[0]["torch"], "python_rng": ranks[0]["python"], "rank_rng": ranks, **extra}


def restore_trainer_state(path: Path, optimizer, scheduler) -> dict | None:
    """Restore optimizer, scheduler and RNG from `path/trainer_state.pt`; None if there is none."""
    recover_atomic(path)
    if not (path / "trainer_state.pt").is_file():
        return None
    state = torch.load(path / "trainer_state.pt", weights_only=False, map_location="cpu")   # any device's
    runtime.load_optimizer_state(optimizer, state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    rt = runtime.current()
    ranks = state.get("rank_rng") or [{"torch": state["torch_rng"], "python": state["python_rng"]}]
    mine = ranks[rt.rank] if len(ranks) == rt.world_size else ranks[0]   # another process count: rank 0's
    torch.set_rng_state(mine["torch"])
    runtime.set_device_rng_state(mine)
    random.setstate(mine["python"])
    if rt.is_main:
        tqdm.write(f"resuming from {path} at step {state['step']}")
    return state


def load_weights(model, directory: Path) -> None:
    """Load the weights a checkpoint directory holds (`save_pretrained`) into `model`, exactly: any
    missing, unexpected or mis-shaped key is an error. Read through `from_pretrained`, which knows
    each architecture's saved names (GPT-NeoX saves its head as `embed_out`) and tied weights. A
    model with LoRA adapters reads back only what trains (`save_weights`)."""
    if lora.has_adapters(model):
        from safetensors.torch import load_file
        if not (directory / TRAINABLE_FILE).is_file():
            raise RunError(f"{directory}: no adapter weights ({TRAINABLE_FILE}); it was not written with --lora.r")
        try:
            lora.load_trainable_state(model, load_file(str(directory / TRAINABLE_FILE)), str(directory))
        except ModelError as e:
            raise RunError(str(e)) from None
        return
    dtype = next(model.parameters()).dtype
    try:
        # mismatched sizes are reported in `info` (and refused below), not raised without their names
        saved, info = type(model).from_pretrained(directory, dtype=dtype, output_loading_info=True,
                                                  ignore_mismatched_sizes=True)
    except (OSError, RuntimeError, ValueError) as e:       # unreadable
        raise RunError(f"{directory}: its weights do not fit the model ({str(e).splitlines()[0]})") from None
    bad = [*info["missing_keys"], *info["unexpected_keys"],
           *(k[0] if isinstance(k, tuple) else k for k in info["mismatched_keys"])]
    if bad:
        raise RunError(f"{directory}: its weights do not fit the model ({', '.join(sorted(map(str, bad))[:4])})")
    model.load_state_dict(saved.state_dict())


def _save_checkpoint(model, tokenizer, optimizer, scheduler, step: int, path: Path, job: Job) -> None:
    check_weights(job.stage, {"model": model}, path.parent)
    state = trainer_state(optimizer, scheduler, step)
    weights = runtime.full_state_dict(model)
    def write(d: Path) -> None:
        save_weights(d, model, weights)
        tokenizer.save_pretrained(d)
        torch.save(state, d / "trainer_state.pt")
        job.write_checkpoint_marker(d, step)
    save_atomic(path, write)


def _resume_weights(model, path: Path) -> bool:
    """Load the checkpoint's weights into `model` (before it is wrapped); whether there is one."""
    recover_atomic(path)
    if not (path / "trainer_state.pt").is_file():
        return False
    load_weights(model, path)
    return True


def _resume_trainer(optimizer, scheduler, path: Path) -> int:
    return int(restore_trainer_state(path, optimizer, scheduler)["step"])
