"""PPO's recipe options in the conversation world: one dose and seed of a finished sweep, its SFT
policy and conversation reward model reused, PPO retrained with the named options changed and
evaluated on the same held-out openings as the sweep (the pipeline's own `train_method` and
`evaluate_policies`). Prints one JSON line and writes OUT/result.json.

    python bench/conversation_ppo_recipe.py --sweep runs/conversation-sweep --events 3 --seed 0 \\
        --out runs/recipe/whiten rl.whiten_rewards=true

Options are `section.field=value` of `ConversationDemoConfig` (rl, ppo, sample). Not a speed benchmark.
"""
from __future__ import annotations

import argparse
import json
import os
from dataclasses import fields, replace
from pathlib import Path
from statistics import mean

from rlhfkit.config.report import ConversationDemoConfig
from rlhfkit.evaluate.metrics import bootstrap_ci
from rlhfkit.pipelines import conversation
from rlhfkit.tasks.conversation import ConversationTask


def with_options(cfg: ConversationDemoConfig, options: list[str]) -> ConversationDemoConfig:
    for option in options:
        key, value = option.split("=", 1)
        section, name = key.split(".")
        part = getattr(cfg, section)
        kind = {f.name: f.type for f in fields(part)}[name]
        parsed = value == "true" if kind in (bool, "bool") else {"int": int, "float": float}.get(str(kind), str)(value)
        cfg = replace(cfg, **{section: replace(part, **{name: parsed})})
    return cfg


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweep", required=True)
    ap.add_argument("--events", type=int, required=True)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("options", nargs="*")
    args = ap.parse_args()
    cfg = with_options(ConversationDemoConfig(), args.options)
    source = Path(args.sweep, f"E{args.events}", f"seed{args.seed}").resolve()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for part in ("sft", "conv_rm", "turn_rm", "labels"):     # what train_method and the evaluation read
        if not (out / part).exists():
            os.symlink(source / part, out / part)
    task = ConversationTask(replace(cfg.task, events=args.events))
    policy, _ = conversation.train_method(cfg, "ppo", task, args.seed, out, conversation.gold_hook(task))
    rows = conversation.evaluate_policies(cfg, task, {"ppo": policy}, out)[0]["ppo"]
    result = {"options": args.options, "events": args.events, "seed": args.seed,
              "gold_return": bootstrap_ci([r["gold_return"] for r in rows], seed=args.seed),   # as the sweep's
              "turns": mean(r["turns"] for r in rows),
              "kl_to_sft": mean(r["kl"] for r in rows)}
    print(json.dumps(result))
    (out / "result.json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
