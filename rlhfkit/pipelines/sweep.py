"""`rlhfkit sweep`: RL against SL over a range of sample budgets, from a finished demo.

For each seed of the demo, from its SFT policy and reward model:

    ppo       one long run to the largest budget, its lr constant after the warm-up, the policy
              kept at each budget (so each kept policy is the run of that many episodes)
    gold_ppo  the same with the gold judge as its reward: the upper bound of RL (its value model
              starts from the SFT policy with a new head, there being no reward model to start from)
    rsft      one run per budget (rounds x prompts x sample_n samples)
    bon       best-of-n on the test prompts up to bon_n: gold score against KL, picked by the reward
              model and by the gold judge (the selection ceiling); n samples per query

then every policy on the demo's held-out prompts. The report gives win rate, gold score and KL at
each budget (mean and 95% CI over seeds), each pair of trained methods' difference seed by seed
(with its CI), and Gao et al. (2022)'s forms fitted to gold gain against KL for ppo, gold_ppo, rsft
and best-of-n.

    rlhfkit demo --out runs/demo --seeds 3
    rlhfkit sweep --demo runs/demo --seeds 3 --samples 2560,7680,30720 --out runs/sweep

Each seed is a job (OUT/seed<i>/job.json holds its results): `--only_seed i` runs one seed, in its
own process or on another machine whose OUT/seed<i>/job.json is copied back, and the report covers
every seed finished so far. `--join OTHER` adds the methods of another sweep from the same demo
(gold_ppo run on its own, say) to each seed's, so the report pairs them seed by seed.
"""
from __future__ import annotations

import json
import os
import statistics
import time
from dataclasses import replace
from pathlib import Path

from rlhfkit.config import (BestOfNConfig, EvalConfig, RLConfig, RSFTConfig, SampleConfig, SweepConfig, TaskConfig,
                            to_dict)
from rlhfkit.data.records import read_records
from rlhfkit.errors import InputError
from rlhfkit.evaluate import probes
from rlhfkit.evaluate import run as evaluate
from rlhfkit.evaluate.metrics import seed_interval
from rlhfkit.evaluate.sweep_report import write_sweep_report
from rlhfkit.pipelines.demo import gold_hook, mean_tree
from rlhfkit.tasks.tldr import oracle
from rlhfkit.tasks.tldr.world import make_split
from rlhfkit.train import best_of_n as bon
from rlhfkit.train import rejection, rl
from rlhfkit.train.job import Job, differences, without_ignored

# the demo's options that shape what the sweep starts from and evaluates on
START_FIELDS = ("base_model", "task", "sft", "label_budget", "label_k", "label_temperature", "rm", "rm_readout",
                "rm_likelihood_weight", "n_prompts", "eval")


def demo_settings(demo: Path) -> tuple[TaskConfig, SampleConfig, int, dict]:
    """The finished demo's world, sampling, number of held-out prompts, and the options that made
    each seed's SFT policy and reward model (part of each seed's job)."""
    try:
        config = json.loads((demo / "results.json").read_text())["config"]
    except (OSError, ValueError, KeyError):
        raise InputError(f"sweep: {demo} holds no finished `rlhfkit demo` (its results.json with the config); "
                         f"run the demo first, or give --demo DIR") from None
    start = without_ignored({k: config.get(k) for k in START_FIELDS})
    return TaskConfig(**config["task"]), SampleConfig(**config["eval"]), config["n_prompts"], start


def train_ppo(cfg: SweepConfig, method: str, seed: int, start: Path, d: Path, task: TaskConfig,
              sample: SampleConfig) -> dict[str, str]:
    """One PPO run to the largest budget, kept at each: {f"{method}@{samples}": policy dir}."""
    iterations = {b: b // cfg.rl.prompts_per_step for b in cfg.budgets}
    posts = make_split(task.seed, "train", task.n_train)
    gold = oracle.gold_reward_for({p.prompt: p.facts for p in posts}) if method == "gold_ppo" else None
    keep = ",".join(str(i) for i in iterations.values())
    rl.run(RLConfig(algo="ppo", policy=str(start / "sft"), reward_model="" if gold else str(start / "rm"),
                    out=str(d / method), resume=cfg.resume, task=task, ppo=cfg.ppo, sample=sample,
                    rl=replace(cfg.rl, seed=seed, steps=max(iterations.values()), keep_at=keep)),
           reward_fn=gold, on_step=gold_hook(posts))
    return {f"{method}@{b}": str(d / method / f"at{i}" / "model") for b, i in iterations.items()}


def train_rsft(cfg: SweepConfig, seed: int, start: Path, d: Path, task: TaskConfig,
               sample: SampleConfig) -> dict[str, str]:
    """One RSFT run per budget: {f"rsft@{samples}": policy dir}."""
    out = {}
    for b in cfg.budgets:
        r = rejection.run_rsft(RSFTConfig(policy=str(start / "sft"), reward_model=str(start / "rm"), n=cfg.sample_n,
                                          rounds=cfg.rsft_rounds,
                                          prompts_per_round=b // (cfg.rsft_rounds * cfg.sample_n),
                                          out=str(d / f"rsft{b}"), resume=cfg.resume, task=task, sample=sample,
                                          train=replace(cfg.sl, seed=seed)))
        out[f"rsft@{b}"] = r["out"]
    return out


def run_seed(cfg: SweepConfig, seed: int, start: Path, d: Path, task: TaskConfig, sample: SampleConfig,
             n_prompts: int) -> dict:
    """Train every method at every budget from the demo's seed, then evaluate them together."""
    own = replace(sample, seed=20_000 + seed)      # the methods' own draws, as in the demo
    policies = {"sft": str(start / "sft")}
    for method in cfg.method_list:
        if method in ("ppo", "gold_ppo"):
            policies |= train_ppo(cfg, method, seed, start, d, task, sample)
        elif method == "rsft":
            policies |= train_rsft(cfg, seed, start, d, task, own)
    results = evaluate.run(EvalConfig(policies=",".join(f"{k}={v}" for k, v in policies.items()),
                                      kl_ref=str(start / "sft"), out=str(d), n_prompts=n_prompts, task=task,
                                      sample=sample))
    if "bon" in cfg.method_list:
        bon.run(BestOfNConfig(policy=str(start / "sft"), reward_model=str(start / "rm"), n=cfg.bon_n,
                              n_prompts=n_prompts, out=str(d / "bon"), resume=cfg.resume, task=task, sample=own))
        records = [r for _, r in read_records(d / "bon" / "completions.jsonl")]
        posts = make_split(task.seed, "test", task.n_test)[:n_prompts]
        results["bon_curve"] = probes.best_of_n_curve(records, posts)
        results["oracle_share"] = probes.oracle_share(records, posts)
    return results


def seed_job(cfg: SweepConfig, seed: int, d: Path, demo_config: dict) -> Job:
    """One seed's sweep as a job: the sweep's options, the seed and the demo's config (what made its
    SFT policy and reward model) identify it, so its results can be finished in another process or
    on another machine and copied in."""
    return Job.begin("sweep", replace(cfg, only_seed=-1, seeds=1, demo="", join=""), out=d,
                     extra={"seed": seed, "demo": demo_config})


def seed_results(cfg: SweepConfig, seed: int, demo: Path, out: Path, settings: tuple) -> dict:
    """One seed's results: run, or read back when an earlier run finished it."""
    job = seed_job(cfg, seed, out / f"seed{seed}", settings[3])
    if job.result is not None:
        return job.result
    results = run_seed(cfg, seed, demo / f"seed{seed}", out / f"seed{seed}", *settings[:3])
    # "out" the job's own directory, wherever the sweep lies: a seed's record copied in from another
    # machine, or a sweep directory moved, stays finished
    return job.finish(results | {"out": "."})


def finished_elsewhere(cfg: SweepConfig, out: Path, demo_config: dict, skip: set[int]) -> dict[int, dict]:
    """{seed: results} of the other seeds this sweep has finished (another process or machine);
    another job's are refused."""
    return {s: job.result for s in range(cfg.seeds) if s not in skip and (out / f"seed{s}" / "job.json").is_file()
            and (job := seed_job(cfg, s, out / f"seed{s}", demo_config)).result is not None}


def same_evaluation(a: dict | None, b: dict) -> bool:
    """Whether two evaluations of one policy drew the same answers: their win rate and gold score
    agree (a KL of a policy to itself is rounding noise, so it is left out)."""
    return a is not None and a["winrate_vs_reference"] == b["winrate_vs_reference"] and \
        abs(a["gold_score_mean"] - b["gold_score_mean"]) < 1e-9


def joined(done: dict[int, dict], other: Path, demo_config: dict) -> dict[int, dict]:
    """Each seed's results with the methods another sweep from the same demo trained at that seed
    (this sweep's own win where both have one). Both evaluated on the demo's held-out prompts with
    the same draws, so their SFT rows must agree: one that does not was evaluated otherwise."""
    out = {}
    for seed, results in done.items():
        path = other / f"seed{seed}" / "job.json"
        try:
            record = json.loads(path.read_text())
            theirs, fingerprint = record["result"]["methods"], record["fingerprint"]
        except (OSError, ValueError, KeyError, TypeError):
            raise InputError(f"sweep: --join {other}: seed {seed} is not finished there ({path}); finish it, or "
                             f"report without --join") from None
        diff = differences(without_ignored(fingerprint.get("demo") or {}), demo_config)
        if diff or fingerprint.get("seed") != seed:
            why = ", ".join(diff[:4]) + " differ" if diff else f"its seed is {fingerprint.get('seed')}"
            raise InputError(f"sweep: --join {path} did not start from this sweep's demo seed {seed} ({why})")
        if not same_evaluation(theirs.get("sft"), results["methods"]["sft"]):
            raise InputError(f"sweep: --join {path}: its SFT evaluation differs from this sweep's (another "
                             f"rlhfkit or other eval settings), so its methods do not compare with these")
        out[seed] = results | {"methods": results["methods"] | {k: v for k, v in theirs.items()
                                                                if k not in results["methods"]}}
    return out


def interval(values: list[float]) -> dict:
    """Mean and 95% CI over seeds; one seed: the value, with no interval."""
    if len(values) > 1:
        return seed_interval(values)
    return {"mean": values[0], "ci_low": None, "ci_high": None}


# method pairs compared seed by seed at each budget both ran: (a, b) reads "a minus b"
PAIRS = (("rsft", "ppo"), ("gold_ppo", "ppo"), ("gold_ppo", "rsft"))


def paired_differences(per_seed: list[dict]) -> list[dict]:
    """Win rate and gold score of a minus b, per seed, then mean and CI over seeds: a paired test,
    tighter than comparing the two methods' intervals when seeds move both the same way."""
    rows = []
    methods = per_seed[0]["methods"]
    for a, b in PAIRS:
        budgets = sorted({int(n.partition("@")[2]) for n in methods if n.startswith(a + "@")}
                         & {int(n.partition("@")[2]) for n in methods if n.startswith(b + "@")})
        for n in budgets:
            runs = [(r["methods"][f"{a}@{n}"], r["methods"][f"{b}@{n}"]) for r in per_seed]
            rows.append({"a": a, "b": b, "samples": n,
                         "winrate": interval([x["winrate_vs_reference"]["mean"] - y["winrate_vs_reference"]["mean"]
                                              for x, y in runs]),
                         "gold": interval([x["gold_score_mean"] - y["gold_score_mean"] for x, y in runs])})
    return rows


def aggregate(per_seed: list[dict]) -> dict:
    """Per method and budget: win rate and gold score (mean, CI over seeds), KL; best-of-n's curve;
    Gao et al.'s forms fitted to gold gain over SFT against KL."""
    rows = []
    for name in per_seed[0]["methods"]:
        method, _, samples = name.partition("@")
        runs = [r["methods"][name] for r in per_seed]
        rows.append({"method": method, "samples": int(samples) if samples else 0,
                     "winrate": interval([m["winrate_vs_reference"]["mean"] for m in runs]),
                     "gold": interval([m["gold_score_mean"] for m in runs]),
                     "kl": statistics.fmean(m["kl_to_sft"] for m in runs),
                     "contradiction": statistics.fmean(m["failure_rates"]["contradiction"] for m in runs)})
    sft_gold = statistics.fmean(r["methods"]["sft"]["gold_score_mean"] for r in per_seed)
    fits = {}
    for method in ("ppo", "gold_ppo", "rsft"):
        points = [(m["kl_to_sft"], m["gold_score_mean"] - r["methods"]["sft"]["gold_score_mean"])
                  for r in per_seed for n, m in r["methods"].items() if n.startswith(method + "@")]
        if points:
            fits[method] = probes.fit_gao(points, "rl")
    out = {"rows": rows, "differences": paired_differences(per_seed), "sft_gold": sft_gold, "fits": fits,
           "seeds": len(per_seed)}
    if "bon_curve" in per_seed[0]:
        curve = mean_tree([r["bon_curve"] for r in per_seed])
        out["bon_curve"] = curve
        out["oracle_share"] = statistics.fmean(r["oracle_share"] for r in per_seed)
        fits["bon"] = probes.fit_gao([(c["kl"], c["gold"] - curve[0]["gold"]) for c in curve], "bon")
    return out


def run(cfg: SweepConfig) -> dict:
    cfg.validate()
    demo, out, t0 = Path(cfg.demo), Path(cfg.out), time.time()
    settings = demo_settings(demo)
    task = settings[0]
    prompts = max(cfg.budgets) // (cfg.rsft_rounds * cfg.sample_n)
    if "rsft" in cfg.method_list and prompts > task.n_train:
        raise InputError(f"sweep: rsft at {max(cfg.budgets)} samples needs {prompts} prompts a round; the demo's "
                         f"world has {task.n_train} training prompts (more rounds or a larger sample_n)")
    to_run = [cfg.only_seed] if cfg.only_seed >= 0 else list(range(cfg.seeds))
    missing = next((demo / f"seed{s}" for s in to_run if not (demo / f"seed{s}" / "rm").is_dir()), None)
    if missing is not None:
        raise InputError(f"sweep: {missing} holds no reward model (rm/): the demo ran fewer seeds than --seeds "
                         f"{cfg.seeds}")
    done = {s: seed_results(cfg, s, demo, out, settings) for s in to_run}
    done = dict(sorted((done | finished_elsewhere(cfg, out, settings[3], set(done))).items()))
    if cfg.join:
        done = joined(done, Path(cfg.join), settings[3])
    results = aggregate(list(done.values())) | {"seed_list": list(done), "config": to_dict(cfg),
                                                "wall_time_s": round(time.time() - t0, 1)}
    tmp = out / f"results.json.{os.getpid()}.tmp"      # seeds finishing in several processes at once
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    tmp.replace(out / "results.json")
    write_sweep_report(out, results)
    return {"out": str(out), "wall_time_s": results["wall_time_s"],
            "rows": [{k: r[k] for k in ("method", "samples", "winrate", "kl")} for r in results["rows"]]}
