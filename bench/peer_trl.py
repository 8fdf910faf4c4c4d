"""Peer benchmark: seconds per RL iteration (generate + score + update) in rlhfkit and in TRL.

Both sides run in one process, one after the other, on the same tiny model (the shipped 2M-parameter
base LM, copied to a scratch directory), the same prompts, batch, response length, epochs and
minibatches, in fp32 on CPU with 2 torch threads. The first iteration of each side is warm-up and
left out of the mean.

    ppo   rlhfkit PPO  vs TRL 1.12 `trl.experimental.ppo.PPOTrainer` (reward, value and reference
          models; the reward/value model is an untrained scalar head on the base LM; timing only)
    rloo  rlhfkit RLOO vs TRL 1.16 `RLOOTrainer`  } same plain Python reward (count of the letter
    grpo  rlhfkit GRPO vs TRL 1.16 `GRPOTrainer`  } 'e'), k=4 answers per prompt, KL beta 0.05

What is timed:
- rlhfkit: "seconds" in OUT/rlhfkit/log.jsonl, i.e. one pass of its loop (batch -> generate ->
  score -> advantages -> update -> stats), checkpointing off.
- TRL: wall time between iteration boundaries seen by a TrainerCallback. PPOTrainer has no
  on_step_begin; one of its steps (on_step_end to on_step_end) is a whole iteration: rollout,
  reward/value/ref passes, GAE, `num_ppo_epochs` x `num_mini_batches` updates, metrics, gc.
  For RLOO/GRPO an iteration is `steps_per_generation * num_iterations` optimizer steps; the
  generation happens inside the first of them (`_prepare_inputs`), so the time from one iteration's
  last on_step_end to the next's also holds Trainer logging and data loading, as rlhfkit's does.
  The sum of on_step_begin -> on_step_end spans alone is reported too ("in-step").
- Fixed length: rlhfkit's samplers are given an EOS id no model emits (`never_stop`); the scratch
  policy's generation_config.json sets min_new_tokens = max_new_tokens for TRL, and TRL 1.16 gets
  the same through `generation_kwargs`; TRL's PPO runs with stop_token=None, so it always generates
  `response_length` tokens. The mean generated length
  of both sides is printed so a mismatch is visible.
- Not matched: TRL's PPO loop never clips gradients, so rlhfkit's PPO runs with rl.grad_clip=0
  (RLOO/GRPO: both clip at 1.0); TRL's PPO with stop_token=None trains on EOS like any token
  (same token count). TRL's GRPO skips the old-logprob pass when --batch == --minibatch and
  --epochs 1; rlhfkit always does it. The sides run one after the other: use an idle machine.

Environments (one per TRL version; rlhfkit editable in both):

    python3.11 -m venv /tmp/trlvenvs/trl112
    /tmp/trlvenvs/trl112/bin/pip install "trl==1.12.0" torch==2.13.0 -e .
    python3.11 -m venv /tmp/trlvenvs/trl116
    /tmp/trlvenvs/trl116/bin/pip install "trl==1.16.0" torch==2.13.0 -e .

Run (from the repository root, on an otherwise idle machine):

    /tmp/trlvenvs/trl112/bin/python bench/peer_trl.py --algo ppo  --iterations 5 --out /tmp/peer_ppo
    /tmp/trlvenvs/trl116/bin/python bench/peer_trl.py --algo rloo --iterations 5 --out /tmp/peer_rloo
    /tmp/trlvenvs/trl116/bin/python bench/peer_trl.py --algo grpo --iterations 5 --out /tmp/peer_grpo

Reading the ratio: `ratio (TRL s/iter / rlhfkit s/iter)` above 1 means rlhfkit's iteration is that
many times faster than TRL's on the same work; below 1, slower. Figures go to OUT/result.json.
"""
from __future__ import annotations

import os

# Offline and 2 threads must be set before torch / transformers are imported.
for _k, _v in {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
               "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2", "TOKENIZERS_PARALLELISM": "false",
               "WANDB_DISABLED": "true"}.items():
    os.environ[_k] = _v

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402

THREADS = 2
TEMPERATURE = 0.7   # rlhfkit's default sampling temperature, given to TRL too
LR = 3e-5
BETA = 0.05
BASE = Path(__file__).resolve().parents[1] / "rlhfkit" / "assets" / "tldr-base" / "model"


def letter_reward(prompts: list[str], completions: list[str], **kwargs: Any) -> list[float]:
    """A plain Python reward both libraries accept: how many times 'e' appears in the answer."""
    return [float(c.count("e")) for c in completions]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--algo", choices=("ppo", "rloo", "grpo"), required=True)
    p.add_argument("--iterations", type=int, default=5, help="per side; the first is warm-up")
    p.add_argument("--batch", type=int, default=64, help="rollouts (completions) per iteration")
    p.add_argument("--k", type=int, default=4, help="completions per prompt (rloo/grpo)")
    p.add_argument("--max_new_tokens", type=int, default=48)
    p.add_argument("--epochs", type=int, default=None, help="default: 4 for ppo, 1 for rloo/grpo")
    p.add_argument("--minibatch", type=int, default=32, help="rollouts per gradient step")
    p.add_argument("--out", default="/tmp/peer_trl", help="scratch directory (wiped)")
    a = p.parse_args(argv)
    a.epochs = a.epochs or (4 if a.algo == "ppo" else 1)
    a.k = 1 if a.algo == "ppo" else a.k
    if a.iterations < 2 or a.batch % a.minibatch or a.batch % a.k:
        p.error("need --iterations >= 2, --batch divisible by --minibatch and by --k")
    return a


# ---- shared inputs ------------------------------------------------------------------------
def prepare_models(out: Path, max_new_tokens: int, with_rm: bool) -> tuple[Path, Path | None]:
    """Scratch copy of the base LM that never stops early, plus an untrained reward model."""
    policy = out / "models" / "policy"
    shutil.copytree(BASE, policy)
    gen = json.loads((policy / "generation_config.json").read_text())
    gen["min_new_tokens"] = max_new_tokens     # TRL's generate: EOS suppressed, every answer the same length
    (policy / "generation_config.json").write_text(json.dumps(gen, indent=2))
    if not with_rm:
        return policy, None
    from rlhfkit.models.heads import scalar_model_from_lm
    from rlhfkit.models.lm import save_model
    torch.manual_seed(0)
    rm = out / "models" / "rm"
    save_model(rm, *scalar_model_from_lm(policy))
    return policy, rm


def prompt_pool(n: int) -> list[str]:
    from rlhfkit.tasks.tldr.world import make_split
    return [p.prompt for p in make_split(0, "train", n)]


def mean_after_warmup(xs: list[float]) -> float:
    return statistics.fmean(xs[1:]) if len(xs) > 1 else float("nan")


# ---- rlhfkit ------------------------------------------------------------------------------
def never_stop() -> None:
    """Make rlhfkit's samplers ignore EOS (an id no model emits), so every answer has the same length:
    its engines sample from the model's logits alone and set generation_config.json aside."""
    from rlhfkit.engines import Sampling
    from rlhfkit.rollout import generate

    def sampling(**kwargs: Any) -> Sampling:
        return Sampling(**(kwargs | {"eos_id": 10 ** 6}))
    generate.Sampling = sampling


def run_rlhfkit(a: argparse.Namespace, policy: Path, rm: Path | None, n_prompts: int) -> dict:
    from rlhfkit.config import RLAlgoConfig, RLConfig, SampleConfig, TaskConfig
    from rlhfkit.train import rl
    never_stop()
    out = Path(a.out) / "rlhfkit"
    hp = RLAlgoConfig(steps=a.iterations, prompts_per_step=a.batch // a.k, k=max(a.k, 2), epochs=a.epochs,
                      minibatch_size=a.minibatch, lr=LR, beta=BETA, checkpoint_every=0,
                      grad_clip=0.0 if a.algo == "ppo" else 1.0)   # TRL's PPO loop never clips
    cfg = RLConfig(algo=a.algo, policy=str(policy), reward_model=str(rm or ""), out=str(out), resume=False,
                   task=TaskConfig(n_train=n_prompts), rl=hp,
                   sample=SampleConfig(temperature=TEMPERATURE, max_new_tokens=a.max_new_tokens,
                                       batch_size=a.batch))
    rl.run(cfg, reward_fn=None if a.algo == "ppo" else letter_reward)  # sampling with never_stop()
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    return {"label": "rlhfkit", "seconds": [r["seconds"] for r in log], "lengths": [r["length"] for r in log],
            "threads": torch.get_num_threads(),
            "timed": "log.jsonl 'seconds': batch, generate, score, advantages, update, stats"}


# ---- TRL ----------------------------------------------------------------------------------
def make_timer(steps_per_iter: int) -> Any:
    from transformers import TrainerCallback

    class IterTimer(TrainerCallback):
        """Wall time per RL iteration = `steps_per_iter` optimizer steps, boundary to boundary."""

        def __init__(self) -> None:
            self.wall: list[float] = []
            self.in_step: list[float] = []
            self._t = self._begin = None
            self._acc = 0.0

        def on_train_begin(self, args, state, control, **kw):
            self._t = time.perf_counter()

        def on_step_begin(self, args, state, control, **kw):
            self._begin = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            now = time.perf_counter()
            if self._begin is not None:      # PPOTrainer never calls on_step_begin
                self._acc += now - self._begin
                self._begin = None
            if state.global_step % steps_per_iter == 0:
                self.wall.append(now - self._t)
                self.in_step.append(self._acc)
                self._t, self._acc = now, 0.0

    return IterTimer()


def record_lengths(model: Any, eos_id: int, stop_at_eos: bool, sink: list[float]) -> None:
    """Wrap `model.generate` to log the mean number of new tokens per answer (up to its EOS)."""
    original = model.generate

    def generate(*args: Any, **kwargs: Any) -> Any:
        out = original(*args, **kwargs)
        seqs = out.sequences if hasattr(out, "sequences") else out
        new = seqs[:, kwargs["input_ids"].size(1):]
        lens = torch.full((new.size(0),), new.size(1))
        if stop_at_eos:
            is_eos = new == eos_id
            lens = torch.where(is_eos.any(1), is_eos.int().argmax(1) + 1, lens)
        sink.append(lens.float().mean().item())
        return out

    model.generate = generate


def common_trl_args(a: argparse.Namespace, out: Path) -> dict:
    """TrainingArguments shared by both TRL trainers: CPU, fp32, no checkpointing tricks."""
    return dict(output_dir=str(out), use_cpu=True, bf16=False, fp16=False, gradient_checkpointing=False,
                learning_rate=LR, adam_epsilon=1e-5, lr_scheduler_type="linear", warmup_steps=0,
                report_to="none", save_strategy="no", logging_steps=1, seed=0, dataloader_num_workers=0)


def run_trl_ppo(a: argparse.Namespace, policy: Path, rm: Path, n_prompts: int) -> dict:
    import trl
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer
    from trl.experimental.ppo import PPOConfig, PPOTrainer
    tok = AutoTokenizer.from_pretrained(policy, padding_side="left")
    # BOS first, as rlhfkit encodes prompts
    ids = [[tok.bos_token_id] + tok(p, add_special_tokens=False)["input_ids"] for p in prompt_pool(n_prompts)]
    data = Dataset.from_dict({"input_ids": ids})
    load_lm = lambda: AutoModelForCausalLM.from_pretrained(policy, dtype=torch.float32)  # noqa: E731
    load_rm = lambda: AutoModelForSequenceClassification.from_pretrained(rm, dtype=torch.float32)  # noqa: E731
    model, lengths = load_lm(), []
    record_lengths(model, tok.eos_token_id, stop_at_eos=False, sink=lengths)
    cfg = PPOConfig(**common_trl_args(a, Path(a.out) / "trl"), per_device_train_batch_size=a.batch,
                    gradient_accumulation_steps=1, num_mini_batches=a.batch // a.minibatch,
                    num_ppo_epochs=a.epochs, total_episodes=a.batch * a.iterations,
                    local_rollout_forward_batch_size=a.batch, response_length=a.max_new_tokens,
                    temperature=TEMPERATURE, kl_coef=BETA, stop_token=None, num_sample_generations=0)
    timer = make_timer(1)
    trainer = PPOTrainer(args=cfg, processing_class=tok, model=model, ref_model=load_lm(), reward_model=load_rm(),
                         value_model=load_rm(), train_dataset=data, eval_dataset=data.select(range(a.batch)),
                         callbacks=[timer])
    trainer.train()
    return {"label": f"TRL {trl.__version__} PPOTrainer", "seconds": timer.wall, "lengths": lengths,
            "in_step": None, "threads": torch.get_num_threads(),
            "timed": "on_step_end -> on_step_end; one PPOTrainer step = rollout + scores + GAE + all PPO epochs"}


def run_trl_group(a: argparse.Namespace, policy: Path, n_prompts: int) -> dict:
    import trl
    from datasets import Dataset
    from transformers import AutoTokenizer
    if a.algo == "rloo":
        from trl import RLOOConfig as Config, RLOOTrainer as Trainer
    else:
        from trl import GRPOConfig as Config, GRPOTrainer as Trainer
    tok = AutoTokenizer.from_pretrained(policy, padding_side="left")
    steps_per_gen = a.batch // a.minibatch
    cfg = Config(**common_trl_args(a, Path(a.out) / "trl"), per_device_train_batch_size=a.minibatch,
                 gradient_accumulation_steps=1, steps_per_generation=steps_per_gen, num_generations=a.k,
                 num_iterations=a.epochs, max_steps=a.iterations * steps_per_gen * a.epochs,
                 max_completion_length=a.max_new_tokens, temperature=TEMPERATURE, top_p=1.0, top_k=0,
                 beta=BETA, generation_kwargs={"min_new_tokens": a.max_new_tokens},
                 model_init_kwargs={"dtype": torch.float32})
    timer = make_timer(steps_per_gen * a.epochs)
    prompts = [tok.bos_token + p for p in prompt_pool(n_prompts)]   # BOS first, as rlhfkit encodes prompts
    trainer = Trainer(model=str(policy), reward_funcs=letter_reward, args=cfg, processing_class=tok,
                      train_dataset=Dataset.from_dict({"prompt": prompts}), callbacks=[timer])
    lengths: list[float] = []
    record_lengths(trainer.model, tok.eos_token_id, stop_at_eos=True, sink=lengths)
    trainer.train()
    return {"label": f"TRL {trl.__version__} {Trainer.__name__}", "seconds": timer.wall, "lengths": lengths,
            "in_step": timer.in_step, "threads": torch.get_num_threads(),
            "timed": f"on_step_end -> on_step_end over {steps_per_gen * a.epochs} optimizer steps "
                     "(generation happens inside the first)"}


# ---- report -------------------------------------------------------------------------------
def summarise(side: dict) -> dict:
    s = dict(side)
    s["mean_s_per_iter"] = mean_after_warmup(side["seconds"])
    s["mean_gen_len"] = mean_after_warmup(side["lengths"])
    if side.get("in_step"):
        s["mean_in_step_s"] = mean_after_warmup(side["in_step"])
    return s


def report(a: argparse.Namespace, ours: dict, peer: dict) -> dict:
    ratio = peer["mean_s_per_iter"] / ours["mean_s_per_iter"]
    print(f"\n{a.algo}: {a.batch} rollouts/iter ({a.batch // a.k} prompts x k={a.k}), {a.max_new_tokens} new tokens, "
          f"{a.epochs} epoch(s) x {a.batch // a.minibatch} minibatches of {a.minibatch}, fp32 CPU, "
          f"{THREADS} threads; mean over iterations 2..{a.iterations}")
    print(f"{'side':<30} {'s/iter':>8} {'min s':>8} {'gen len':>8} {'threads':>8}")
    for s in (ours, peer):
        print(f"{s['label']:<30} {s['mean_s_per_iter']:8.2f} {min(s['seconds'][1:]):8.2f} "
              f"{s['mean_gen_len']:8.1f} {s['threads']:8d}")
    for s in (ours, peer):
        print(f"  timed for {s['label']}: {s['timed']}")
    if "mean_in_step_s" in peer:
        print(f"  TRL in-step only (on_step_begin -> on_step_end): {peer['mean_in_step_s']:.2f} s/iter")
    print(f"ratio (TRL s/iter / rlhfkit s/iter): {ratio:.2f}")
    return {"algo": a.algo, "settings": vars(a) | {"temperature": TEMPERATURE, "threads": THREADS, "lr": LR,
                                                   "beta": BETA}, "rlhfkit": ours, "trl": peer, "ratio": ratio}


def main(argv: list[str] | None = None) -> dict:
    a = parse_args(argv)
    torch.set_num_threads(THREADS)
    out = Path(a.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    policy, rm = prepare_models(out, a.max_new_tokens, with_rm=a.algo == "ppo")
    n_prompts = (a.batch // a.k) * a.iterations    # both sides draw from the same prompt pool
    ours = summarise(run_rlhfkit(a, policy, rm, n_prompts))
    torch.set_num_threads(THREADS)                 # in case anything changed it
    peer = summarise(run_trl_ppo(a, policy, rm, n_prompts) if a.algo == "ppo"
                     else run_trl_group(a, policy, n_prompts))
    result = report(a, ours, peer)
    (out / "result.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
