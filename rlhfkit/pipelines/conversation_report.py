"""The conversation experiment's results: one seed's numbers, their mean over seeds per dose,
the verdicts on reasons 2 and 4, and report.md (with dose.png when several doses ran)."""
from __future__ import annotations

import json
import statistics
from pathlib import Path

from rlhfkit.config import ConversationDemoConfig
from rlhfkit.config.report import CONVERSATION_RL, CONVERSATION_SL, TURN_SL
from rlhfkit.evaluate.metrics import bootstrap_ci, rate, seed_interval, win_outcomes
from rlhfkit.evaluate.report import fmt_ci, md_table
from rlhfkit.models.hub import write_json_atomic as write_json

FAMILY = {**{m: "per-turn SL" for m in TURN_SL}, **{m: "conversation SL" for m in CONVERSATION_SL},
          **{m: "RL" for m in CONVERSATION_RL}, "sft": "start"}


def _labels_used(method: str, counts: dict) -> dict:
    """The comparisons a method learned from (directly, or through the reward model it used)."""
    train = counts["train"]
    if method in TURN_SL:
        return {"turn_comparisons": train["turn_comparisons"]}
    if method in CONVERSATION_SL + CONVERSATION_RL:
        return {"conversation_comparisons": train["conversation_comparisons"]}
    return {}


def seed_result(cfg: ConversationDemoConfig, events: int, seed: int, rows: dict[str, list[dict]],
                reference: list[float], budgets: dict, counts: dict, rms: dict, ceiling: list[dict],
                texts: dict[str, list[str]], seconds: dict) -> dict:
    """One dose and seed: each method's gold return, win rate against the thorough assistant
    (bootstrap CIs over openings), per-turn reward sum and the rest; budgets; the ceiling."""
    methods = {}
    for name, rs in rows.items():
        gold = [r["gold_return"] for r in rs]
        kls = [r["kl"] for r in rs if r["kl"] is not None]
        methods[name] = {
            "family": FAMILY.get(name, "?"),
            "gold_return": bootstrap_ci(gold, seed=seed),
            "winrate_vs_reference": bootstrap_ci(win_outcomes(gold, reference), seed=seed),
            "turn_reward_sum": statistics.fmean(r["turn_reward_sum"] for r in rs),
            "turns": statistics.fmean(r["turns"] for r in rs),
            "told": statistics.fmean(r["told"] for r in rs),
            "answered": rate([r["answered"] for r in rs]),
            "self_contradictions": statistics.fmean(r["self_contradictions"] for r in rs),
            "kl_to_sft": statistics.fmean(kls) if kls else None,
            "episodes": budgets.get(name, {}).get("episodes", 0),
            "turn_candidates": budgets.get(name, {}).get("turn_candidates", 1),
            "labels": _labels_used(name, counts),
            "seconds": seconds.get(name),
            "n_prompts": len(rs),
        }
        if "ranking_accuracy" in budgets.get(name, {}):
            methods[name]["ranking_accuracy"] = budgets[name]["ranking_accuracy"]
    return {"task": "conversation", "events": events, "seed": seed, "methods": methods,
            "reference": {"assistant": "thorough", "gold_return": statistics.fmean(reference),
                          "turn_reward_sum": None},
            "reward_models": {k: {"train_accuracy": v.get("train_accuracy"), "valid_accuracy": v.get("valid_accuracy")}
                              for k, v in rms.items()},
            "labels": counts, "ceiling": ceiling, "transcripts": {k: v[0] for k, v in texts.items()},
            "stage_seconds": seconds}


def _combine(seeds: list[dict]) -> dict:
    """Methods over seeds: the mean of each seed's mean with a t-interval (one seed: its bootstrap)."""
    if len(seeds) == 1:
        return seeds[0]["methods"]
    out = {}
    for name, first in seeds[0]["methods"].items():
        runs = [s["methods"][name] for s in seeds]
        row = {k: v for k, v in first.items()}
        for key in ("gold_return", "winrate_vs_reference"):
            row[key] = seed_interval([r[key]["mean"] for r in runs])
        for key in ("turn_reward_sum", "turns", "told", "answered", "self_contradictions", "ranking_accuracy"):
            if key in first:
                row[key] = statistics.fmean(r[key] for r in runs)
        kls = [r["kl_to_sft"] for r in runs]
        row["kl_to_sft"] = statistics.fmean(kls) if None not in kls else None
        row["seconds"] = statistics.fmean(r["seconds"] or 0.0 for r in runs)
        row["per_seed"] = [{"gold_return": r["gold_return"]["mean"], "winrate": r["winrate_vs_reference"]["mean"]}
                           for r in runs]
        out[name] = row
    return out


def aggregate(cfg: ConversationDemoConfig, per_dose: dict[int, list[dict]]) -> dict:
    dose = {}
    for events, seeds in per_dose.items():
        ceilings = [s["ceiling"] for s in seeds]
        dose[str(events)] = {
            "methods": _combine(seeds), "seeds": len(seeds),
            "reference_gold_return": statistics.fmean(s["reference"]["gold_return"] for s in seeds),
            "ceiling": [{"n": c[0]["n"], "gold_return": statistics.fmean(x["gold_return"] for x in c)}
                        for c in zip(*ceilings)],
            "reward_models": {k: statistics.fmean(s["reward_models"][k]["valid_accuracy"] for s in seeds)
                              for k in seeds[0]["reward_models"]},
            "labels": seeds[0]["labels"],
            "transcripts": seeds[0]["transcripts"],
            "stage_seconds": [s["stage_seconds"] for s in seeds],
        }
    first = dose[str(cfg.doses[0])]
    return {"task": "conversation", "events": cfg.doses, "seeds": cfg.seeds, "methods": first["methods"],
            "dose": dose, "claims": {"cumulative_reward": cumulative_reward(dose), "rl_beats_sl": rl_beats_sl(dose)}}


# ---- The verdicts ------------------------------------------------------------------------------
def _best(methods: dict, family: tuple[str, ...]) -> str | None:
    present = [m for m in family if m in methods]
    return max(present, key=lambda m: methods[m]["gold_return"]["mean"]) if present else None


def _above(methods: dict, a: str, b: str) -> bool:
    """a's gold-return CI lies above b's mean."""
    return methods[a]["gold_return"]["ci_low"] > methods[b]["gold_return"]["mean"]


def _evidence(dose: dict) -> dict:
    out = {}
    for e, d in dose.items():
        m = d["methods"]
        conv, turn = _best(m, CONVERSATION_SL), _best(m, TURN_SL)
        row = {"ppo": m["ppo"]["gold_return"] if "ppo" in m else None}
        for label, name in (("conversation_sl", conv), ("per_turn_sl", turn)):
            row[label] = {"method": name, **m[name]["gold_return"]} if name else None
        out[e] = row
    return out


def cumulative_reward(dose: dict) -> dict:
    """Reason 2, as the README's prediction states it: supported if at every dose PPO > the best
    conversation-level SL > the best per-turn SL on R (each CI above the next one's mean) and PPO's
    lead over conversation SL grows with E; refuted if conversation SL is not below PPO at any dose."""
    evidence = _evidence(dose)
    if any(r["ppo"] is None or r["conversation_sl"] is None or r["per_turn_sl"] is None for r in evidence.values()):
        return {"supported": None, "evidence": evidence,
                "finding": "not decided: it needs ppo and at least one method of each SL family"}
    order, matched, lead = {}, {}, {}
    for e, d in dose.items():
        m, r = d["methods"], evidence[e]
        conv, turn = r["conversation_sl"]["method"], r["per_turn_sl"]["method"]
        order[e] = _above(m, "ppo", conv) and _above(m, conv, turn)
        matched[e] = not _above(m, "ppo", conv)
        lead[e] = m["ppo"]["gold_return"]["mean"] - m[conv]["gold_return"]["mean"]
    doses = sorted(dose, key=int)
    grows = len(doses) > 1 and lead[doses[-1]] > lead[doses[0]]
    leads = ", ".join(f"E={e}: {lead[e]:+.3f}" for e in doses)
    if all(matched.values()):
        return {"supported": False, "evidence": evidence, "lead": lead,
                "finding": f"refuted: conversation-level SL is not below PPO at any dose (PPO's lead {leads})"}
    if all(order.values()) and grows:
        return {"supported": True, "evidence": evidence, "lead": lead,
                "finding": f"supported: PPO > conversation SL > per-turn SL at every dose, the lead growing ({leads})"}
    if all(order.values()) and len(doses) == 1:
        return {"supported": None, "evidence": evidence, "lead": lead,
                "finding": f"order as predicted at the one dose run ({leads}); growth with E needs the sweep"}
    broken = [e for e in doses if not order[e]]
    return {"supported": False, "evidence": evidence, "lead": lead,
            "finding": f"not supported: the predicted order fails at E = {', '.join(broken) or '-'}"
                       f"{'' if grows or len(doses) == 1 else '; the lead does not grow with E'} (PPO's lead {leads})"}


def rl_beats_sl(dose: dict) -> dict:
    """Reason 4 in this world: PPO's gold-return CI above the mean of the best SL method, at every dose."""
    per = {}
    for e, d in dose.items():
        m = d["methods"]
        best = _best(m, TURN_SL + CONVERSATION_SL)
        if "ppo" not in m or best is None:
            return {"supported": None, "evidence": {}, "finding": "not decided: it needs ppo and an SL method"}
        per[e] = {"best_sl": best, "ppo_above": _above(m, "ppo", best), "sl_above": _above(m, best, "ppo"),
                  "ppo": m["ppo"]["gold_return"]["mean"], "sl": m[best]["gold_return"]["mean"]}
    if all(r["ppo_above"] for r in per.values()):
        return {"supported": True, "evidence": per, "finding": "PPO above the best SL method at every dose"}
    if all(r["sl_above"] for r in per.values()):
        return {"supported": False, "evidence": per, "finding": "the best SL method above PPO at every dose"}
    return {"supported": False, "evidence": per, "finding": "PPO not above the best SL method at every dose"}


# ---- report.md -----------------------------------------------------------------------------------
def _f(x, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _budget(row: dict) -> str:
    labels = ", ".join(f"{v:,} {k.split('_')[0]}" for k, v in row["labels"].items()) or "-"
    cand = f" x {row['turn_candidates']} per turn" if row["turn_candidates"] > 1 else ""
    return f"{row['episodes']:,}{cand} / {labels}"


def method_rows(methods: dict) -> list[list[str]]:
    return [[name, row["family"], fmt_ci(row["gold_return"]), fmt_ci(row["winrate_vs_reference"]),
             _f(row["turn_reward_sum"]), _f(row["turns"], 1), _f(row["told"], 1), _f(row["answered"]),
             _f(row["kl_to_sft"]), _budget(row)] for name, row in methods.items()]


def write_markdown(path: Path, results: dict) -> None:
    dose, doses = results["dose"], [str(e) for e in results["events"]]
    lines = ["# Conversations: per-turn SL vs conversation SL vs RL", "",
             f"Doses E = {', '.join(doses)}; {results['seeds']} seed(s) each; "
             f"{results['config']['episodes']:,} sampled conversations per sampling method; "
             f"{results['config']['label_budget']:,} comparisons of each kind. R: the gold return of a "
             "conversation; win: R against the thorough scripted assistant's on the same opening (ties half); "
             "sum r_t: the myopic per-turn gold reward summed; CIs 95% (over openings for one seed, over seeds "
             "for several). Budget: conversations sampled in training / comparisons learned from.", ""]
    header = ["method", "family", "R", "win vs thorough", "sum r_t", "turns", "events told", "answered", "KL",
              "budget"]
    for e in doses:
        d = dose[e]
        lines += [f"## E = {e}", "", md_table(header, method_rows(d["methods"])), "",
                  f"The thorough assistant's R: {d['reference_gold_return']:.3f}. Reward models' held-out pair "
                  "accuracy: " + ", ".join(f"{k} {v:.3f}" for k, v in d["reward_models"].items()) + ".", "",
                  "Selection ceiling (gold best-of-n over SFT conversations): " +
                  ", ".join(f"n={c['n']}: {c['gold_return']:.3f}" for c in d["ceiling"]) + ".", ""]
    if len(doses) > 1:
        names = list(dose[doses[0]]["methods"])
        lines += ["## Dose response (R)", "", md_table(["method"] + [f"E={e}" for e in doses],
                  [[n] + [fmt_ci(dose[e]["methods"][n]["gold_return"]) if n in dose[e]["methods"] else "-"
                          for e in doses] for n in names]), "", "![R against E](dose.png)", ""]
        _dose_plot(path.parent / "dose.png", dose, doses, names)
    lines += ["## Claims", ""]
    for name, claim in results["claims"].items():
        verdict = {True: "supported", False: "not supported", None: "not decided"}[claim["supported"]]
        lines.append(f"- **{name}**: {verdict}. {claim['finding']}")
    first = dose[doses[0]]
    lines += ["", f"## One opening at E = {doses[0]}", ""]
    for name, text in first["transcripts"].items():
        lines += [f"**{name}**", "", "```", text, "```", ""]
    lines += ["Stage seconds: " + json.dumps(first["stage_seconds"][0]), ""]
    path.write_text("\n".join(lines) + "\n")


def _dose_plot(path: Path, dose: dict, doses: list[str], names: list[str]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7.5, 4))
    for n in names:
        pts = [(int(e), dose[e]["methods"][n]["gold_return"]) for e in doses if n in dose[e]["methods"]]
        xs = [p[0] for p in pts]
        ys = [p[1]["mean"] for p in pts]
        err = [[p[1]["mean"] - p[1]["ci_low"] for p in pts], [p[1]["ci_high"] - p[1]["mean"] for p in pts]]
        ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=n)
    xs = [int(e) for e in doses]
    ax.plot(xs, [dose[e]["reference_gold_return"] for e in doses], "k--", label="thorough assistant")
    ax.plot(xs, [dose[e]["ceiling"][-1]["gold_return"] for e in doses], "k:",
            label=f"gold best-of-{dose[doses[0]]['ceiling'][-1]['n']} of SFT")
    ax.set_xticks(xs)
    ax.set_xlabel("E (events to gather)")
    ax.set_ylabel("gold return R")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
