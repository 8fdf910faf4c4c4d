"""`rlhfkit bon`: best-of-n sampling against a reward model (or a Python reward function, `--reward`),
an inference-time baseline.

For each prompt: n answers from the policy at the sampling temperature, scored by the reward
model on their own tokens (an answer with no EOS within the limit scores `NO_EOS_SCORE`, as in
RL); the best is the answer. Its KL to the policy is log n - (n-1)/n (analytic). Writes
`OUT/completions.jsonl`, one record per prompt: prompt, completion, n, kl_to_sft, and every
candidate with its score (so best-of-m for any m <= n can be read off the same draws).
`rlhfkit eval` takes the file as a policy: `--policies bon=runs/bon/completions.jsonl`.

    rlhfkit bon --policy runs/sft --reward_model runs/rm --n 16 --out runs/bon
"""
from __future__ import annotations

from pathlib import Path

import torch
from tqdm import tqdm

from rlhfkit.algorithms.best_of_n import analytic_kl, select
from rlhfkit.config import BestOfNConfig, SampleConfig
from rlhfkit.data.records import write_jsonl
from rlhfkit.models.lm import context_length, load_causal_lm
from rlhfkit.rollout.generate import generate
from rlhfkit.rollout.prompts import load_prompts
from rlhfkit.rollout.score import ScoreFn, load_reward, reward_identity
from rlhfkit.tasks.base import TASKS
from rlhfkit.train.job import Job
from rlhfkit.train.loop import budget

NO_EOS_SCORE = -1.0   # the RL stage's EOS-trick penalty: an unfinished answer is never the best


@torch.no_grad()
def sample_candidates(policy, tokenizer, reward: ScoreFn, prompts: list[str], n: int, sample: SampleConfig,
                      desc: str = "best-of-n", eos_trick: bool = True
                      ) -> tuple[list[list[str]], torch.Tensor, torch.Tensor]:
    """n answers per prompt, their scores under `reward` and EOS flags: (texts [P][n], (P, n), (P, n)).
    With the EOS trick an answer cut at the token limit scores NO_EOS_SCORE; without it, the
    reward reads it as if it ended there."""
    flat = [p for p in prompts for _ in range(n)]
    texts: list[str] = []
    scores: list[torch.Tensor] = []
    ended: list[torch.Tensor] = []
    for i in tqdm(range(0, len(flat), sample.batch_size), desc=desc, unit="batch", dynamic_ncols=True):
        r = generate(policy, tokenizer, flat[i:i + sample.batch_size], temperature=sample.temperature,
                     max_new_tokens=sample.max_new_tokens, seed=sample.seed + i,
                     engine=sample.engine)
        s = reward(r, flat[i:i + sample.batch_size]).float()
        scores.append(torch.where(r.ended | (not eos_trick), s, torch.full_like(s, NO_EOS_SCORE)))
        ended.append(r.ended)
        texts += r.texts
    shape = (len(prompts), n)
    return [texts[j * n:(j + 1) * n] for j in range(len(prompts))], torch.cat(scores).view(shape), \
        torch.cat(ended).view(shape)


def run(cfg: BestOfNConfig) -> dict:
    cfg.validate()
    code, _ = reward_identity(cfg.reward, None)
    job = Job.begin("bon", cfg, models={"policy": cfg.policy, "reward_model": cfg.reward_model},
                    data={"prompts": cfg.prompts} | code)
    if job.result is not None:
        return job.result
    # ---- Models and prompts
    policy, tokenizer = load_causal_lm(cfg.policy)
    reward = load_reward(cfg.reward_model, cfg.reward, None, tokenizer)
    prompts = load_prompts(cfg.prompts, cfg.task, "test", tokenizer,
                           context_length(policy) - cfg.sample.max_new_tokens - 1)
    if cfg.prompts in TASKS:     # a file's prompts are all used; a task's test split is cut to n_prompts
        prompts = prompts[:cfg.n_prompts]
    # ---- n candidates each, scored; keep the best
    texts, scores, ended = sample_candidates(policy, tokenizer, reward, prompts, cfg.n, cfg.sample,
                                             eos_trick=cfg.eos_trick)
    best = select(scores).tolist()
    kl = analytic_kl(cfg.n)
    records = [{"prompt": p, "completion": t[b], "ended": bool(e[b]), "n": cfg.n, "kl_to_sft": kl, "candidates": t,
                "scores": [round(x, 4) for x in s]}
               for p, t, b, s, e in zip(prompts, texts, best, scores.tolist(), ended.tolist(), strict=True)]
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    job.claim()
    write_jsonl(out / "completions.jsonl", records)
    drawn = len(prompts) * cfg.n      # at inference time: n samples and n reward-model calls per query
    return job.finish({"prompts": len(prompts), "n": cfg.n, "kl_to_sft": kl, "mean_best_score": scores.max(1).values.mean().item(),
                       "mean_score": scores.mean().item(), "budget": budget(samples=drawn, reward_calls=drawn),
                       "out": str(out / "completions.jsonl")})
