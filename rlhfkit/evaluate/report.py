"""The Markdown report: methods side by side on the same held-out prompts."""
from __future__ import annotations

from pathlib import Path


def _fmt(x, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def methods_table(methods: dict) -> str:
    lines = ["| method | win rate vs reference [95% CI] | gold score | KL to SFT (nats) | length (tokens) "
             "| omission | contradiction | invention | no EOS | prompts |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, m in methods.items():
        w, f = m["winrate_vs_reference"], m["failure_rates"]
        lines.append(f"| {name} | {_fmt(w['mean'])} [{_fmt(w['ci_low'])}, {_fmt(w['ci_high'])}] "
                     f"| {_fmt(m['gold_score_mean'])} | {_fmt(m['kl_to_sft'], 2)} | {_fmt(m['length_mean'], 1)} "
                     f"| {_fmt(f['omission'], 2)} | {_fmt(f['contradiction'], 2)} | {_fmt(f['invention'], 2)} "
                     f"| {_fmt(f['no_eos'], 2)} | {m['n_prompts']} |")
    return "\n".join(lines)


def write_report(path: Path, results: dict, examples: list[dict]) -> None:
    task = results["task"]
    parts = [
        "# rlhfkit report",
        f"Task: synthetic TL;DR (seed {task['seed']}). Each method writes one TL;DR per held-out test prompt; "
        "the gold judge compares it with the reference TL;DR a simulated writer wrote (ties count half). "
        "Intervals are 95% bootstrap CIs over prompts.",
        "## Methods",
        methods_table(results["methods"]),
        "## Examples",
    ]
    for ex in examples:
        parts.append("```\n" + ex["prompt"] + "\n```")
        parts += [f"- **{k}**: {v.strip()}" for k, v in ex.items() if k != "prompt"]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n\n".join(parts) + "\n")
    tmp.replace(path)
