"""Config of `rlhfkit rl`: PPO, RLOO or GRPO against a reward model or a Python reward function."""
from __future__ import annotations

from dataclasses import dataclass

from rlhfkit.algorithms.registry import RL_ALGORITHMS
from rlhfkit.tasks.base import TASKS
from rlhfkit.config.fields import ConfigError, RESUME_HELP, check_fields, opt, sub
from rlhfkit.config.sections import (REWARD_HELP, RL_METHODS, GRPOOptions, LoRAConfig, PPOOptions, RLAlgoConfig, SampleConfig,
                                     TaskConfig, check_reward_source)


@dataclass
class RLConfig:
    """`rlhfkit rl`: RL fine-tuning against a reward model with a KL penalty (PPO, RLOO, GRPO)."""
    algo: str = opt("ppo", "the algorithm: ppo (with a value model), rloo / grpo (k answers per prompt), or "
                           "reinforce_pp (no critic, a batch baseline)",
                    choices=RL_METHODS)
    policy: str = opt("runs/sft", "causal-LM directory to start from; also the KL reference")
    # no default: with one, `--reward` alone would leave a reward model named and ignored
    reward_model: str = opt("", "reward model directory (from `rlhfkit rm`); or give --reward")
    reward: str = opt("", REWARD_HELP)
    value_model: str = opt("", "ppo: value model to start from (default: the reward model, else the policy)")
    prompts: str = opt("tldr", "a task's training prompts ('tldr'; 'echo', a multi-turn game rewarded by its "
                               "environment) or a JSONL / Parquet file with 'prompt'")
    env_reward: bool = opt(True, "with a task's environment: its rewards join the reward model's (false: the "
                                 "environment only answers, and the reward model or function alone scores, as in "
                                 "RLHF on a learned conversation reward)")
    out: str = opt("runs/ppo", "output directory: model/ (policy), value/, log.jsonl", writes="dir")
    resume: bool = opt(True, RESUME_HELP)
    task: TaskConfig = sub(TaskConfig, "the world, when prompts names a task")
    rl: RLAlgoConfig = sub(RLAlgoConfig, "the update, shared by every algorithm")
    ppo: PPOOptions = sub(PPOOptions, "ppo's own options")
    grpo: GRPOOptions = sub(GRPOOptions, "grpo's own options")
    lora: LoRAConfig = sub(LoRAConfig, "LoRA adapters on the trained model (r 0: none)")
    sample: SampleConfig = sub(SampleConfig, "sampling of rollouts")

    def validate(self, with_reward_fn: bool = False) -> None:
        """`with_reward_fn`: `train.rl.run` was handed a reward function in Python, which stands for --reward."""
        check_fields(self)
        self.rl.validate(self.algo)
        check_reward_source("rl", self.reward_model, self.reward, with_reward_fn, required=False)
        rewarded_by_task = self.prompts in TASKS and TASKS[self.prompts].environment and self.env_reward
        if not (self.reward or with_reward_fn or self.reward_model or rewarded_by_task):
            raise ConfigError("rl needs --reward_model DIR or --reward FILE.py:FUNCTION | MODULE:FUNCTION (or "
                              "--prompts naming a task with an environment: "
                              f"{', '.join(n for n, t in TASKS.items() if t.environment)}, and env_reward on)")
        if self.value_model and not RL_ALGORITHMS[self.algo].critic:
            raise ConfigError(f"value_model is for ppo; {self.algo} learns no value model")
