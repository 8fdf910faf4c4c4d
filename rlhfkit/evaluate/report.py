"""The report: methods side by side on the same held-out prompts, as Markdown and as HTML with
plots (gold win rate with CIs; score and KL over RL steps; proxy vs gold reward over RL steps,
the over-optimisation curve of Gao et al. 2022; reward-model accuracy and calibration)."""
from __future__ import annotations

import base64
import html
import io
from pathlib import Path

from rlhfkit.evaluate import claims
from rlhfkit.evaluate.probes import gao_penalty


def fmt(x, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def fmt_ci(x: dict | None, digits: int = 3) -> str:
    """A mean with its 95% interval in brackets; the mean alone where there is no interval (one seed)."""
    if x is None:
        return "-"
    if x["ci_low"] is None:
        return fmt(x["mean"], digits)
    return f"{fmt(x['mean'], digits)} [{fmt(x['ci_low'], digits)}, {fmt(x['ci_high'], digits)}]"


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def methods_rows(methods: dict) -> list[list[str]]:
    rows = []
    for name, m in methods.items():
        w, f = m["winrate_vs_reference"], m["failure_rates"]
        rows.append([name, fmt_ci(w),
                     fmt(m["gold_score_mean"]), fmt(m["kl_to_sft"], 2), fmt(m["length_mean"], 1),
                     fmt(f["omission"], 2), fmt(f["contradiction"], 2), fmt(f["invention"], 2),
                     fmt(f["no_eos"], 2), str(m["n_prompts"])])
    return rows


METHOD_HEADER = ["method", "win rate vs reference [95% CI]", "gold score", "KL to SFT (nats)", "length (tokens)",
                 "omission", "contradiction", "invention", "no EOS", "prompts"]


BUDGET_HEADER = ["method", "comparisons labelled", "fresh samples", "reward-model calls", "optimizer steps",
                 "answer tokens trained", "wall seconds", "KL to SFT (nats)"]
BUDGET_NOTE = ("What each method spent beyond the shared SFT, labels and reward model (over several seeds, the "
               "mean). Samples "
               "and reward-model calls of a method marked *inference time* are paid again for every query: "
               "best-of-n draws and scores n answers per prompt, here on the test prompts themselves.")


def budget_rows(methods: dict) -> list[list[str]]:
    rows = []
    for name, m in methods.items():
        b = m.get("budget")
        if not b:
            continue
        label = f"{name} (inference time)" if b.get("inference_time") else name
        rows.append([label, *(f"{b[k]:,.0f}" if k in b else "-" for k in
                              ("comparisons", "samples", "reward_calls", "optimizer_steps", "answer_tokens", "seconds")),
                     fmt(b.get("kl_to_sft"), 2)])
    return rows


CEILING_HEADER = ["n", "KL to SFT (nats)", "gold score, reward model picks", "gold score, gold judge picks"]
CEILING_NOTE = ("Best-of-n over the same SFT samples of the test prompts, picked by the reward model (what "
                "best-of-n buys) and by the gold judge itself (the selection ceiling: what choosing among n "
                "samples can reach at that KL, with no training at all).")


GOLD_HEADER = ["method", "reward", "fresh samples", "win rate vs reference [95% CI]", "gold score", "KL to SFT (nats)"]
GOLD_NOTE = ("Each family's upper bound: rsft and ppo with the gold judge itself as their reward (gold_rsft, "
             "gold_ppo), each drawing PPO's episodes (or --samples), beside the same methods on the reward model "
             "(at their own sample counts unless --samples is given). The gold rows learn from no comparisons; "
             "their reward calls are judge calls; gold_ppo's value model starts from the SFT policy with a new "
             "head, ppo's from the reward model.")


def gold_rows(methods: dict) -> list[list[str]]:
    """The gold upper bounds beside the same methods on the reward model; empty without a gold row."""
    if not any(name.startswith("gold_") for name in methods):
        return []
    rows = []
    for name in ("rsft", "gold_rsft", "ppo", "gold_ppo"):
        if name in methods:
            m, w = methods[name], methods[name]["winrate_vs_reference"]
            rows.append([name, "gold judge" if name.startswith("gold_") else "reward model",
                         f"{m['budget']['samples']:,.0f}" if "samples" in m.get("budget", {}) else "-",
                         fmt_ci(w),
                         fmt(m["gold_score_mean"]), fmt(m["kl_to_sft"], 2)])
    return rows


def ceiling_note(results: dict) -> str:
    """CEILING_NOTE and, where measured, how many SFT samples reach the oracle's gold score."""
    if results.get("oracle_share") is None:
        return CEILING_NOTE
    return CEILING_NOTE + (f" {100 * results['oracle_share']:.1f}% of these SFT samples reach the oracle "
                           "summary's gold score (the world's optimum).")


def ceiling_rows(results: dict) -> list[list[str]]:
    points = results.get("gold_vs_kl", {}).get("bon", {}).get("points") or results.get("bon_curve") or []
    return [[f"{p['n']:.0f}", fmt(p["kl"], 2), fmt(p["gold"]), fmt(p.get("gold_selected"))] for p in points]


def md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def _intro(results: dict) -> str:
    seeds = results.get("seeds", 1)
    ci = ("95% t-intervals over training seeds" if seeds > 1 else "95% bootstrap CIs over prompts")
    return (f"Task: synthetic TL;DR (world seed {results['task']['seed']}, {seeds} training seed(s)). Each method "
            "writes one TL;DR per held-out test prompt; the gold judge compares it with the reference TL;DR a "
            f"simulated writer wrote (ties count half). Intervals are {ci}.")


DIFFERENCE_LABELS = {"contradiction": "contradictions", "coverage": "key events covered",
                     "invention": "inventions", "other": "none of these (people, length, filler...)"}


def _rm_rows(rm: dict) -> list[list[str]]:
    return [["accuracy vs held-out labeler labels", fmt(rm["accuracy_vs_labels"])],
            ["a second labeler's agreement on the same pairs", fmt(rm.get("labeler_agreement"))],
            ["accuracy vs the gold preference", fmt(rm["accuracy_vs_gold"])],
            *[[f"accuracy vs gold on pairs that differ in {DIFFERENCE_LABELS[d]} (pairs)",
               f"{fmt(c['accuracy'])} ({c['n']})"] for d, c in rm.get("accuracy_vs_gold_by_difference", {}).items()],
            ["correlation of reward with length (words)", fmt(rm.get("length_correlation"))],
            ["comparisons trained on", str(rm.get("comparisons", "n/a"))]]


def _curve_rows(curves: dict) -> list[list[str]]:
    rows = []
    for algo, runs in curves.items():
        for seed, log in enumerate(runs):
            last = log[-1]
            rows.append([algo, str(seed), str(len(log)), fmt(log[0]["score"], 2), fmt(last["score"], 2),
                         fmt(log[0].get("gold"), 2), fmt(last.get("gold"), 2), fmt(last["kl"], 2),
                         fmt(last.get("entropy"), 2)])
    return rows


CURVE_HEADER = ["method", "seed", "iterations", "proxy score first", "proxy score last", "gold first", "gold last",
                "KL last", "entropy last"]

CLAIM_TITLES = {
    "scoring_vs_generating": "1. SL on rankings learns to score; RL optimises what the model generates",
    "constrained_sl": "2. SL with a reward term helps, but falls short of RL",
    "negation": "3. Token-level cross-entropy barely sees a flipped negation; a sequence-level reward does",
    "rl_beats_sl": "4. RL beats SL on the same prompts, labels and judge",
}


def _verdict(claim: dict) -> str:
    s = claim["supported"]
    return "not measured in this run" if s is None else ("supported" if s else "NOT supported")


def _claim_table(name: str, results: dict) -> tuple[list[str], list[list[str]]] | None:
    """The table under each claim, or None."""
    methods, ev = results["methods"], results["claims"][name]["evidence"]
    win = lambda m: fmt(methods[m]["winrate_vs_reference"]["mean"])  # noqa: E731
    if name == "scoring_vs_generating" and ev:
        rows = [["reward model", fmt(ev["reward_model_accuracy_vs_labels"]), "(scores only)"]]
        rows += [[m, fmt(methods[m].get("ranking_accuracy")), win(m)] for m in ev["winrate"]]
        return ["model", "accuracy on held-out labelled pairs", "gold win rate of its own answers"], rows
    if name == "constrained_sl" and ev:
        return ["method", "gold win rate"], [[m, fmt(w)] for m, w in ev["winrate"].items()]
    if name == "negation" and ev:
        rows = [[label, fmt(ev[key]["faithful_mean"]), fmt(ev[key]["reworded_mean"]), fmt(ev[key]["flipped_mean"]),
                 fmt(ev[key]["reword_effect"], 2), fmt(ev[key]["flip_effect"], 2),
                 fmt(ev[key]["prefers_reworded_to_flipped"], 2)]
                for label, key in (("SFT per-token cross-entropy (nats)", "token_cross_entropy"),
                                   ("gold score", "gold_score"), ("reward model score", "reward_model"))]
        return ["scorer", "faithful", "reworded", "one polarity flipped", "rewording effect (sd)", "flip effect (sd)",
                "ranks rewording above flip"], rows
    if name == "rl_beats_sl":
        fits = results.get("gold_vs_kl", {})
        return ["policy family", "Gao et al. form", "alpha", "beta", "R^2", "points"], [
            [k, "d (alpha - beta d)" if k == "bon" else "d (alpha - beta log d)", fmt(v["fit"]["alpha"]),
             fmt(v["fit"]["beta"]), fmt(v["fit"]["r2"]), str(v["fit"]["points"])] for k, v in fits.items()]
    return None


def _why_rl(results: dict) -> list[tuple[str, str, tuple | None]]:
    """(title, paragraph, table) per claim."""
    from rlhfkit.algorithms.rwsft import OBJECTIVE
    out = []
    for name, claim in results.get("claims", {}).items():
        text = f"**{_verdict(claim)}**: {claim['finding']}."
        if name == "constrained_sl":
            text += f" Reward-weighted SFT minimises {OBJECTIVE}."
        if claim.get("with_gold_reward"):
            gold = claim["with_gold_reward"]
            text += f" With the gold judge as the reward (the upper bounds): **{_verdict(gold)}**, {gold['finding']}."
        if name == "negation" and claim["evidence"]:
            ex, rates = claim["evidence"]["example"], claim["evidence"]["contradiction_rate"]
            text += (f" Example: faithful '{ex['faithful'].strip()}'; reworded '{ex['reworded'].strip()}'; flipped "
                     f"'{ex['flipped'].strip()}'. Contradiction rate of each "
                     "method's answers: " + ", ".join(f"{m} {r:.2f}" for m, r in rates.items()) + ".")
        out.append((CLAIM_TITLES[name], text, _claim_table(name, results)))
    return out


def write_markdown(path: Path, results: dict, examples: list[dict]) -> None:
    parts = ["# rlhfkit report", _intro(results), "## Methods", md_table(METHOD_HEADER, methods_rows(results["methods"]))]
    if budget_rows(results["methods"]):
        parts += ["## Budgets", BUDGET_NOTE, md_table(BUDGET_HEADER, budget_rows(results["methods"]))]
    if ceiling_rows(results):
        parts += ["## Selection ceiling", ceiling_note(results), md_table(CEILING_HEADER, ceiling_rows(results))]
    if gold_rows(results["methods"]):
        parts += ["## Gold against gold", GOLD_NOTE, md_table(GOLD_HEADER, gold_rows(results["methods"]))]
    if "reward_model" in results:
        parts += ["## Reward model", md_table(["measure", "value"], _rm_rows(results["reward_model"]))]
    if results.get("curves"):
        parts += ["## RL training (proxy = reward model on the rollouts, gold = the judge on the same rollouts)",
                  md_table(CURVE_HEADER, _curve_rows(results["curves"]))]
    if results.get("claims"):
        parts += ["## Why RL: the four reasons, measured", claims.regime(results.get("config", {}))]
        for title, text, table in _why_rl(results):
            parts += [f"### {title}", text] + ([md_table(*table)] if table else [])
    if results.get("stage_seconds"):
        times = results["stage_seconds"]
        parts += ["## Time per stage (seconds, per seed)",
                  md_table(["stage", *(f"seed {i}" for i in range(len(times)))],
                            [[k, *(f"{t.get(k, 0):.0f}" for t in times)] for k in times[0]])]
    parts.append("## Examples")
    for ex in examples:
        parts.append("```\n" + ex["prompt"] + "\n```")
        parts += [f"- **{k}**: {v.strip()}" for k, v in ex.items() if k != "prompt"]
    write_atomic(path, "\n\n".join(parts) + "\n")


# ---- HTML with plots -----------------------------------------------------------------------
def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _plots(results: dict) -> list[tuple[str, str]]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figs = []
    names = list(results["methods"])
    w = [results["methods"][n]["winrate_vs_reference"] for n in names]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.bar(names, [x["mean"] for x in w], color="#4c78a8")
    ax.errorbar(names, [x["mean"] for x in w], yerr=[[x["mean"] - x["ci_low"] for x in w],
                [x["ci_high"] - x["mean"] for x in w]], fmt="none", ecolor="black", capsize=4)
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.set_ylim(0, 1)
    ax.set_ylabel("gold win rate vs reference")
    figs.append(("Gold win rate against the reference TL;DRs (95% CI)", _png(fig)))
    for algo, runs in results.get("curves", {}).items():
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.2), layout="constrained")
        for seed, log in enumerate(runs):
            steps = [r["step"] for r in log]
            a1.plot(steps, [r["score"] for r in log], label=f"proxy (RM), seed {seed}")
            if "gold" in log[0]:
                a1.plot(steps, [r["gold"] for r in log], ls="--", label=f"gold, seed {seed}")
            a2.plot(steps, [r["kl"] for r in log], label=f"seed {seed}")
        a1.set_xlabel("iteration")
        a1.set_ylabel("mean score of rollouts")
        a1.legend(fontsize=7)
        a2.set_xlabel("iteration")
        a2.set_ylabel("KL(policy || SFT), nats")
        figs.append((f"{algo}: proxy and gold reward, and KL, over training", _png(fig)))
        if runs and "gold" in runs[0][0]:
            fig, ax = plt.subplots(figsize=(5, 3.2))
            for seed, log in enumerate(runs):
                d = [max(r["kl"], 0) ** 0.5 for r in log]
                # scatter, not lines: KL and scores are per-batch estimates and jump back and forth
                ax.scatter(d, [r["score"] - log[0]["score"] for r in log], s=10, label=f"proxy, seed {seed}")
                ax.scatter(d, [r["gold"] - log[0]["gold"] for r in log], s=10, marker="x", label=f"gold, seed {seed}")
            ax.set_xlabel("sqrt(KL to SFT)")
            ax.set_ylabel("reward gain over SFT")
            ax.legend(fontsize=7)
            figs.append((f"{algo}: over-optimisation (Gao et al. 2022): gain against sqrt KL", _png(fig)))
    fits = results.get("gold_vs_kl", {})
    if fits:
        figs.append(("Gold score gain over SFT against KL, with Gao et al.'s forms fitted", _png(_gold_vs_kl_plot(fits))))
    rm = results.get("reward_model")
    if rm:
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.2), layout="constrained")
        labels = ["vs labels", "labeler agreement", "vs gold"]
        vals = [rm["accuracy_vs_labels"], rm.get("labeler_agreement") or 0, rm["accuracy_vs_gold"] or 0]
        a1.bar(labels, vals, color=["#4c78a8", "#9ecae9", "#f58518"])
        a1.set_ylim(0.4, 1)
        a1.set_ylabel("accuracy on held-out pairs")
        cal = rm.get("calibration") or []
        a2.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
        a2.plot([c["predicted"] for c in cal], [c["observed"] for c in cal], marker="o")
        a2.set_xlabel("predicted P(preferred)")
        a2.set_ylabel("observed share preferred")
        figs.append(("Reward model: accuracy and calibration", _png(fig)))
    return figs


def _gold_vs_kl_plot(fits: dict):
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for name, form, color in (("bon", gao_penalty("bon"), "#f58518"), ("ppo", gao_penalty("rl"), "#4c78a8")):
        if name not in fits:
            continue
        pts = fits[name]["points"]
        if name == "bon":
            xs, ys = [p["kl"] ** 0.5 for p in pts], [p["gold"] - pts[0]["gold"] for p in pts]
        else:
            xs, ys = [max(p["kl"], 0) ** 0.5 for p in pts], [p["gain"] for p in pts]
        ax.scatter(xs, ys, s=10, color=color, label=f"{name} (measured)")
        if name == "bon" and "gold_selected" in pts[0]:
            ax.plot(xs, [p["gold_selected"] - pts[0]["gold"] for p in pts], color="#54a24b", marker="o", ms=3,
                    label="best-of-n picked by the gold judge (ceiling)")
        a, b = fits[name]["fit"]["alpha"], fits[name]["fit"]["beta"]
        if a is not None and xs:
            grid = [0.02 + i * max(xs) / 50 for i in range(51)]
            ax.plot(grid, [a * d - b * form(d) for d in grid], color=color, label=f"{name} fit")
    ax.set_xlabel("sqrt(KL to SFT)")
    ax.set_ylabel("gold score gain over SFT")
    ax.legend(fontsize=7)
    return fig


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def write_html(path: Path, results: dict, examples: list[dict]) -> None:
    parts = ["<!doctype html><meta charset='utf-8'><title>rlhfkit report</title>",
             "<style>body{font:14px sans-serif;max-width:1000px;margin:2em auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child{text-align:left}"
             "pre{white-space:pre-wrap;background:#f6f6f6;padding:8px}</style>",
             "<h1>rlhfkit report</h1>", f"<p>{html.escape(_intro(results))}</p>", "<h2>Methods</h2>",
             _html_table(METHOD_HEADER, methods_rows(results["methods"]))]
    if budget_rows(results["methods"]):
        parts += ["<h2>Budgets</h2>", f"<p>{html.escape(BUDGET_NOTE)}</p>",
                  _html_table(BUDGET_HEADER, budget_rows(results["methods"]))]
    if ceiling_rows(results):
        parts += ["<h2>Selection ceiling</h2>", f"<p>{html.escape(ceiling_note(results))}</p>",
                  _html_table(CEILING_HEADER, ceiling_rows(results))]
    if gold_rows(results["methods"]):
        parts += ["<h2>Gold against gold</h2>", f"<p>{html.escape(GOLD_NOTE)}</p>",
                  _html_table(GOLD_HEADER, gold_rows(results["methods"]))]
    if "reward_model" in results:
        parts += ["<h2>Reward model</h2>", _html_table(["measure", "value"], _rm_rows(results["reward_model"]))]
    if results.get("curves"):
        parts += ["<h2>RL training</h2>", _html_table(CURVE_HEADER, _curve_rows(results["curves"]))]
    if results.get("claims"):
        parts += ["<h2>Why RL: the four reasons, measured</h2>",
                  f"<p>{html.escape(claims.regime(results.get('config', {})))}</p>"]
        for title, text, table in _why_rl(results):
            parts += [f"<h3>{html.escape(title)}</h3>", "<p>" + html.escape(text).replace("**", "") + "</p>"]
            parts += [_html_table(*table)] if table else []
    parts.append("<h2>Plots</h2>")
    for title, src in _plots(results):
        parts.append(f"<h3>{html.escape(title)}</h3><img src='{src}'>")
    parts.append("<h2>Examples</h2>")
    for ex in examples:
        parts.append(f"<pre>{html.escape(ex['prompt'])}</pre><ul>")
        parts += [f"<li><b>{html.escape(k)}</b>: {html.escape(v.strip())}</li>" for k, v in ex.items() if k != "prompt"]
        parts.append("</ul>")
    write_atomic(path, "\n".join(parts) + "\n")
