"""rlhfkit: RLHF and its supervised alternatives, each stage a command and a Python function.

The functions take the stage's config (`rlhfkit.config`), check it as the command line does
(types, limits, combinations: a ConfigError names the field), run the stage and return its result
(the dict the command prints as JSON):

    import rlhfkit
    from rlhfkit.config import SFTConfig, TrainConfig
    result = rlhfkit.sft(SFTConfig(model="models/tldr-base", out="runs/sft", train=TrainConfig(epochs=1.0)))

`rl`, `rsft` and `rwsft` also take `reward_fn`, a Python reward `(prompts, completions) ->
list[float]` in place of a reward model. Nothing heavy is imported until a stage runs.
"""
from __future__ import annotations

import importlib
from typing import Any

__all__ = ["bon", "demo", "dpo", "eval", "pretrain", "rl", "rm", "rsft", "rwsft", "sft", "slic", "sweep"]


def _run(stage: str, cfg: Any, **kwargs: Any) -> dict:
    from rlhfkit.cli import STAGES
    cls, target = STAGES[stage]
    if not isinstance(cfg, cls):
        raise TypeError(f"rlhfkit.{stage} takes a {cls.__name__} (rlhfkit.config), got {type(cfg).__name__}")
    module, fn = target.split(":")
    return getattr(importlib.import_module(module), fn)(cfg, **kwargs)


def pretrain(cfg) -> dict:
    """Train the BPE tokenizer and a base model on a world's text (`PretrainConfig`)."""
    return _run("pretrain", cfg)


def sft(cfg) -> dict:
    """Supervised fine-tuning (`SFTConfig`)."""
    return _run("sft", cfg)


def rm(cfg) -> dict:
    """A reward model from comparisons or K-way rankings (`RMConfig`)."""
    return _run("rm", cfg)


def rl(cfg, reward_fn=None) -> dict:
    """PPO, RLOO, GRPO or REINFORCE++ against a reward model or `reward_fn` (`RLConfig`)."""
    return _run("rl", cfg, reward_fn=reward_fn)


def bon(cfg) -> dict:
    """Best-of-n on the test prompts (`BestOfNConfig`; `reward="file.py:fn"` for a Python reward)."""
    return _run("bon", cfg)


def rsft(cfg, reward_fn=None) -> dict:
    """Rejection-sampling fine-tuning (`RSFTConfig`)."""
    return _run("rsft", cfg, reward_fn=reward_fn)


def rwsft(cfg, reward_fn=None) -> dict:
    """Reward-weighted SFT (`RWSFTConfig`)."""
    return _run("rwsft", cfg, reward_fn=reward_fn)


def slic(cfg) -> dict:
    """SLiC-HF from comparisons (`SLiCConfig`)."""
    return _run("slic", cfg)


def dpo(cfg) -> dict:
    """DPO or IPO from comparisons (`DPOConfig`, `loss="ipo"` for IPO)."""
    return _run("dpo", cfg)


def eval(cfg) -> dict:  # noqa: A001 - the stage's name, as on the command line
    """Sample and judge policies on the held-out prompts (`EvalConfig`)."""
    return _run("eval", cfg)


def demo(cfg) -> dict:
    """The RL-vs-SL experiment in the TL;DR world, end to end (`DemoConfig`)."""
    return _run("demo", cfg)


def sweep(cfg) -> dict:
    """PPO, RSFT and best-of-n over sample budgets, from a finished demo (`SweepConfig`)."""
    return _run("sweep", cfg)
