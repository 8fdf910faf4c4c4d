"""`rlhfkit rsft` and `rlhfkit rwsft`: supervised fine-tuning on the policy's own samples, chosen
or weighted by the reward model or a Python reward function (`--reward`, as in `rlhfkit rl`): the
supervised family that uses a reward.

- rsft (rejection-sampling fine-tuning; Touvron et al. 2023, Dong et al. 2023): each round
  samples n answers per prompt from the current policy, keeps the reward model's best and
  fine-tunes on those; the next round samples from the result.
- rwsft (reward-weighted SFT): one round of n samples from the starting policy, every sample
  kept with weight n * softmax_j(r_j / tau) beside the demonstrations at weight alpha; the exact
  objective and why it is the KL-constrained problem in supervised form are in
  `rlhfkit.algorithms.rwsft`.

    rlhfkit rsft --policy runs/sft --reward_model runs/rm --n 8 --rounds 2 --out runs/rsft
    rlhfkit rwsft --policy runs/sft --reward_model runs/rm --tau 0.1 --alpha 0.5 --out runs/rwsft
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from rlhfkit.algorithms.best_of_n import select
from rlhfkit.algorithms.rwsft import sample_weights
from rlhfkit.config import RSFTConfig, RWSFTConfig
from rlhfkit.data.collate import Example, encode_demonstration, encode_record
from rlhfkit.data.records import Demonstration, Where, load_demonstrations, write_jsonl
from rlhfkit.models.lm import context_length, load_causal_lm, save_model
from rlhfkit.rollout.prompts import load_prompts
from rlhfkit.rollout.score import RewardFn, load_reward, reward_identity
from rlhfkit.tasks.base import TASKS, load_task
from rlhfkit.train.best_of_n import sample_candidates
from rlhfkit.train.job import Job
from rlhfkit.train.loop import budget, fit


def weighted(ex: Example, weight: float) -> Example:
    ex.weight = weight
    return ex


def _encode(prompt: str, answer: str, tokenizer, max_len: int, where: Where, weight: float = 1.0) -> Example:
    return weighted(encode_demonstration(Demonstration(prompt, answer, where), tokenizer, max_len), weight)


def run_rsft(cfg: RSFTConfig, reward_fn: RewardFn | None = None) -> dict:
    """`reward_fn`: a Python reward (prompts, completions) -> scores in place of --reward_model / --reward."""
    cfg.validate(with_reward_fn=reward_fn is not None)
    code, fn_name = reward_identity(cfg.reward, reward_fn)
    job = Job.begin("rsft", cfg, models={"policy": cfg.policy, "reward_model": cfg.reward_model}, extra=fn_name,
                    data={"prompts": cfg.prompts} | code)
    if job.result is not None:
        return job.result
    # ---- Models and prompts
    policy, tokenizer = load_causal_lm(cfg.policy)
    reward = load_reward(cfg.reward_model, cfg.reward, reward_fn, tokenizer)
    max_len = context_length(policy)
    prompts = load_prompts(cfg.prompts, cfg.task, "train", tokenizer, max_len - cfg.sample.max_new_tokens - 1)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    job.claim()
    stats: dict = {}
    for r in range(cfg.rounds):
        round_dir = out / f"round{r + 1}"
        # a round is this job's r-th: its samples are a function of the job and r, so they need no hash
        round_job = Job(f"rsft round {r + 1}", round_dir, job.fingerprint | {"round": r + 1}, cfg.resume,
                        defaults=job.defaults)
        round_job.check()
        if round_job.result is not None:     # finished before a restart
            policy, _ = load_causal_lm(round_dir / "model")
            stats = round_job.result
            continue
        # ---- 1. sample n per prompt from the current policy (prompts taken in turn)
        start = (r * cfg.prompts_per_round) % len(prompts)
        batch = (prompts[start:] + prompts[:start])[:cfg.prompts_per_round]
        sample = replace(cfg.sample, seed=cfg.sample.seed + 7919 * r)      # fresh draws each round
        texts, scores, _ = sample_candidates(policy.eval(), tokenizer, reward, batch, cfg.n, sample,
                                          desc=f"rsft round {r + 1}")
        # ---- 2. keep the reward model's best of each prompt
        best = select(scores).tolist()
        kept = [{"prompt": p, "completion": t[b], "score": scores[i, b].item()}
                for i, (p, t, b) in enumerate(zip(batch, texts, best, strict=True))]
        write_jsonl(round_dir / "selected.jsonl", kept)
        # ---- 3. fine-tune on them
        examples = [_encode(k["prompt"], k["completion"], tokenizer, max_len, Where("selected.jsonl", i + 1))
                    for i, k in enumerate(kept)]
        stats = fit(policy, tokenizer, examples, cfg.train, round_dir, job=round_job, desc=f"rsft round {r + 1}")
        stats["mean_selected_score"] = sum(k["score"] for k in kept) / len(kept)
        round_job.finish(stats)
    save_model(out / "model", policy, tokenizer)
    drawn = cfg.rounds * min(cfg.prompts_per_round, len(prompts)) * cfg.n
    spent = budget([out / f"round{r + 1}" / "log.jsonl" for r in range(cfg.rounds)], samples=drawn, reward_calls=drawn)
    return job.finish({"rounds": cfg.rounds, "last_round": stats, "budget": spent, "out": str(out / "model")})


def run_rwsft(cfg: RWSFTConfig, reward_fn: RewardFn | None = None) -> dict:
    """`reward_fn`: a Python reward (prompts, completions) -> scores in place of --reward_model / --reward."""
    cfg.validate(with_reward_fn=reward_fn is not None)
    code, fn_name = reward_identity(cfg.reward, reward_fn)
    job = Job.begin("rwsft", cfg, models={"policy": cfg.policy, "reward_model": cfg.reward_model}, extra=fn_name,
                    data={"prompts": cfg.prompts, "demonstrations": cfg.demonstrations} | code)
    if job.result is not None:
        return job.result
    # ---- Models, prompts and demonstrations
    policy, tokenizer = load_causal_lm(cfg.policy)
    reward = load_reward(cfg.reward_model, cfg.reward, reward_fn, tokenizer)
    max_len = context_length(policy)
    prompts = load_prompts(cfg.prompts, cfg.task, "train", tokenizer,
                           max_len - cfg.sample.max_new_tokens - 1)[:cfg.n_prompts]
    if cfg.demonstrations in TASKS:
        demos = load_task(cfg.demonstrations, cfg.task).demonstrations("train")
    else:
        demos = load_demonstrations(cfg.demonstrations) if cfg.demonstrations else []
    # ---- 1. n samples per prompt from the starting policy, scored
    texts, scores, _ = sample_candidates(policy.eval(), tokenizer, reward, prompts, cfg.n, cfg.sample,
                                      desc="rwsft samples")
    # ---- 2. weights: n * softmax(r / tau) per prompt, so a prompt's samples weigh n in total
    weights = (sample_weights(scores, cfg.tau) * cfg.n).tolist()
    examples = [_encode(p, t, tokenizer, max_len, Where("rwsft sample", i * cfg.n + j + 1), w)
                for i, (p, ts, ws) in enumerate(zip(prompts, texts, weights, strict=True))
                for j, (t, w) in enumerate(zip(ts, ws, strict=True))]
    if cfg.alpha > 0:
        examples += [weighted(encode_record(d, tokenizer, max_len), cfg.alpha) for d in demos]
    # ---- 3. the weighted text loss
    out = Path(cfg.out)
    stats = fit(policy, tokenizer, examples, cfg.train, out, job=job, desc="rwsft")
    spent = budget([out / "log.jsonl"], samples=len(prompts) * cfg.n, reward_calls=len(prompts) * cfg.n)
    return job.finish({"loss": stats.get("loss"), "samples": len(prompts) * cfg.n,
                       "demonstrations": len(demos) if cfg.alpha else 0, "max_weight": max(max(w) for w in weights),
                       "budget": spent, "out": str(out / "model")})
