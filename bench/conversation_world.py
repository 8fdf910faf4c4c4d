"""The conversation world's scripted assistants on its two gold measures, per dose E.

    python bench/conversation_world.py [--seed 0] [--n 200] [--split test] [--json]

For each E and each scripted assistant: the mean conversation return R and the mean sum of the
myopic per-turn rewards r_t over `n` openings. The world is built so the two disagree (the
assistant that answers at once leads on the sum of r_t and trails on R). Pure Python, seconds.
"""
from __future__ import annotations

import argparse
import json
import statistics

from rlhfkit.tasks.conversation.assistants import ASSISTANTS, transcripts
from rlhfkit.tasks.conversation.gold import episode_return, turn_rewards
from rlhfkit.tasks.conversation.world import ConversationWorld


def measure(seed: int, n: int, split: str) -> dict:
    table: dict = {}
    for events in (1, 2, 3, 4):
        world = ConversationWorld(seed, events)
        openings = world.openings(split, n)
        for a in ASSISTANTS:
            convs = transcripts(world, split, n, a.name)
            returns = [episode_return(world, o, m) for o, m in zip(openings, convs, strict=True)]
            turn_sums = [sum(turn_rewards(m)) for m in convs]
            table.setdefault(a.name, {})[events] = {"R": statistics.fmean(returns),
                                                    "sum_r_t": statistics.fmean(turn_sums),
                                                    "turns": statistics.fmean(sum(x["role"] == "assistant" for x in m)
                                                                              for m in convs)}
    return table


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--split", default="test")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    table = measure(args.seed, args.n, args.split)
    if args.json:
        print(json.dumps(table))
        return
    print("| assistant | " + " | ".join(f"E={e}: R / sum r_t / turns" for e in (1, 2, 3, 4)) + " |")
    print("|---" * 5 + "|")
    for name, row in table.items():
        cells = [f"{c['R']:.2f} / {c['sum_r_t']:.2f} / {c['turns']:.1f}" for c in row.values()]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
