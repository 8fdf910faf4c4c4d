"""report.md and sweep.png of `rlhfkit sweep`: each method at each sample budget, and gold score
against KL with Gao et al.'s forms."""
from __future__ import annotations

import math
from pathlib import Path

from rlhfkit.evaluate.probes import gao_penalty
from rlhfkit.evaluate.report import fmt, fmt_ci, md_table, write_atomic

SWEEP_HEADER = ["method", "reward-scored samples", "win rate vs reference [95% CI]", "gold score [95% CI]",
                "KL to SFT (nats)", "contradiction"]
BON_HEADER = ["n (samples per query)", "KL to SFT (nats)", "gold score, reward model picks",
              "gold score, gold judge picks"]
DIFF_HEADER = ["a minus b", "reward-scored samples", "win rate difference [95% CI]", "gold score difference [95% CI]"]
FIT_HEADER = ["method", "form", "alpha", "beta", "R^2", "points"]
FORMS = {"bon": "d (alpha - beta d)", "ppo": "d (alpha - beta log d)", "gold_ppo": "d (alpha - beta log d)",
         "rsft": "d (alpha - beta log d)"}


def sweep_rows(results: dict) -> list[list[str]]:
    return [[r["method"], f"{r['samples']:,}" if r["samples"] else "-", fmt_ci(r["winrate"]), fmt_ci(r["gold"]),
             fmt(r["kl"], 2), fmt(r["contradiction"], 2)] for r in results["rows"]]


def diff_row(d: dict) -> list[str]:
    return [f"{d['a']} - {d['b']}", f"{d['samples']:,}", fmt_ci(d["winrate"]), fmt_ci(d["gold"])]


def write_sweep_report(out: Path, results: dict) -> None:
    seeds = results["seeds"]
    parts = ["# rlhfkit sweep: methods at each sample budget",
             f"Mean over {seeds} seed{'s' if seeds > 1 else ''} of the demo "
             f"({', '.join(f'seed{s}' for s in results.get('seed_list', range(seeds)))})" +
             (" (95% t-interval over seeds in brackets)." if seeds > 1 else ".") +
             " ppo@N and gold_ppo@N are one run per seed kept after N episodes (lr constant after the warm-up); "
             "rsft@N is a run of N samples; gold_ppo's reward is the gold judge itself (the upper bound).",
             "![gold score against KL](sweep.png)",
             "## Each method at each budget", md_table(SWEEP_HEADER, sweep_rows(results))]
    if results.get("differences"):
        parts += ["## Paired differences (each seed's a minus its b, then over seeds)",
                  md_table(DIFF_HEADER, [diff_row(d) for d in results["differences"]])]
    if results.get("bon_curve"):
        parts += ["## Best-of-n on the test prompts (an inference-time method: n samples per query)",
                  f"{100 * results['oracle_share']:.1f}% of these SFT samples reach the oracle summary's gold score.",
                  md_table(BON_HEADER, [[f"{c['n']:.0f}", fmt(c["kl"], 2), fmt(c["gold"]), fmt(c["gold_selected"])]
                                      for c in results["bon_curve"]])]
    parts += ["## Gao et al. (2022)'s forms: gold gain over SFT against d = sqrt(KL)",
              md_table(FIT_HEADER, [[m, FORMS[m], fmt(f["alpha"]), fmt(f["beta"]), fmt(f["r2"], 2), str(f["points"])]
                                  for m, f in results["fits"].items()])]
    write_atomic(out / "report.md", "\n\n".join(parts) + "\n")
    plot(out / "sweep.png", results)


def plot(path: Path, results: dict) -> None:
    """Gold score against KL: each trained method's budgets as a line, best-of-n's curve and its
    ceiling, and the fitted forms."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    colors = {"ppo": "#4c78a8", "gold_ppo": "#54a24b", "rsft": "#e45756", "bon": "#f58518"}
    for method in ("ppo", "gold_ppo", "rsft"):
        rows = [r for r in results["rows"] if r["method"] == method]
        if rows:
            ax.plot([r["kl"] for r in rows], [r["gold"]["mean"] for r in rows], "o-", color=colors[method],
                    label=method)
            for r in rows:
                ax.annotate(f"{r['samples'] / 1000:g}k" if r["samples"] >= 1000 else str(r["samples"]),
                            (r["kl"], r["gold"]["mean"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    curve = results.get("bon_curve")
    if curve:
        ax.plot([c["kl"] for c in curve], [c["gold"] for c in curve], "s--", color=colors["bon"],
                label="best-of-n (reward model picks)")
        ax.plot([c["kl"] for c in curve], [c["gold_selected"] for c in curve], "s:", color="#9d755d",
                label="best-of-n (gold judge picks)")
    for method, form in (("ppo", "rl"), ("gold_ppo", "rl"), ("bon", "bon")):
        fit = results["fits"].get(method)
        if fit and fit["alpha"] is not None:
            kls = [r["kl"] for r in results["rows"] if r["method"] == method] or [c["kl"] for c in curve or []]
            top = max(kls + [0.01])
            ds = [math.sqrt(top) * i / 50 for i in range(1, 51)]
            g = gao_penalty(form)
            ax.plot([d * d for d in ds], [results["sft_gold"] + fit["alpha"] * d - fit["beta"] * g(d) for d in ds],
                    "-", color=colors[method], alpha=0.35, linewidth=1)
    ax.axhline(results["sft_gold"], color="grey", linewidth=0.8, linestyle="--", label="SFT")
    ax.set_xlabel("KL to SFT (nats)")
    ax.set_ylabel("gold score (test prompts)")
    ax.legend(fontsize=7)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
