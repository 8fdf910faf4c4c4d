"""`rlhfkit eval`: judge policies on the same held-out prompts, against the reference TL;DRs.

For each policy: one sample per test prompt at a fixed seed and temperature; the gold judge
scores it and the reference; the win rate (ties count half) gets a 95% bootstrap CI over
prompts. Also: mean gold score, KL to the SFT policy estimated from the samples
(mean over prompts of sum_t log pi(y_t) - log pi_sft(y_t), both at the sampling temperature),
mean length, and failure rates (omission, contradiction, invention, no EOS).
A policy is a model directory, or a JSONL file of answers already written for the test
prompts (one record per prompt: "prompt", "completion", optional "kl_to_sft" and "ended"), as
`rlhfkit bon` writes. Writes `results.json` (schema below) and `report.md` into --out.

    rlhfkit eval --policies base=models/tldr-base,sft=runs/sft --kl_ref runs/sft --out runs/eval
    rlhfkit eval --policies sft=runs/sft,bon=runs/bon/completions.jsonl --out runs/eval

results.json: {"task": {...}, "config": {...}, "methods": {"<name>": {"winrate_vs_reference":
{"mean", "ci_low", "ci_high"}, "gold_score_mean", "kl_to_sft", "length_mean",
"failure_rates": {"omission", "contradiction", "invention", "no_eos"}, "n_prompts"}}}
"""
from __future__ import annotations

import json
import statistics
from pathlib import Path

import torch
from tqdm import tqdm

from rlhfkit.config import EvalConfig, SampleConfig, TaskConfig, parse_policies, to_dict
from rlhfkit.data.records import DataError, read_records, text_field
from rlhfkit.evaluate.metrics import bootstrap_ci, rate, win_outcomes
from rlhfkit.evaluate.report import write_markdown
from rlhfkit.models.lm import load_causal_lm
from rlhfkit.rollout.generate import generate, token_logprobs
from rlhfkit.tasks.tldr.judge import judge
from rlhfkit.tasks.tldr.world import Post, make_split
from rlhfkit.tasks.tldr.writers import reference_summary


def sample_policy(model, tokenizer, prompts: list[str], sample: SampleConfig, kl_ref=None, desc: str = "sample"):
    """Responses, token counts, EOS flags and per-sequence KL to kl_ref (None if not given)."""
    texts, lengths, ended, kls = [], [], [], []
    for i in tqdm(range(0, len(prompts), sample.batch_size), desc=desc, unit="batch", dynamic_ncols=True):
        r = generate(model, tokenizer, prompts[i:i + sample.batch_size], temperature=sample.temperature,
                     max_new_tokens=sample.max_new_tokens, seed=sample.seed + i,
                     engine=sample.engine)
        texts += r.texts
        lengths += r.response_mask.sum(dim=1).tolist()
        ended += r.ended.tolist()
        if kl_ref is not None:
            with torch.no_grad():
                ref_lp = token_logprobs(kl_ref, r.input_ids, r.attention_mask, r.response_ids.size(1),
                                        sample.temperature) * r.response_mask
            kls += (r.logprobs - ref_lp).sum(dim=1).tolist()
    return texts, lengths, ended, (kls or None)


def reference_scores(posts: list[Post], task: TaskConfig) -> list[float]:
    return [judge(reference_summary(p, task.seed, writers=task.writers)[1], p.facts).score for p in posts]


def evaluate_texts(posts: list[Post], texts: list[str], refs: list[float], seed: int, bootstrap: int) -> dict:
    """Everything the gold judge says about one method's answers; refs: the references' gold scores."""
    verdicts = [judge(t, p.facts) for t, p in zip(texts, posts, strict=True)]
    wins = win_outcomes([v.score for v in verdicts], refs)
    return {
        "winrate_vs_reference": bootstrap_ci(wins, bootstrap, seed=seed),
        "gold_score_mean": statistics.fmean(v.score for v in verdicts),
        "failure_rates": {
            "omission": rate([v.coverage < 1 and v.contradictions == 0 for v in verdicts]),
            "contradiction": rate([v.contradictions > 0 for v in verdicts]),
            "invention": rate([v.inventions > 0 for v in verdicts]),
        },
        "n_prompts": len(posts),
    }


def written_answers(path: str, prompts: list[str], tokenizer,
                    which: str = "test prompt") -> tuple[list[str], list[int], list[bool], list | None]:
    """A JSONL file's answers to the prompts, in their order; an error names the missing `which`."""
    if tokenizer is None:
        raise DataError(f"{path}: a policy given as a file needs --kl_ref (its tokenizer counts the lengths)")
    by_prompt = {}
    for where, record in read_records(path):
        by_prompt[text_field(record, "prompt", where)] = (record, where)
    texts, lengths, ended, kls = [], [], [], []
    for i, prompt in enumerate(prompts):
        if prompt not in by_prompt:
            raise DataError(f"{path}: no record for {which} {i + 1} (the file must answer the first "
                            f"{len(prompts)} {which}s)")
        record, where = by_prompt[prompt]
        texts.append(text_field(record, "completion", where, allow_empty=True))
        lengths.append(len(tokenizer(texts[-1], add_special_tokens=False)["input_ids"]) + 1)   # + EOS
        ended.append(bool(record.get("ended", True)))
        kls.append(record.get("kl_to_sft"))
    return texts, lengths, ended, (kls if None not in kls else None)


def evaluate_policy(name: str, path: str, posts: list[Post], refs: list[float], task: TaskConfig,
                    sample: SampleConfig, bootstrap: int, kl_ref, ref_tokenizer) -> tuple[dict, list[str]]:
    if path.endswith(".jsonl"):
        texts, lengths, ended, kls = written_answers(path, [p.prompt for p in posts], ref_tokenizer)
    else:
        model, tokenizer = load_causal_lm(path)
        texts, lengths, ended, kls = sample_policy(model, tokenizer, [p.prompt for p in posts], sample, kl_ref,
                                                   desc=f"eval {name}")
    row = evaluate_texts(posts, texts, refs, task.seed, bootstrap)
    row["kl_to_sft"] = statistics.fmean(kls) if kls is not None else None
    row["length_mean"] = statistics.fmean(lengths)
    row["failure_rates"]["no_eos"] = rate([not e for e in ended])
    return row, texts


def run(cfg: EvalConfig) -> dict:
    cfg.validate()
    if cfg.prompts:
        from rlhfkit.evaluate.custom import run_custom
        return run_custom(cfg)
    posts = make_split(cfg.task.seed, "test", cfg.task.n_test)[: cfg.n_prompts]
    kl_ref, ref_tokenizer = load_causal_lm(cfg.kl_ref) if cfg.kl_ref else (None, None)
    refs = reference_scores(posts, cfg.task)
    methods, samples = {}, {}
    for name, path in parse_policies(cfg.policies).items():
        methods[name], samples[name] = evaluate_policy(name, path, posts, refs, cfg.task, cfg.sample,
                                                       cfg.bootstrap, kl_ref, ref_tokenizer)
    results = {"task": {"name": "tldr", **to_dict(cfg.task)}, "config": to_dict(cfg), "methods": methods}
    write_results(Path(cfg.out), results, posts, samples, cfg.task)
    return results


def write_results(out: Path, results: dict, posts: list[Post], samples: dict[str, list[str]],
                  task: TaskConfig) -> None:
    """results.json, examples.json (the first prompts with every method's answer) and report.md."""
    out.mkdir(parents=True, exist_ok=True)
    examples = [{"prompt": p.prompt, "reference": reference_summary(p, task.seed, writers=task.writers)[1],
                 **{name: texts[i] for name, texts in samples.items()}} for i, p in enumerate(posts[:3])]
    for name, data in (("results.json", results), ("examples.json", examples)):
        tmp = out / (name + ".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        tmp.replace(out / name)
    write_markdown(out / "report.md", results, examples)
