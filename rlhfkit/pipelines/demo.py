"""`rlhfkit demo`: the built-in RL-vs-SL experiment, end to end, in one command.

    world -> SFT (from the shipped base model) -> sample K answers per prompt from SFT
          -> simulated labelers rank them (label budget) -> reward model
          -> PPO (and RLOO / GRPO with --methods) -> eval of base, SFT and each RL policy
          -> results.json, report.md, report.html

The gold judge scores the held-out evaluation and, as a diagnostic the trainer never sees,
the PPO rollouts (the over-optimisation curve); the labelers use it as people use their
judgement. With --seeds N every training stage runs N times and the report gives mean and CI.

    rlhfkit demo --out runs/demo
    rlhfkit demo --out runs/demo3 --seeds 3 --methods ppo,rloo,grpo
"""
from __future__ import annotations

import json
import random
import statistics
import time
from dataclasses import replace
from pathlib import Path


from rlhfkit.config import (GOLD_METHODS, RL_METHODS, BestOfNConfig, DataTldrConfig, DemoConfig, DPOConfig, EvalConfig,
                            RLConfig, RMConfig, RSFTConfig, RWSFTConfig, SampleConfig, SFTConfig, SLiCConfig, to_dict,
                            trained_as)
from rlhfkit.config.report import spread_report_to
from rlhfkit.data.records import Comparison, read_records, write_jsonl
from rlhfkit.evaluate import claims, probes
from rlhfkit.evaluate import run as evaluate
from rlhfkit.evaluate.report import write_html, write_markdown
from rlhfkit.evaluate.reward_model import merge_by_difference, reward_model_report
from rlhfkit.evaluate.metrics import seed_interval
from rlhfkit.models.heads import load_scalar_model
from rlhfkit.models.lm import context_length, load_causal_lm
from rlhfkit.tasks.tldr import export, oracle
from rlhfkit.tasks.tldr.labelers import LABELERS, rank
from rlhfkit.tasks.tldr.labels import prompts_for_budget, rank_answers
from rlhfkit.tasks.tldr.world import Post, make_split
from rlhfkit.train import best_of_n as bon
from rlhfkit.train import preference, rejection, reward_model, rl, sft
from rlhfkit.train.reward_model import encode_comparison, score_groups


# The world's tokenizer has no " yes" or " no" token; the verdict read-out asks in the world's own words
WORLD_VERDICT = {"verdict_prompt": "\nThe TL;DR is", "verdict_yes": " right", "verdict_no": " not"}

def sample_answers(policy_dir: Path, posts: list[Post], k: int, sample: SampleConfig) -> list[list[str]]:
    """k answers per post from a policy."""
    model, tok = load_causal_lm(policy_dir)
    prompts = [p.prompt for p in posts for _ in range(k)]
    texts = evaluate.sample_policy(model, tok, prompts, sample, desc="sample for labels")[0]
    return [texts[i * k:(i + 1) * k] for i in range(len(posts))]


def label_pairs(posts: list[Post], answers: list[list[str]], seed: int) -> tuple[list[dict], float]:
    """Held-out pairs labelled by one labeler, and a second labeler's agreement with the first."""
    rng = random.Random(f"valid-labels-{seed}")
    records, agree = [], []
    for post, (a, b) in zip(posts, answers, strict=True):
        first, second = rng.sample(LABELERS, 2)
        order = rank(first, [a, b], post.facts, rng)
        same = order == rank(second, [a, b], post.facts, rng)
        if a == b:      # twins hold no preference (`rlhfkit rm` refuses them); the draws above keep the others' labels
            continue
        agree.append(same)
        records.append({"prompt": post.prompt, "chosen": [a, b][order[0]], "rejected": [a, b][order[1]],
                        "labeler": first.name})
    return records, statistics.fmean(agree)


def gold_hook(posts: list[Post]):
    """Mean gold score of each iteration's rollouts: a diagnostic the trainer only logs."""
    gold = oracle.gold_reward_for({p.prompt: p.facts for p in posts})

    def hook(step: int, prompts: list[str], completions: list[str], proxy: list[float]) -> dict:
        return {"gold": statistics.fmean(gold(prompts, completions))}
    return hook


class Stopwatch:
    """Seconds per stage, for the report (a killed and resumed demo counts the resumed part)."""
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._t = time.time()

    def lap(self, name: str) -> None:
        now = time.time()
        self.seconds[name] = round(now - self._t, 1)
        self._t = now


def run_seed(cfg: DemoConfig, seed: int, d: Path, data: Path) -> dict:
    task, clock = cfg.task, Stopwatch()
    # ---- 1. SFT on the reference TL;DRs
    # (each stage skips its own finished job, resumes its checkpoint, or refuses another job's)
    sft_result = sft.run(SFTConfig(model=cfg.base_model, data=str(data / "sft_train.jsonl"),
                                   valid_data=str(data / "sft_valid.jsonl"), out=str(d / "sft"), resume=cfg.resume,
                                   task=task, train=replace(cfg.sft, seed=seed)))
    clock.lap("sft")
    # ---- 2. Sample K answers per prompt from SFT; the simulated labelers rank them
    train_posts = make_split(task.seed, "train", task.n_train)
    n_label = min(len(train_posts), prompts_for_budget(cfg.label_budget, cfg.label_k))
    label_sample = replace(cfg.eval, temperature=cfg.label_temperature, seed=10_000 + seed)
    valid_posts = make_split(task.seed, "valid", task.n_valid)
    if not (cfg.resume and (d / "labels" / "agreement.json").is_file()):   # a function of SFT and the seed
        answers = sample_answers(d / "sft", train_posts[:n_label], cfg.label_k, label_sample)
        write_jsonl(d / "labels" / "rankings.jsonl", rank_answers(train_posts[:n_label], answers, seed))
        valid_answers = sample_answers(d / "sft", valid_posts, 2, label_sample)
        valid_records, agreement = label_pairs(valid_posts, valid_answers, seed)
        write_jsonl(d / "labels" / "valid.jsonl", valid_records)
        (d / "labels" / "agreement.json").write_text(json.dumps({"labeler_agreement": agreement}))
    labeler_agreement = json.loads((d / "labels" / "agreement.json").read_text())["labeler_agreement"]
    valid_records = [r for _, r in read_records(d / "labels" / "valid.jsonl")]
    clock.lap("labels")
    # ---- 3. Reward model on those labels
    reward_model.run(RMConfig(model=str(d / "sft"), data=str(d / "labels" / "rankings.jsonl"),
                              valid_data=str(d / "labels" / "valid.jsonl"), out=str(d / "rm"), resume=cfg.resume,
                              readout=cfg.rm_readout, likelihood_weight=cfg.rm_likelihood_weight,
                              **(WORLD_VERDICT if cfg.rm_readout == "verdict" else {}),
                              train=replace(cfg.rm, seed=seed)))
    rm_report = score_reward_model(d / "rm", valid_posts, valid_records)
    rm_report.update(labeler_agreement=labeler_agreement, comparisons=n_label * (cfg.label_k * (cfg.label_k - 1) // 2))
    clock.lap("rm")
    # ---- 4. Every method on the same SFT policy, labels and reward model
    policies = {"base": cfg.base_model, "sft": str(d / "sft")}
    extra: dict[str, dict] = {}
    for method in cfg.method_list:
        policies[method], extra[method] = train_method(cfg, method, seed, d, train_posts)
        clock.lap(method)
    # ---- 5. Every policy on the same held-out prompts
    results = evaluate.run(EvalConfig(policies=",".join(f"{k}={v}" for k, v in policies.items()),
                                      kl_ref=str(d / "sft"), out=str(d), n_prompts=cfg.n_prompts, task=task,
                                      sample=cfg.eval))
    attach_budgets(results["methods"], extra | {"sft": {"budget": spent(sft_result)}}, rm_report["comparisons"])
    results["reward_model"] = rm_report
    results["curves"] = {a: [json.loads(line) for line in (d / a / "log.jsonl").read_text().splitlines()]
                         for a in cfg.method_list if a in RL_METHODS}
    clock.lap("eval")
    # ---- 6. The measurements behind the "Why RL" claims
    test_posts = make_split(task.seed, "test", task.n_test)[:cfg.n_prompts]
    sft_model, tok = load_causal_lm(d / "sft")
    rm_model, _ = load_scalar_model(d / "rm")
    results["negation_probe"] = probes.negation_probe(sft_model, tok, rm_model, test_posts[:200], seed)
    if "bon" in cfg.method_list:
        records = [r for _, r in read_records(d / "bon" / "completions.jsonl")]
        results["bon_curve"] = probes.best_of_n_curve(records, test_posts)
        results["oracle_share"] = probes.oracle_share(records, test_posts)
    clock.lap("probes")
    results["stage_seconds"] = clock.seconds
    write_seed_report(d, results)
    return results


def attach_budgets(methods: dict, extra: dict[str, dict], comparisons: int) -> None:
    """Add each trained method's extra results to its evaluation, its budget completed with the
    comparisons it learned from (all of them; SFT and the gold upper bounds none) and the KL it ended at."""
    for method, info in extra.items():
        methods[method].update(info)
        methods[method]["budget"].update(comparisons=0 if method in ("sft", *GOLD_METHODS) else comparisons,
                                         kl_to_sft=methods[method]["kl_to_sft"])


def write_seed_report(d: Path, results: dict) -> None:
    """The seed's results.json and report.md with all it measured (eval wrote only the methods')."""
    tmp = d / "results.json.tmp"
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    tmp.replace(d / "results.json")
    # the report takes curves and stage times as lists over seeds
    view = results | {"curves": {a: [log] for a, log in results["curves"].items()},
                      "stage_seconds": [results["stage_seconds"]]}
    write_markdown(d / "report.md", view, json.loads((d / "examples.json").read_text()))


def train_method(cfg: DemoConfig, method: str, seed: int, d: Path, train_posts: list[Post]) -> tuple[str, dict]:
    """Train (or, for best-of-n, write the answers of) one method; (its policy for eval, extra stats)."""
    sft_dir, rm_dir, labels, out, task = str(d / "sft"), str(d / "rm"), d / "labels", str(d / method), cfg.task
    sample = replace(cfg.eval, seed=20_000 + seed)        # the methods' own draws, not the eval's
    if method == "bon":     # on the eval prompts, at the eval's temperature
        r = bon.run(BestOfNConfig(policy=sft_dir, reward_model=rm_dir, n=cfg.bon_n, n_prompts=cfg.n_prompts, out=out,
                                  resume=cfg.resume, task=task, sample=sample))
        return str(d / method / "completions.jsonl"), {"budget": spent(r) | {"inference_time": True}}
    if method in ("dpo", "ipo"):
        r = preference.run_dpo(DPOConfig(model=sft_dir, data=str(labels / "rankings.jsonl"),
                                         valid_data=str(labels / "valid.jsonl"), out=out, loss=method,
                                         resume=cfg.resume,
                                         beta=cfg.dpo_beta if method == "dpo" else cfg.ipo_beta,
                                         train=replace(cfg.pref, seed=seed)))
        return out, {"ranking_accuracy": r["valid_accuracy"], "budget": spent(r)}
    if method == "slic":
        r = preference.run_slic(SLiCConfig(model=sft_dir, data=str(labels / "rankings.jsonl"),
                                           valid_data=str(labels / "valid.jsonl"), out=out, resume=cfg.resume,
                                           train=replace(cfg.pref, seed=seed)))
        return out, {"ranking_accuracy": r["valid_accuracy"], "budget": spent(r)}
    return train_sampler(cfg, method, seed, d, train_posts, sample)


def train_sampler(cfg: DemoConfig, method: str, seed: int, d: Path, train_posts: list[Post],
                  sample: SampleConfig) -> tuple[str, dict]:
    """Train a method that samples and scores its own answers (rsft, rwsft, the RL methods), with
    the reward model or, for a gold upper bound, the gold judge as its reward."""
    out, task, algo = str(d / method), cfg.task, trained_as(method)
    samples, per_unit = cfg.method_samples(method), cfg.samples_per_unit(method)
    units = samples // per_unit if samples and per_unit else None
    gold = oracle.gold_reward_for({p.prompt: p.facts for p in train_posts}) if method in GOLD_METHODS else None
    rm_dir = "" if gold else str(d / "rm")
    if algo == "rsft":
        r = rejection.run_rsft(RSFTConfig(policy=str(d / "sft"), reward_model=rm_dir, n=cfg.sample_n,
                                          rounds=cfg.rsft_rounds, out=out, resume=cfg.resume, task=task, sample=sample,
                                          **({"prompts_per_round": units} if units else {}),
                                          train=replace(cfg.sl, seed=seed)), reward_fn=gold)
        return out, {"budget": spent(r)}
    if algo == "rwsft":
        r = rejection.run_rwsft(RWSFTConfig(policy=str(d / "sft"), reward_model=rm_dir, n=cfg.sample_n,
                                            tau=cfg.rwsft_tau, alpha=cfg.rwsft_alpha, out=out, resume=cfg.resume,
                                            task=task, sample=sample, **({"n_prompts": units} if units else {}),
                                            train=replace(cfg.sl, seed=seed)))
        return out, {"budget": spent(r)}
    r = rl.run(RLConfig(algo=algo, policy=str(d / "sft"), reward_model=rm_dir, out=out, resume=cfg.resume, task=task,
                        rl=replace(cfg.rl, seed=seed, **({"steps": units} if units else {})), ppo=cfg.ppo,
                        grpo=cfg.grpo, sample=cfg.eval),
               reward_fn=gold, on_step=gold_hook(train_posts))
    return out, {"budget": spent(r)}


def spent(result: dict) -> dict:
    """A stage's budget (`train.loop.budget`) and wall seconds; a job finished by an older rlhfkit
    recorded neither."""
    return dict(result.get("budget", {})) | ({"seconds": result["seconds"]} if "seconds" in result else {})


def score_reward_model(rm_dir: Path, posts: list[Post], records: list[dict]) -> dict:
    """The reward model on held-out labelled pairs: accuracy vs labels and gold, calibration."""
    model, tok = load_scalar_model(rm_dir)
    groups = [encode_comparison(Comparison(r["prompt"], (r["chosen"], r["rejected"])), tok, context_length(model))
              for r in records]
    scores = score_groups(model, groups, tok.pad_token_id)
    facts = {p.prompt: p.facts for p in posts}     # a post whose two answers were twins has no record
    pairs = [(facts[r["prompt"]], r["chosen"], r["rejected"]) for r in records]
    return reward_model_report(pairs, [(s[0], s[1]) for s in scores])


def mean_tree(trees: list):
    """The element-wise mean of same-shaped nested dicts / lists of numbers (other leaves: the first)."""
    first = trees[0]
    if isinstance(first, dict):
        return {k: mean_tree([t[k] for t in trees]) for k in first}
    if isinstance(first, list):
        return [mean_tree(list(items)) for items in zip(*trees)]
    if isinstance(first, (int, float)) and not isinstance(first, bool):
        return statistics.fmean(trees)
    return first


def aggregate(per_seed: list[dict]) -> dict:
    """Mean and CI over seeds (one seed: the bootstrap CI over prompts of that run)."""
    first = per_seed[0]
    methods = {}
    for name in first["methods"]:
        rows = [r["methods"][name] for r in per_seed]
        if len(rows) == 1:
            methods[name] = rows[0]
            continue
        wins = [r["winrate_vs_reference"]["mean"] for r in rows]
        kls = [r["kl_to_sft"] for r in rows]
        methods[name] = {
            "winrate_vs_reference": seed_interval(wins),
            "gold_score_mean": statistics.fmean(r["gold_score_mean"] for r in rows),
            "kl_to_sft": statistics.fmean(kls) if None not in kls else None,
            "length_mean": statistics.fmean(r["length_mean"] for r in rows),
            "failure_rates": {k: statistics.fmean(r["failure_rates"][k] for r in rows)
                              for k in rows[0]["failure_rates"]},
            "n_prompts": rows[0]["n_prompts"],
            "per_seed": [{"winrate": w, "kl_to_sft": kl} for w, kl in zip(wins, kls)],
        }
        if "ranking_accuracy" in rows[0]:
            methods[name]["ranking_accuracy"] = statistics.fmean(r["ranking_accuracy"] for r in rows)
        if all("budget" in r for r in rows):
            methods[name]["budget"] = mean_tree([r["budget"] for r in rows])
    rm = {k: statistics.fmean(r["reward_model"][k] for r in per_seed)
          for k in ("accuracy_vs_labels", "accuracy_vs_gold", "labeler_agreement")}
    rm.update({k: first["reward_model"][k] for k in ("calibration", "length_correlation", "comparisons", "n_pairs")})
    rm["accuracy_vs_gold_by_difference"] = merge_by_difference(
        [r["reward_model"]["accuracy_vs_gold_by_difference"] for r in per_seed])
    rm["per_seed"] = [{k: r["reward_model"][k] for k in ("accuracy_vs_labels", "accuracy_vs_gold")} for r in per_seed]
    out = {"task": first["task"], "methods": methods, "reward_model": rm,
           "curves": {a: [r["curves"][a] for r in per_seed] for a in first["curves"]}, "seeds": len(per_seed),
           "negation_probe": mean_tree([r["negation_probe"] for r in per_seed]),
           "stage_seconds": [r["stage_seconds"] for r in per_seed]}
    out["gold_vs_kl"] = gold_vs_kl(per_seed)
    if "oracle_share" in first:
        out["oracle_share"] = statistics.fmean(r["oracle_share"] for r in per_seed)
    out["claims"] = claims.decide(out)
    return out


def gold_vs_kl(per_seed: list[dict]) -> dict:
    """Gold score against KL to SFT for best-of-n (analytic KL, n = 1, 2, 4, ...) and for PPO (its
    training rollouts at each iteration), each with Gao et al.'s form fitted to the gain over SFT."""
    out = {}
    if "bon_curve" in per_seed[0]:
        curve = mean_tree([r["bon_curve"] for r in per_seed])
        points = [(c["kl"], c["gold"] - curve[0]["gold"]) for c in curve]
        out["bon"] = {"points": curve, "fit": probes.fit_gao(points, "bon")}
    if "ppo" in per_seed[0]["curves"]:
        points = [(row["kl"], row["gold"] - log[0]["gold"]) for r in per_seed for log in [r["curves"]["ppo"]]
                  for row in log[1:]]
        out["ppo"] = {"points": [{"kl": k, "gain": g} for k, g in points], "fit": probes.fit_gao(points, "rl")}
    return out


def run(cfg: DemoConfig) -> dict:
    cfg.validate()
    cfg = spread_report_to(cfg)
    out = Path(cfg.out)
    t0 = time.time()
    # ---- The world's data sets, as files a user can inspect
    data = out / "data"
    export.run(DataTldrConfig(out=str(data), task=cfg.task))
    # ---- The pipeline, once per seed
    per_seed = [run_seed(cfg, seed, out / f"seed{seed}", data) for seed in range(cfg.seeds)]
    results = aggregate(per_seed) | {"config": to_dict(cfg), "wall_time_s": round(time.time() - t0, 1)}
    examples = json.loads((out / "seed0" / "examples.json").read_text())
    tmp = out / "results.json.tmp"
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    tmp.replace(out / "results.json")
    write_markdown(out / "report.md", results, examples)
    write_html(out / "report.html", results, examples)
    return {"out": str(out), "wall_time_s": results["wall_time_s"],
            "winrate_vs_reference": {k: v["winrate_vs_reference"] for k, v in results["methods"].items()},
            "reward_model": {k: results["reward_model"][k] for k in ("accuracy_vs_labels", "accuracy_vs_gold",
                                                                      "labeler_agreement")}}
