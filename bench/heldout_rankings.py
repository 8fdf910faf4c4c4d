"""Held-out rankings for `reward_model_errors.py`: training posts past those a demo labelled, answered
by its SFT policy and ranked by the simulated labelers, as the demo labels (K answers per post at
the label temperature). No reward model of that demo has seen these posts.

    python bench/heldout_rankings.py --sft runs/eq2560/seed0/sft --first 1000 --posts 2000 \\
        --out runs/heldout/rankings.jsonl
"""
from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from rlhfkit.config import DemoConfig
from rlhfkit.data.records import write_jsonl
from rlhfkit.pipelines.demo import sample_answers
from rlhfkit.tasks.tldr.labels import rank_answers
from rlhfkit.tasks.tldr.world import make_split


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sft", required=True, help="the SFT policy that answers (a demo's seedN/sft)")
    ap.add_argument("--first", type=int, default=1000, help="first training post to use (the demo labels those before)")
    ap.add_argument("--posts", type=int, default=2000, help="how many posts to rank")
    ap.add_argument("--seed", type=int, default=99, help="labeler and sampling seed")
    ap.add_argument("--out", required=True, help="rankings JSONL to write")
    args = ap.parse_args()
    demo = DemoConfig()
    posts = make_split(demo.task.seed, "train", demo.task.n_train)[args.first:args.first + args.posts]
    if len(posts) < args.posts:
        raise SystemExit(f"the world has {demo.task.n_train} training posts; --first {args.first} leaves {len(posts)}")
    sample = replace(demo.eval, temperature=demo.label_temperature, seed=args.seed)
    answers = sample_answers(Path(args.sft), posts, demo.label_k, sample)
    write_jsonl(Path(args.out), rank_answers(posts, answers, args.seed))
    print(f"{len(posts)} rankings of {demo.label_k} answers -> {args.out}")


if __name__ == "__main__":
    main()
