"""The four reasons for RL over supervised learning, each decided from the measurements.

Each claim is {"supported": bool | None, "evidence": {...}, "finding": one sentence}, and for
reasons 2 and 4, where the run has the gold upper bounds, "with_gold_reward" ({"supported",
"finding"}): the same question with the gold judge as the reward. None means
the run lacks the methods the claim needs (say the demo ran without rsft and rwsft). A claim is
supported only when the numbers say so, by the rule in its function's docstring; an
unsupported claim is a result and the report states it plainly.
"""
from __future__ import annotations

SL_ON_COMPARISONS = ("sft", "dpo", "ipo", "slic")        # learn from the labels without a reward model
SL_WITH_REWARD = ("rsft", "rwsft")                       # supervised learning with a reward term
SUPERVISED = ("sft", "bon", "rsft", "rwsft", "slic", "dpo", "ipo")


def _win(methods: dict, name: str) -> dict:
    return methods[name]["winrate_vs_reference"]


def _above(methods: dict, better: str, other: str) -> bool:
    """better's CI lies above other's mean."""
    return _win(methods, better)["ci_low"] > _win(methods, other)["mean"]


def scoring_vs_generating(results: dict) -> dict:
    """Supported when the reward model ranks held-out pairs above chance and PPO's win-rate CI lies
    above the mean of every policy trained on the same comparisons by SL (SFT, DPO, IPO, SLiC)."""
    methods, rm = results["methods"], results["reward_model"]
    present = [m for m in SL_ON_COMPARISONS if m in methods]
    if "ppo" not in methods or len(present) < 2:
        return {"supported": None, "evidence": {}, "finding": "needs ppo and at least sft and dpo"}
    evidence = {"reward_model_accuracy_vs_labels": rm["accuracy_vs_labels"],
                "reward_model_accuracy_vs_gold": rm["accuracy_vs_gold"],
                "ranking_accuracy": {m: methods[m].get("ranking_accuracy") for m in present if
                                     methods[m].get("ranking_accuracy") is not None},
                "winrate": {m: _win(methods, m)["mean"] for m in present + ["ppo"]}}
    rm_gold = rm.get("accuracy_vs_gold") or 0.0
    supported = rm_gold > 0.5 and all(_above(methods, "ppo", m) for m in present)
    best = max(present, key=lambda m: _win(methods, m)["mean"])
    finding = (f"the reward model orders {rm_gold:.0%} of held-out pairs like the gold judge; "
               f"PPO, which optimises its own samples against it, wins {_win(methods, 'ppo')['mean']:.3f} vs "
               f"{_win(methods, best)['mean']:.3f} for the best SL policy on the same comparisons ({best})")
    return {"supported": supported, "evidence": evidence, "finding": finding}


def constrained_sl(results: dict) -> dict:
    """Supported when the best SL-with-a-reward method (rsft, rwsft) beats plain SFT's mean and every
    one of them stays below PPO's mean, at the same reward model and label budget."""
    methods = results["methods"]
    present = [m for m in SL_WITH_REWARD if m in methods]
    if "ppo" not in methods or "sft" not in methods or not present:
        return {"supported": None, "evidence": {}, "finding": "needs sft, ppo and rsft or rwsft"}
    wins = {m: _win(methods, m)["mean"] for m in ["sft", *present, "ppo"]}
    best = max(present, key=wins.get)
    helps, short = wins[best] > wins["sft"], all(wins[m] < wins["ppo"] for m in present)
    finding = (f"{best} {'helps over' if helps else 'does not beat'} SFT ({wins[best]:.3f} vs {wins['sft']:.3f}) "
               f"and {'stays below' if short else 'does not stay below'} PPO ({wins['ppo']:.3f})")
    return {"supported": helps and short, "evidence": {"winrate": wins}, "finding": finding}


def negation(results: dict) -> dict:
    """Supported when the SFT model's per-token cross-entropy cannot tell a one-word polarity flip
    from a same-meaning rewording (it ranks the rewording above the flip in at most 60% of posts)
    while the reward model, a sequence-level reward, can (at least 80%)."""
    probe = results.get("negation_probe")
    if not probe:
        return {"supported": None, "evidence": {}, "finding": "no negation probe in this run"}
    ce, rm, gold = probe["token_cross_entropy"], probe["reward_model"], probe["gold_score"]
    evidence = {**probe, "contradiction_rate": {m: r["failure_rates"]["contradiction"]
                                                for m, r in results["methods"].items()}}
    supported = ce["prefers_reworded_to_flipped"] <= 0.6 and rm["prefers_reworded_to_flipped"] >= 0.8
    finding = (f"flipping one polarity raises the SFT model's per-token cross-entropy by "
               f"{ce['flip_relative_change']:+.0%}, and it ranks a same-meaning rewording above the flip in "
               f"{ce['prefers_reworded_to_flipped']:.0%} of posts; the gold judge does so in "
               f"{gold['prefers_reworded_to_flipped']:.0%}, the reward model in {rm['prefers_reworded_to_flipped']:.0%}")
    return {"supported": supported, "evidence": evidence, "finding": finding}


def rl_beats_sl(results: dict) -> dict:
    """Supported when PPO's win-rate CI lies above the mean of every supervised method that ran."""
    methods = results["methods"]
    present = [m for m in SUPERVISED if m in methods]
    if "ppo" not in methods or not present:
        return {"supported": None, "evidence": {}, "finding": "needs ppo and at least one supervised method"}
    evidence = {"winrate": {m: methods[m]["winrate_vs_reference"] for m in [*present, "ppo"]},
                "seeds": results.get("seeds", 1), "gold_vs_kl": results.get("gold_vs_kl", {})}
    best = max(present, key=lambda m: _win(methods, m)["mean"])
    supported = all(_above(methods, "ppo", m) for m in present)
    ppo = _win(methods, "ppo")
    finding = (f"PPO {ppo['mean']:.3f} [{ppo['ci_low']:.3f}, {ppo['ci_high']:.3f}] vs the best supervised "
               f"method, {best}, {_win(methods, best)['mean']:.3f}")
    return {"supported": supported, "evidence": evidence, "finding": finding}


def with_gold_reward(results: dict) -> dict | None:
    """Reasons 2 and 4 with the gold judge as the reward, the learned reward model's errors taken out:
    supported when gold_ppo's win-rate CI lies above gold_rsft's mean (both at the same samples).
    None without both upper bounds."""
    methods = results["methods"]
    if "gold_ppo" not in methods or "gold_rsft" not in methods:
        return None
    ppo, rsft = _win(methods, "gold_ppo"), _win(methods, "gold_rsft")
    finding = (f"PPO {ppo['mean']:.3f} [{ppo['ci_low']:.3f}, {ppo['ci_high']:.3f}] "
               f"vs RSFT {rsft['mean']:.3f} [{rsft['ci_low']:.3f}, {rsft['ci_high']:.3f}]")
    return {"supported": _above(methods, "gold_ppo", "gold_rsft"), "finding": finding}


CLAIMS = {"scoring_vs_generating": scoring_vs_generating, "constrained_sl": constrained_sl,
          "negation": negation, "rl_beats_sl": rl_beats_sl}
GOLD_DECIDED = ("constrained_sl", "rl_beats_sl")     # the reasons a perfect reward also decides


def decide(results: dict) -> dict:
    decided = {name: fn(results) for name, fn in CLAIMS.items()}
    gold = with_gold_reward(results)
    if gold is not None:
        for name in GOLD_DECIDED:
            if decided[name]["supported"] is not None:
                decided[name]["with_gold_reward"] = gold
    return decided


def regime(config: dict) -> str:
    """The regime a demo's verdicts hold in, from its config: the world, the budgets, the reward."""
    writers = config.get("task", {}).get("writers", "")
    world = f"a harder TL;DR (reference writers: {writers})" if writers else "the default TL;DR world (all six writers)"
    samples = config.get("samples", 0)
    budget = (f"{samples:,} reward-scored samples per method" if samples else
              "each method's own budget (see Budgets)")
    readout = config.get("rm_readout", "eos")
    return (f"These verdicts hold for this run's regime: {world}; {budget}; the reward model's {readout} read-out "
            f"as the reward of every method that uses one.")
