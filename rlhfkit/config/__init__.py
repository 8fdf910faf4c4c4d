"""Configs: one nested dataclass tree per stage, loaded from YAML and dotted CLI overrides.

Every field has a default, one line of help and its limits (`opt(default, "help", gt=0)`); the
command line is generated from the tree, so `--help` cannot go stale. Precedence: defaults <
`--config FILE` (YAML, nested like the tree) < dotted overrides (`--train.lr 3e-4 --task.seed 7`).
Each stage's `validate()` checks every field's type and limits, then refuses contradictions, with a
message that names the fields; the stage's `run(cfg)` calls it, so a config built in Python meets
the same checks as one from the command line.

    fields.py      opt / sub, ConfigError, the check every leaf passes, check_max_len
    loading.py     YAML and the command line: set_dotted, apply_yaml, add_arguments, from_args
    sections.py    shared sections: task, train, arch, sample, the RL update, the RL algorithms' own
    supervised.py  data tldr, pretrain, sft, bon, rsft, rwsft
    preference.py  rm, dpo, slic
    rl.py          rl (ppo, rloo, grpo)
    report.py      eval, demo (TL;DR), demo --task conversation
    chat.py        chat
"""
from rlhfkit.config.chat import ChatConfig
from rlhfkit.config.fields import ConfigError, check_fields, check_max_len, opt, sub
from rlhfkit.config.loading import add_arguments, apply_yaml, from_args, set_dotted, to_dict
from rlhfkit.config.preference import DPOConfig, RMConfig, SLiCConfig
from rlhfkit.config.report import (ALL_METHODS, CONVERSATION_METHODS, GOLD_METHODS, METHODS, ConversationDemoConfig,
                                   DemoConfig, EvalConfig, SweepConfig, parse_policies, trained_as)
from rlhfkit.config.rl import RLConfig
from rlhfkit.config.sections import (MOVED_FIELDS, RL_METHODS, ArchConfig, GRPOOptions, LoRAConfig, PPOOptions,
                                     RLAlgoConfig, SampleConfig, TaskConfig, TrainConfig)
from rlhfkit.config.supervised import (BestOfNConfig, DataTldrConfig, PretrainConfig, RSFTConfig, RWSFTConfig,
                                       SFTConfig)

__all__ = ["ALL_METHODS", "CONVERSATION_METHODS", "ConversationDemoConfig", "GOLD_METHODS", "METHODS", "MOVED_FIELDS", "RL_METHODS", "ArchConfig", "GRPOOptions", "LoRAConfig", "PPOOptions", "BestOfNConfig", "ChatConfig", "ConfigError", "DPOConfig",
           "DataTldrConfig", "DemoConfig", "EvalConfig", "PretrainConfig", "RLAlgoConfig", "RLConfig", "RMConfig",
           "RSFTConfig", "RWSFTConfig", "SFTConfig", "SLiCConfig", "SampleConfig", "SweepConfig", "TaskConfig", "TrainConfig",
           "add_arguments", "apply_yaml", "check_fields", "check_max_len", "from_args", "opt", "parse_policies",
           "set_dotted", "sub", "to_dict", "trained_as"]
