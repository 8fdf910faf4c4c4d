"""`rlhfkit vader`: RLHF on a real pretrained model from real human ratings, offline on a CPU.

    human sentiment ratings (VADER data) -> comparisons -> reward model (SmolLM2 backbone)
    SmolLM2-135M-Instruct -> { SFT on positive sentences, best-of-n, DPO, PPO } -> continue held-out
    review openings -> judges the training never saw -> report.md, results.json

The task is Ziegler et al. (2019)'s positive continuation: given the first words of a movie-review
sentence, continue it so that people would rate it more positive, with a KL penalty to the start
model keeping the text fluent. Every method starts from the untouched SmolLM2 (the KL reference);
the reward model and DPO learn from the same human comparisons. Judges: VADER's rule-based
scorer (its lexicon was rated by other people, word by word), the reward model on held-out
continuations, perplexity under the untouched SmolLM2 (fluency), and KL to it.

    pip install -e '.[smollm2]' torch==2.13.0
    rlhfkit vader --out runs/vader                      # or --config configs/vader.smollm2.yaml

A stage whose output exists is skipped, so a killed run picks up where it was (and the stages
resume from their own checkpoints).
"""
from __future__ import annotations

import json
import statistics
import time
from dataclasses import replace
from pathlib import Path

from rlhfkit.config import BestOfNConfig, DPOConfig, RLConfig, RMConfig, SFTConfig, to_dict
from rlhfkit.data.collate import encode_demonstration
from rlhfkit.data.records import Demonstration, load_comparisons, read_records, write_jsonl
from rlhfkit.evaluate.fluency import perplexity
from rlhfkit.evaluate.run import sample_policy
from rlhfkit.models.config import ModelImportConfig
from rlhfkit.models.heads import load_scalar_model
from rlhfkit.models.lm import context_length, load_causal_lm
from rlhfkit.pipelines.vader_report import write_report
from rlhfkit.tasks.vader.config import DataVaderConfig, VaderExperimentConfig
from rlhfkit.tasks.vader.judges import vader_compound
from rlhfkit.train import best_of_n, preference, reward_model, rl, sft
from rlhfkit.train.reward_model import encode_comparison, pair_accuracy, score_groups

POSITIVE = 0.05     # VADER's own threshold for a positive compound score


def done(path: Path) -> bool:
    return (path / "model" / "config.json").is_file() or (path / "config.json").is_file() or path.is_file()


# ---- Data and start model ---------------------------------------------------------------------
def prepare(cfg: VaderExperimentConfig, out: Path) -> tuple[Path, Path]:
    """(data dir, start model dir): the human comparisons and the imported model."""
    data = out / "data"
    if not (data / "stats.json").is_file():
        from rlhfkit.tasks.vader import export
        export.run(DataVaderConfig(out=str(data), archive=cfg.archive, n_pairs_train=cfg.rm_pairs))
    base = Path(cfg.base_dir) if cfg.model == "smollm2" else Path(cfg.model)
    if cfg.model == "smollm2" and not done(base):
        from rlhfkit.models import hub
        hub.run(ModelImportConfig(source="smollm2", out=str(base)))
    prompts = [r["prompt"] for _, r in read_records(data / "prompts_test.jsonl")][:cfg.n_prompts]
    write_jsonl(data / "eval_prompts.jsonl", [{"prompt": p} for p in prompts])
    return data, base


# ---- The methods ------------------------------------------------------------------------------
def train_method(cfg: VaderExperimentConfig, method: str, out: Path, data: Path, base: Path) -> str:
    """Train one method (or write best-of-n's answers); returns its policy: a directory or a JSONL file."""
    # each stage skips its own finished job, resumes its checkpoint, or refuses another job's
    d = out / method
    if method == "bon":
        best_of_n.run(BestOfNConfig(policy=str(base), reward_model=str(out / "rm"), n=cfg.bon_n,
                                    eos_trick=False, prompts=str(data / "eval_prompts.jsonl"), out=str(d),
                                    resume=cfg.resume, sample=replace(cfg.sample, seed=cfg.sample.seed + 1)))
        return str(d / "completions.jsonl")
    if method == "sft":
        sft.run(SFTConfig(model=str(base), data=str(data / "sft_train.jsonl"),
                          valid_data=str(data / "sft_valid.jsonl"), out=str(d), resume=cfg.resume, train=cfg.sft))
    elif method == "dpo":
        preference.run_dpo(DPOConfig(model=str(base), data=str(data / "comparisons_train.jsonl"),
                                     valid_data=str(data / "comparisons_valid.jsonl"), out=str(d),
                                     resume=cfg.resume, beta=cfg.dpo_beta, train=cfg.dpo))
    else:
        rl.run(RLConfig(algo="ppo", policy=str(base), reward_model=str(out / "rm"), resume=cfg.resume,
                        prompts=str(data / "prompts_train.jsonl"), out=str(d), rl=cfg.rl, sample=cfg.sample))
    return str(d)


# ---- Evaluation -------------------------------------------------------------------------------
def rm_scores(rm, tok, prompts: list[str], completions: list[str]) -> list[float]:
    max_len = context_length(rm)
    groups = [[encode_demonstration(Demonstration(p, c), tok, max_len)] for p, c in zip(prompts, completions)]
    return [g[0] for g in score_groups(rm, groups, tok.pad_token_id)]


def answers(name: str, policy: str, prompts: list[str], cfg: VaderExperimentConfig, base_model) -> tuple[list[str], float]:
    """(continuations of the eval prompts, mean KL to the start model)."""
    if policy.endswith(".jsonl"):
        by_prompt = {r["prompt"]: r for _, r in read_records(policy)}
        return [by_prompt[p]["completion"] for p in prompts], by_prompt[prompts[0]]["kl_to_sft"]
    model, tok = load_causal_lm(policy)
    texts, _, _, kls = sample_policy(model, tok, prompts, cfg.sample, base_model, desc=f"eval {name}")
    return texts, statistics.fmean(kls)


def judge_answers(prompts: list[str], texts: list[str], kl: float, rm, base_model, tok) -> dict:
    sentences = [p + t for p, t in zip(prompts, texts)]
    compound = vader_compound(sentences)
    words = [w for t in texts for w in t.split()]
    bigrams = [tuple(t.split()[i:i + 2]) for t in texts for i in range(max(0, len(t.split()) - 1))]
    return {
        "vader_compound": statistics.fmean(compound),
        "vader_positive_rate": statistics.fmean(c >= POSITIVE for c in compound),
        "reward_model_score": statistics.fmean(rm_scores(rm, tok, prompts, texts)),
        "perplexity_under_start_model": perplexity(base_model, tok, prompts, texts),
        "kl_to_start": kl,
        "words_mean": len(words) / len(texts),
        "distinct_2": len(set(bigrams)) / max(1, len(bigrams)),
        "n_prompts": len(prompts),
    }


def reward_model_accuracy(rm, tok, data: Path) -> dict:
    """The reward model on held-out human pairs, beside the baselines it must beat and the raters."""
    comparisons = load_comparisons(data / "comparisons_test.jsonl")
    groups = [encode_comparison(c, tok, context_length(rm)) for c in comparisons]
    stats = json.loads((data / "stats.json").read_text())["test_comparisons"]
    return {
        "accuracy": pair_accuracy(score_groups(rm, groups, tok.pad_token_id)),
        "lexicon_baseline": pair_accuracy([vader_compound(c.ranked) for c in comparisons]),
        "length_baseline": stats["longer_wins"],
        "rater_agreement": stats["rater_agreement_leave_one_out"],
        "n_pairs": len(comparisons),
    }


def run(cfg: VaderExperimentConfig) -> dict:
    cfg.validate()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    t = time.time()

    def lap(name: str) -> None:
        nonlocal t
        seconds[name] = round(time.time() - t, 1)
        t = time.time()
    # ---- 1. Human comparisons, prompts, the start model
    data, base = prepare(cfg, out)
    lap("data+import")
    # ---- 2. Reward model from the human comparisons
    reward_model.run(RMConfig(model=str(base), data=str(data / "comparisons_train.jsonl"),
                              valid_data=str(data / "comparisons_valid.jsonl"), out=str(out / "rm"),
                              resume=cfg.resume, train=cfg.rm))
    lap("rm")
    # ---- 3. Each method from the same start model
    policies = {"start": str(base)}
    for method in cfg.method_list():
        policies[method] = train_method(cfg, method, out, data, base)
        lap(method)
    # ---- 4. Every policy on the same held-out openings
    base_model, tok = load_causal_lm(base)
    rm, _ = load_scalar_model(out / "rm")
    prompts = [r["prompt"] for _, r in read_records(data / "eval_prompts.jsonl")]
    methods, examples = {}, {}
    for name, policy in policies.items():
        texts, kl = answers(name, policy, prompts, cfg, base_model)
        methods[name] = judge_answers(prompts, texts, kl, rm, base_model, tok)
        examples[name] = texts
    rm_report = reward_model_accuracy(rm, tok, data)
    lap("eval")
    results = {"task": "vader", "methods": methods, "reward_model": rm_report, "stage_seconds": seconds,
               "examples": [{"prompt": p, **{n: e[i] for n, e in examples.items()}} for i, p in enumerate(prompts)],
               "ppo_log": [json.loads(line) for line in (out / "ppo" / "log.jsonl").open()]
               if (out / "ppo" / "log.jsonl").is_file() else [],
               "config": to_dict(cfg)}
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    write_report(out / "report.md", results)
    return {"out": str(out), "report": str(out / "report.md"), "stage_seconds": seconds,
            "reward_model": rm_report}
