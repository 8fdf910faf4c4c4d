"""`rlhfkit rl`: RL fine-tuning with a KL penalty to the starting (SFT) policy.

One iteration is the data flow of DESIGN section 2, one function per arrow:

    prompts -> generate (1) -> score (2) -> advantages (3) -> update (4)

When `--prompts` names a task with an environment, step 1 plays multi-turn episodes against it
(`rollout/episodes.py`) and the environment's rewards join (or replace) the reward model's;
`--env_reward false` keeps the environment's replies and drops its rewards.
The algorithm is `--algo`, looked up in `rlhfkit.algorithms.registry`: its advantages() reads
the hand-off record (`rollout.types.Experience`) and its loss() scores each minibatch, so this
loop names none of them:
- ppo  (Stiennon et al. 2020; Huang et al. 2024): per-token KL penalty in the reward, separate
  value model initialised from the reward model, GAE (gamma 1, lambda 0.95), whitened
  advantages, clipped policy and value losses, `epochs` passes of minibatches.
- rloo (Ahmadian et al. 2024): k answers per prompt, leave-one-out baseline, KL in the reward.
- grpo (Shao et al. 2024): k answers per prompt, group-normalised scores, k3 KL in the loss.
- reinforce_pp (Hu 2025): PPO's KL reward and clipped loss, no critic: returns to go whitened
  over the batch.

Departures from the papers: AdamW with a linear decay to 0 over `steps` (N+ uses the same);
the EOS trick gives an answer without EOS `eos_penalty` instead of its reward.

    rlhfkit rl --algo ppo --policy runs/sft --reward_model runs/rm --out runs/ppo
    rlhfkit rl --algo grpo --reward mypkg.rewards:brevity --out runs/grpo
    rlhfkit rl --algo ppo --policy runs/conv-sft --prompts conversation --out runs/conv-ppo
"""
from __future__ import annotations

import contextlib
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import ModuleType

import torch
from tqdm import tqdm

from rlhfkit import runtime
from rlhfkit.algorithms.kl_control import KLController
from rlhfkit.algorithms.registry import RL_ALGORITHMS, algorithm
from rlhfkit.algorithms.stats import kl_k3, masked_mean, truncated_is
from rlhfkit.config import RLConfig
from rlhfkit.engines import is_external
from rlhfkit.errors import RunError
from rlhfkit.models.attention import use_for_training
from rlhfkit.models import lora
from rlhfkit.models.heads import fresh_head, load_scalar_model, readout_of, scalar_model_from_lm, score_head
from rlhfkit.models.lm import (context_length, disable_dropout, load_causal_lm, recover_atomic, repeated_rows,
                               save_atomic, save_model, save_weights)
from rlhfkit.rollout.episodes import play_episodes
from rlhfkit.rollout.generate import gather_logprobs, generate, response_logits
from rlhfkit.rollout.prompts import load_prompts
from rlhfkit.rollout.score import RewardFn, ScoreFn, load_reward, response_values, reward_identity, score
from rlhfkit.rollout.types import Experience
from rlhfkit.tasks.base import TASKS, load_task
from rlhfkit.train.job import Job, last_good_checkpoint
from rlhfkit.train.loop import (RunLog, batch_at, budget, check_step, check_weights, combine_stats, load_weights,
                                open_log, restore_trainer_state, save_final, trainer_state)

# (step, prompts, completions, raw reward scores) -> extra stats to log; used by the demo to
# track the gold judge beside the proxy reward without the trainer ever importing it
StepHook = Callable[[int, list[str], list[str], list[float]], dict]


def rl_lr_factor(step: int, warmup: int, total: int, decay: bool = True) -> float:
    """The lr multiplier at iteration `step`: a linear warm-up over `warmup` iterations (the first
    updates otherwise spend KL on a value model that has not caught up), times a linear decay to 0
    over the run (N+) if `decay`."""
    return min(1.0, (step + 1) / warmup if warmup else 1.0) * (max(0.0, 1 - step / total) if decay else 1.0)


# ---- 1b. old log-probs in the update's precision ----------------------------------------------
@torch.no_grad()
def same_precision_logprobs(policy, r: Experience, temperature: float) -> Experience:
    """The rollout with log pi_old recomputed in the current (autocast) precision, as the update
    computes log pi: otherwise the ratio starts off 1 by bf16 rounding alone (on a 135M model
    that clipped 10% of tokens at the first minibatch)."""
    logits = response_logits(policy, r.input_ids, r.attention_mask, r.response_ids.size(1), temperature)
    return replace(r, logprobs=gather_logprobs(logits.float(), r.response_ids) * r.action_mask)


# ---- 3. advantages --------------------------------------------------------------------------
def corrected_advantages(method: ModuleType, exp: Experience, beta: float, hp, own) -> tuple[Experience, dict]:
    """The algorithm's advantages; for samples an external engine drew, each token's scaled by its
    truncated importance weight (`truncated_is`, cap `hp.tis_cap`, 0: off), with the weights' stats."""
    exp = method.advantages(exp, beta, hp, own)
    if exp.sampler_logprobs is None or not hp.tis_cap:
        return exp, {}
    weights, stats = truncated_is(exp.logprobs, exp.sampler_logprobs, exp.action_mask, hp.tis_cap)
    return replace(exp, advantages=exp.advantages * weights), stats


# ---- 4. update -----------------------------------------------------------------------------
def minibatches(exp: Experience, size: int) -> list[torch.Tensor]:
    """Row indices of shuffled minibatches of `size` rows. The samples of one prompt (consecutive
    rows, as RLOO and GRPO lay them out) stay next to each other, so a minibatch runs each prompt
    once (`response_logits`; under torchrun a process's share may cut a group, which changes no
    number: the loss is per row); with one sample per prompt this is a plain shuffle of the rows."""
    groups = torch.arange(exp.prompt_ids.size(0)).split(repeated_rows(exp.prompt_ids, exp.prompt_mask))
    return torch.cat([groups[g] for g in torch.randperm(len(groups)).tolist()]).split(size)


class UpdateStep(torch.nn.Module):
    """The policy and the value model (if any) as one module whose forward is one minibatch's loss,
    so a data-parallel wrapper (`runtime.wrap`) synchronises both."""

    def __init__(self, method: ModuleType, policy, value_model) -> None:
        super().__init__()
        self.method, self.policy, self.value_model = method, policy, value_model

    def forward(self, mb: Experience, beta: float, temperature: float, hp, own, autocast) -> tuple[torch.Tensor, dict]:
        if mb.action_mask.size(0) == 0:    # no rows for this process: it still joins the gradient sync
            return sum(p.sum() for p in self.parameters() if p.requires_grad) * 0.0, {}
        with autocast:
            logits = response_logits(self.policy, mb.input_ids, mb.attention_mask, mb.response_ids.size(1),
                                     temperature)                                            # (b, R, V) float32
            values = (response_values(self.value_model, mb.input_ids, mb.attention_mask, mb.action_mask).float()
                      if self.value_model is not None else None)
        loss, stats = self.method.loss(mb, gather_logprobs(logits, mb.response_ids), values, beta, hp, own)
        with torch.no_grad():
            p = torch.softmax(logits, dim=-1)
            stats["entropy"] = masked_mean(-(p * torch.log(p.clamp(min=1e-30))).sum(-1), mb.action_mask).item()
        stats["loss"] = loss.item()
        return loss, stats


def update(runner: torch.nn.Module, optimizer, exp: Experience, beta: float, temperature: float, cfg, own,
           params: list, guard: Callable[[dict[str, float], dict[str, float]], None]) -> dict:
    """`epochs` passes of shuffled minibatches, each scored by the algorithm's loss() (`cfg` the shared
    rl section, `own` the algorithm's, or None); returns the mean of each minibatch stat, and the
    optimizer steps and action tokens trained. `guard` sees each minibatch's loss and gradient
    norm before its optimizer step (and stops the run). Under torchrun every process holds the
    whole batch and trains on its share of each minibatch, weighted by the algorithm's units."""
    method, world = runtime.unwrap(runner).method, runtime.current().world_size
    logs: dict[str, list[float]] = {}
    steps, tokens = 0, 0
    autocast = runtime.autocast(cfg.dtype)
    for _ in range(cfg.epochs):
        for index in runtime.from_main(minibatches(exp, cfg.minibatch_size)):
            mine = runtime.shard(index.tolist())
            # FSDP2 gathers weights in a forward pass every process must make: no rows, a stand-in of weight 0
            stand_in = not mine and runtime.sharded()
            mb = exp.rows(torch.tensor(index.tolist()[:1] if stand_in else mine, dtype=torch.long))
            n = 0.0 if stand_in else method.units(mb, cfg, own)
            total = runtime.sum_over([n])[0]
            optimizer.zero_grad(set_to_none=True)
            loss, stats = runner(mb, beta, temperature, cfg, own, autocast)
            (loss * (n * world / total if total else 0.0)).backward()
            mine_stats = ({} if stand_in else stats, n)
            stats = combine_stats([part for parts in runtime.gather([mine_stats]) for part in parts])
            grad_norm = runtime.clip_grad_norm(params, cfg.grad_clip or math.inf)
            guard({"loss": stats["loss"], "grad_norm": grad_norm}, {"loss": cfg.max_loss})
            optimizer.step()
            steps, tokens = steps + 1, tokens + int(exp.action_mask[index].sum())
            for k, v in stats.items():
                logs.setdefault(k, []).append(v)
    return {k: statistics.fmean(v) for k, v in logs.items()} | {"optimizer_steps": steps, "answer_tokens": tokens}


# ---- checkpoints ---------------------------------------------------------------------------
def _save_checkpoint(path: Path, policy, value_model, tokenizer, optimizer, scheduler, kl: KLController,
                     step: int, job: Job) -> None:
    check_weights(job.stage, _models(policy, value_model), path.parent)
    state = trainer_state(optimizer, scheduler, step, kl=kl.state_dict())
    weights = {name: runtime.full_state_dict(m) for name, m in (("policy", policy), ("value", value_model))
               if m is not None}

    def write(d: Path) -> None:
        (d / "policy").mkdir()
        save_weights(d / "policy", policy, weights["policy"])
        tokenizer.save_pretrained(d / "policy")
        if value_model is not None:
            (d / "value").mkdir()
            save_weights(d / "value", value_model, weights["value"])
        torch.save(state, d / "trainer_state.pt")
        job.write_checkpoint_marker(d, step)
    save_atomic(path, write)


def make_optimizer(models: list, hp) -> tuple[list, torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW (eps 1e-5) over the trained models' parameters, with `rl_lr_factor`'s schedule."""
    params = [p for m in models if m is not None for p in m.parameters()]
    optimizer = torch.optim.AdamW(params, lr=hp.lr, eps=1e-5, **runtime.optimizer_options())
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer,
                                                 lambda s: rl_lr_factor(s, hp.warmup_steps, hp.steps, hp.lr_decay))
    return params, optimizer, schedule


def keep_policy(stage: str, out: Path, step: int, hp, policy, tokenizer) -> None:
    """A budget sweep's point (rl.keep_at): the policy as it stands after `step`, as OUT/at<step>/model."""
    if step in hp.keep_steps:
        check_weights(stage, {"policy": policy}, out)
        save_model(out / f"at{step}" / "model", policy, tokenizer)


def _models(policy, value_model) -> dict:
    """The trained models by the directory each is saved in (OUT/model, OUT/value)."""
    return {"model": policy} | ({"value": value_model} if value_model is not None else {})


def _resume_weights(path: Path, policy, value_model) -> bool:
    """Load the checkpoint's weights (before the models are wrapped); whether there is one."""
    recover_atomic(path)
    if not (path / "trainer_state.pt").is_file():
        return False
    load_weights(policy, path / "policy")
    if value_model is not None:
        load_weights(value_model, path / "value")
    return True


def start_update(path: Path, method: ModuleType, policy, value_model, hp, kl: KLController) -> tuple:
    """The update module, its parameters, optimizer and schedule, and the iteration to start at: the
    checkpoint's weights load before the models are wrapped, the optimizer is built after (FSDP2
    replaces the parameters), then the optimizer's, schedule's, KL controller's and RNG state."""
    resuming = _resume_weights(path, policy, value_model)
    runner = runtime.wrap(UpdateStep(method, policy, value_model))
    params, optimizer, scheduler = make_optimizer([policy, value_model], hp)
    if not resuming:
        return runner, params, optimizer, scheduler, 0
    state = restore_trainer_state(path, optimizer, scheduler)
    kl.load_state_dict(state["kl"])
    return runner, params, optimizer, scheduler, int(state["step"])


# ---- the loop ------------------------------------------------------------------------------
def check_rollouts(algo: str, step: int, exp: Experience, max_kl: float, out: Path) -> torch.Tensor:
    """Stop before an update that would learn from non-finite rewards or values, or from a
    policy that has drifted past `max_kl` from its reference (RunError). Returns each rollout's
    sequence KL to the reference, (B,)."""
    seq_kl = ((exp.logprobs - exp.ref_logprobs) * exp.action_mask).sum(1)
    for name, t in (("reward", exp.raw_scores), ("value", exp.values)):
        if t is not None and not torch.isfinite(t).all():
            bad = (~torch.isfinite(t)).nonzero()[0].tolist()
            raise RunError(f"{algo}: step {step}: {name} is {t[tuple(bad)].item()} for rollout {bad[0]}; "
                           f"{last_good_checkpoint(out)}")
    check_step(algo, step, {"kl": seq_kl.mean().item()}, {"kl": max_kl}, "mean sequence KL to the reference, "
               "in nats, of the policy the last update left: resuming may need a higher rl.max_kl", out)
    return seq_kl


def rl_job(cfg: RLConfig, reward_fn: RewardFn | None) -> Job:
    """The run's job: its models, prompts, the reward's code (or a Python function's name), config."""
    code, fn_name = reward_identity(cfg.reward, reward_fn)
    return Job.begin(cfg.algo, cfg, models={"policy": cfg.policy, "value_model": cfg.value_model,
                                            "reward_model": cfg.reward_model},
                     data={"prompts": cfg.prompts} | code, extra=fn_name)


def load_models(cfg: RLConfig, critic: bool, reward_fn: RewardFn | None) -> tuple:
    """(policy, frozen reference or None, tokenizer, reward, value model or None), dropout off in the
    trained ones (N+: log-probs recomputed in the update must match the sampler's). With --lora.r
    the reference is None: scoring reads the policy with its adapters off."""
    policy, tokenizer = load_causal_lm(cfg.policy)
    lora.apply(policy, cfg.lora, cfg.rl.seed)
    ref = None     # with adapters: the policy with them off (`reference`), no second copy of the weights
    if not cfg.lora.r:
        ref, _ = load_causal_lm(cfg.policy)
        ref.requires_grad_(False)
    reward = load_reward(cfg.reward_model, cfg.reward, reward_fn, tokenizer)   # None: the environment's alone
    value_model = None
    if critic:    # from --value_model, else the reward model, else the policy's backbone with a new head
        start = cfg.value_model or cfg.reward_model
        value_model = load_scalar_model(start)[0] if start else scalar_model_from_lm(cfg.policy)[0]
        if readout_of(value_model) == "verdict":     # a generative reward model never trained its scalar head
            fresh_head(value_model)
        lora.apply(value_model, cfg.lora, cfg.rl.seed + 1, train_beside=(score_head(value_model),))
        disable_dropout(value_model).train()
    disable_dropout(policy).train()
    for model in (policy, ref, value_model):
        if model is not None:
            use_for_training(model, cfg.rl.dtype)
    return policy, ref, tokenizer, reward, value_model


def rollout_stats(exp: Experience, seq_kl: torch.Tensor, beta: float) -> dict[str, float]:
    """What an iteration's episodes show: proxy return, KL (k1 and k3), KL-penalised reward, length
    (the policy's own tokens), turns."""
    mask = exp.action_mask
    return {"score": exp.raw_scores.mean().item(), "kl": seq_kl.mean().item(),
            "kl_k3": (kl_k3(exp.logprobs, exp.ref_logprobs) * mask).sum(1).mean().item(),
            "rlhf_reward": (exp.episode_returns - beta * seq_kl).mean().item(), "beta": beta,
            "length": mask.sum(1).mean().item(), "turns": exp.turn_ends.sum(1).float().mean().item(),
            "no_eos": (~exp.ended).float().mean().item()}


def rollouts(cfg: RLConfig, policy, tokenizer, env, batch: list[str], step: int) -> Experience:
    """Step 1: sample the batch (one answer each, or episodes against the task's environment)."""
    hp, sampling = cfg.rl, cfg.sample
    policy.eval()
    seed = hp.seed * 100_003 + step
    if env is None:
        exp = generate(policy, tokenizer, batch, temperature=sampling.temperature,
                       max_new_tokens=sampling.max_new_tokens, seed=seed, engine=sampling.engine)
    else:
        exp = play_episodes(policy, tokenizer, env, batch, temperature=sampling.temperature,
                            max_new_tokens=sampling.max_new_tokens, max_turns=sampling.max_turns, seed=seed,
                            engine=sampling.engine)
    if env is not None and not cfg.env_reward:   # the environment only answered: the reward model alone scores
        exp = replace(exp, rewards=torch.zeros_like(exp.rewards))
    if not is_external(sampling.engine):
        return exp
    # an external engine promises no equal samples across processes from one seed: the main one's count
    return runtime.from_main(replace(exp, sampler_logprobs=exp.logprobs))


def score_rollouts(cfg: RLConfig, exp: Experience, policy, ref, value_model, reward: ScoreFn | None,
                   batch: list[str]) -> Experience:
    """Step 2: reward, reference log-probs and values, in the precision of the update (a bf16
    update recomputes log pi_old in bf16, so a ratio and a KL of equal models start at 1 and 0)."""
    hp, sampling = cfg.rl, cfg.sample
    with runtime.autocast(hp.dtype):
        if hp.dtype == "bfloat16" or exp.sampler_logprobs is not None:
            exp = same_precision_logprobs(policy, exp, sampling.temperature)
        with lora.disabled(policy) if ref is None else contextlib.nullcontext():
            return score(exp, batch, reward, policy if ref is None else ref, value_model, sampling.temperature,
                         hp.eos_penalty if hp.eos_trick else None)


SCORED = ("logprobs", "rewards", "raw_scores", "ref_logprobs", "values")     # the fields step 2 fills


def score_shares(cfg: RLConfig, exp: Experience, policy, ref, value_model, reward: ScoreFn | None,
                 batch: list[str]) -> Experience:
    """Step 2 under torchrun: each process scores its share of the rows (whole prompt groups) and
    every process gets the whole batch's scores back. One process scores it all."""
    groups = list(torch.arange(len(batch)).split(repeated_rows(exp.prompt_ids, exp.prompt_mask)))
    if len(groups) < runtime.current().world_size:     # equal prompts side by side count as one group
        raise RunError(f"this batch holds {len(groups)} distinct prompt groups for {runtime.current().world_size} "
                       "processes; use fewer processes or a larger rl.prompts_per_step")
    index = torch.cat(runtime.shard(groups))
    scored = score_rollouts(cfg, exp.rows(index), policy, ref, value_model, reward, [batch[i] for i in index.tolist()])
    if runtime.current().world_size == 1:
        return scored
    parts = runtime.gather({name: getattr(scored, name) for name in SCORED})
    return replace(exp, **{name: None if parts[0][name] is None else torch.cat([part[name] for part in parts])
                           for name in SCORED})


def phase_seconds(clock: list[float]) -> dict[str, float]:
    """An iteration's seconds, in all and by phase, from the times it started, generated, scored, updated."""
    start, generated, scored, updated = clock
    return {"seconds": updated - start, "seconds_generate": generated - start, "seconds_score": scored - generated,
            "seconds_update": updated - scored}


def log_iteration(log: RunLog, bar, stats: dict, hp, batch: list, exp: Experience) -> None:
    """One line of log.jsonl (and the tracker's), the first answers of every `log_completions_every`-th
    iteration to the tracker, and the progress bar's step."""
    log.record(stats)
    log.flush()
    if hp.report_to != "none" and hp.log_completions_every and stats["step"] % hp.log_completions_every == 0:
        log.completions([[str(batch[i]), exp.texts[i], float(exp.raw_scores[i])] for i in range(min(4, len(batch)))],
                        stats["step"])
    bar.update(1)
    bar.set_postfix(score=f"{stats['score']:.2f}", kl=f"{stats['kl']:.2f}", ent=f"{stats['entropy']:.2f}",
                    len=f"{stats['length']:.0f}")


def set_trainable(params: list[torch.nn.Parameter], trains: bool) -> None:
    for p in params:
        p.requires_grad_(trains)


def run(cfg: RLConfig, reward_fn: RewardFn | None = None, on_step: StepHook | None = None) -> dict:
    cfg.validate(with_reward_fn=reward_fn is not None)
    algo, hp, out = cfg.algo, cfg.rl, Path(cfg.out)
    entry, method = RL_ALGORITHMS[algo], algorithm(algo)     # its flags; its advantages() and loss()
    own = getattr(cfg, algo, None)                           # its own config section, if it has one
    job = rl_job(cfg, reward_fn)
    if job.result is not None:
        return job.result
    out.mkdir(parents=True, exist_ok=True)
    job.claim()
    torch.manual_seed(hp.seed)
    # ---- Models: policy, frozen reference, reward, value
    policy, ref, tokenizer, reward, value_model = load_models(cfg, entry.critic, reward_fn)
    kl = KLController(hp.beta, hp.target_kl or None, hp.kl_horizon)
    runner, params, optimizer, scheduler, step = start_update(out / "checkpoint", method, policy, value_model, hp, kl)
    prompts = load_prompts(cfg.prompts, cfg.task, "train", tokenizer,
                           context_length(policy) - cfg.sample.max_new_tokens - 1)
    env = load_task(cfg.prompts, cfg.task).environment() if cfg.prompts in TASKS else None
    k = hp.k if entry.grouped else 1
    policy_trains = [p for p in policy.parameters() if p.requires_grad]     # with LoRA: its adapters alone
    with (open_log(out / "log.jsonl", step, job, hp.report_to) as log,
          tqdm(total=hp.steps, initial=step, desc=algo, unit="it", dynamic_ncols=True,
               disable=not runtime.is_main()) as bar):
        stats: dict = {}
        while step < hp.steps:
            clock = [time.time()]
            batch = [p for p in batch_at(prompts, step, hp.prompts_per_step, hp.seed) for _ in range(k)]
            # 1. generate (under torchrun every process samples the whole batch: the same samples, one seed)
            exp = rollouts(cfg, policy, tokenizer, env, batch, step)
            clock.append(time.time())
            # 2. score
            exp = score_shares(cfg, exp, policy, ref, value_model, reward, batch)
            clock.append(time.time())
            seq_kl = check_rollouts(algo, step + 1, exp, hp.max_kl, out)
            # 3. advantages
            beta = kl.beta
            exp, corrections = corrected_advantages(method, exp, beta, hp, own)
            # 4. update (during the value warm-up the policy gets no gradient: only the critic learns)
            set_trainable(policy_trains, step >= hp.value_warmup)
            policy.train()
            lr_now = f"lr {scheduler.get_last_lr()[0]:.1e}"
            stats = update(runner, optimizer, exp, beta, cfg.sample.temperature, hp, own, params,
                           lambda values, limits: check_step(algo, step + 1, values, limits, lr_now, out))
            scheduler.step()
            step += 1
            clock.append(time.time())
            stats.update(step=step, **rollout_stats(exp, seq_kl, beta), lr=scheduler.get_last_lr()[0],
                         episodes=len(batch), reward_calls=len(batch) if reward is not None else 0,
                         **corrections, **phase_seconds(clock), **runtime.memory_stats())
            kl.update(stats["kl"], len(batch))
            if on_step is not None:
                stats.update(on_step(step, batch, exp.texts, exp.raw_scores.tolist()))
            log_iteration(log, bar, stats, hp, batch, exp)
            keep_policy(algo, out, step, hp, policy, tokenizer)
            if hp.checkpoint_every and step % hp.checkpoint_every == 0 and step < hp.steps:
                _save_checkpoint(out / "checkpoint", policy, value_model, tokenizer, optimizer, scheduler, kl, step,
                                 job)
    save_final(algo, out, tokenizer, _models(policy.eval(), value_model))
    return job.finish(dict(stats) | {"budget": budget([out / "log.jsonl"]), "out": str(out / "model")})
