"""The own engine on multi-turn episodes: the sampler's log-probs against a full forward pass, and
episode length and turns against transformers' `generate` (two seeds each).

    python bench/engine_episodes.py --policy runs/demo-conv2/E2/seed0/sft
"""
from __future__ import annotations

import argparse
import os

os.environ.update(OMP_NUM_THREADS="2", MKL_NUM_THREADS="2", HF_HUB_OFFLINE="1")

import torch  # noqa: E402

from rlhfkit.config import TaskConfig  # noqa: E402
from rlhfkit.models.lm import load_causal_lm  # noqa: E402
from rlhfkit.rollout.episodes import play_episodes  # noqa: E402
from rlhfkit.rollout.generate import token_logprobs  # noqa: E402
from rlhfkit.tasks.conversation.task import ConversationTask  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--policy", required=True)
    ap.add_argument("--events", type=int, default=2)
    ap.add_argument("--openings", type=int, default=64, help="openings, each played twice")
    ap.add_argument("--temperature", type=float, default=1.0)
    a = ap.parse_args()
    task = ConversationTask(TaskConfig(n_valid=100), events=a.events)
    model, tok = load_causal_lm(a.policy)
    openings = [p for p in task.prompts("train")[:a.openings] for _ in range(2)]
    for seed in (3, 4):
        for engine in ("rlhfkit", "hf"):
            exp = play_episodes(model, tok, task.environment(), openings, temperature=a.temperature,
                                max_new_tokens=96, max_turns=8, seed=seed, engine=engine)
            with torch.no_grad():
                full = token_logprobs(model, exp.input_ids, exp.attention_mask, exp.response_ids.size(1),
                                      a.temperature)
            acted = exp.action_mask.bool()
            print(f"seed {seed} {engine}: {int(acted.sum())} tokens, largest |sampler - full| "
                  f"{(exp.logprobs - full)[acted].abs().max().item():.1e}, mean length "
                  f"{exp.action_mask.sum(1).float().mean().item():.1f}, turns {exp.turn_ends.sum(1).float().mean().item():.2f}")


if __name__ == "__main__":
    main()
