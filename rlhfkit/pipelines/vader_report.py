"""report.md of `rlhfkit vader`: what each method did to the continuations, by judges it never saw."""
from __future__ import annotations

from pathlib import Path

COLUMNS = (("vader_compound", "VADER compound", "{:+.3f}"), ("vader_positive_rate", "positive (VADER)", "{:.2f}"),
           ("reward_model_score", "reward model", "{:+.2f}"),
           ("perplexity_under_start_model", "perplexity (start model)", "{:.1f}"),
           ("kl_to_start", "KL to start (nats)", "{:.2f}"), ("words_mean", "words", "{:.1f}"),
           ("distinct_2", "distinct-2", "{:.2f}"))


def _fmt(value, spec: str) -> str:
    return "n/a" if value is None else spec.format(value)


def method_table(methods: dict) -> list[str]:
    lines = ["| method | " + " | ".join(c[1] for c in COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for name, row in methods.items():
        lines.append(f"| {name} | " + " | ".join(_fmt(row[k], spec) for k, _, spec in COLUMNS) + " |")
    return lines


def write_report(path: Path, results: dict) -> None:
    rm, methods = results["reward_model"], results["methods"]
    n = next(iter(methods.values()))["n_prompts"]
    lines = [
        "# Positive continuation on SmolLM2 from human sentiment ratings", "",
        f"Each method continues the same {n} held-out movie-review openings (one sample each). Judges the "
        "training never saw: VADER's rule-based scorer on opening + continuation, the reward model, "
        "perplexity of the continuation under the untouched start model (fluency) and the sampled KL to "
        "it (best-of-n: log n - (n-1)/n).", "",
        *method_table(methods), "",
        "## Reward model on held-out human pairs", "",
        "| scorer | accuracy |", "|---|---|",
        f"| reward model | {rm['accuracy']:.3f} |",
        f"| VADER's lexicon and rules (lexicon-only baseline) | {rm['lexicon_baseline']:.3f} |",
        f"| longer sentence wins (length-only baseline) | {rm['length_baseline']:.3f} |",
        f"| one human rater vs the others (agreement) | {rm['rater_agreement']:.3f} |", "",
        f"{rm['n_pairs']} test pairs of sentences no stage trained on.", "",
    ]
    log = results.get("ppo_log") or []
    if log:
        lines += ["## PPO over training", "", "| iteration | reward-model score | KL | length |", "|---|---|---|---|"]
        for row in log[::max(1, len(log) // 6)] + ([log[-1]] if (len(log) - 1) % max(1, len(log) // 6) else []):
            lines.append(f"| {row['step']} | {row['score']:+.2f} | {row['kl']:.2f} | {row['length']:.1f} |")
        lines.append("")
    lines += ["## Examples", ""]
    for ex in results["examples"][:3]:
        lines.append(f"**{ex['prompt']}** ...")
        lines += [f"- {name}: {ex[name]!r}" for name in methods]
        lines.append("")
    lines += ["Seconds per stage: " + ", ".join(f"{k} {v:.0f}" for k, v in results["stage_seconds"].items()), ""]
    path.write_text("\n".join(lines))
