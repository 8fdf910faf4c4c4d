"""Configs of the stages that learn from comparisons and rankings: the reward model, DPO / IPO, SLiC-HF."""
from __future__ import annotations

from dataclasses import dataclass

from rlhfkit.config.fields import ConfigError, RESUME_HELP, check_fields, opt, sub
from rlhfkit.config.sections import READOUTS, LoRAConfig, TrainConfig

@dataclass
class RMConfig:
    """`rlhfkit rm`: train a reward model on comparisons and rankings (Bradley-Terry / K-way)."""
    model: str = opt("runs/sft", "causal-LM directory whose backbone the reward model starts from")
    data: str = opt("", "comparisons: chosen/rejected (texts, TRL message lists or implicit prompt), ranked-list "
                        "or summarize-from-feedback JSONL / Parquet / `datasets` dir; FILE:SPLIT keeps one split")
    valid_data: str = opt("", "held-out comparisons in the same formats, for accuracy against labels")
    out: str = opt("runs/rm", "output directory: the reward model (AutoModelForSequenceClassification)",
                   writes="dir")
    max_len: int = opt(0, "longest prompt + answer in tokens (0: the model's context length)", ge=0)
    center: float = opt(0.0, "weight of the centring term: each prompt's mean reward pulled to 0", ge=0)
    readout: str = opt("eos", "how the reward is read: eos (the head at the last token), mean (the head averaged "
                              "over the answer's tokens), likelihood (eos plus likelihood_weight x the answer's mean "
                              "token log-probability under the model's own tied LM head), verdict (a generative "
                              "reward model: the tied LM head's logit of verdict_yes minus verdict_no after "
                              "verdict_prompt)",
                       choices=READOUTS)
    likelihood_weight: float = opt(1.0, "readout likelihood: weight of the log-likelihood term", ge=0)
    verdict_prompt: str = opt("\nIs this answer good? Answer:", "readout verdict: text placed after every answer")
    verdict_yes: str = opt(" yes", "readout verdict: the approving token (one token in the model's tokenizer)")
    verdict_no: str = opt(" no", "readout verdict: the disapproving token (one token in the model's tokenizer)")
    resume: bool = opt(True, RESUME_HELP)
    lora: LoRAConfig = sub(LoRAConfig, "LoRA adapters on the trained model (r 0: none)")
    train: TrainConfig = sub(lambda: TrainConfig(lr=3e-4, batch_size=16, epochs=1.0, warmup_steps=10),
                             "optimisation; batch_size counts prompts (a ranking is one item)")

    def validate(self) -> None:
        check_fields(self)
        if not self.data:
            raise ConfigError("rm needs --data FILE (comparisons or rankings)")


@dataclass
class DPOConfig:
    """`rlhfkit dpo`: DPO or IPO straight from comparisons and rankings (no reward model)."""
    model: str = opt("runs/sft", "causal-LM directory to start from; also the frozen reference")
    data: str = opt("", "comparisons: chosen/rejected (texts, TRL message lists or implicit prompt), ranked-list "
                        "or summarize-from-feedback JSONL / Parquet / `datasets` dir; FILE:SPLIT keeps one split")
    valid_data: str = opt("", "held-out comparisons, for the implicit reward's accuracy")
    out: str = opt("runs/dpo", "output directory: the fine-tuned policy", writes="dir")
    loss: str = opt("dpo", "dpo (-log sigmoid(beta h)) | ipo ((h - 1/(2 beta))^2)", choices=("dpo", "ipo"))
    beta: float = opt(0.1, "strength of the implicit KL constraint", gt=0)
    max_len: int = opt(0, "longest prompt + answer in tokens (0: the model's context length)", ge=0)
    resume: bool = opt(True, RESUME_HELP)
    lora: LoRAConfig = sub(LoRAConfig, "LoRA adapters on the trained model (r 0: none)")
    train: TrainConfig = sub(lambda: TrainConfig(lr=1e-4, batch_size=16, epochs=1.0, warmup_steps=10),
                             "optimisation; batch_size counts prompts (a ranking is one item)")

    def validate(self) -> None:
        check_fields(self)
        if not self.data:
            raise ConfigError("dpo needs --data FILE (comparisons or rankings)")


@dataclass
class SLiCConfig:
    """`rlhfkit slic`: SLiC-HF, a rank-calibration hinge plus a cross-entropy regulariser."""
    model: str = opt("runs/sft", "causal-LM directory to start from")
    data: str = opt("", "comparisons: chosen/rejected (texts, TRL message lists or implicit prompt), ranked-list "
                        "or summarize-from-feedback JSONL / Parquet / `datasets` dir; FILE:SPLIT keeps one split")
    valid_data: str = opt("", "held-out comparisons, for the log-likelihood ranking accuracy")
    out: str = opt("runs/slic", "output directory: the fine-tuned policy", writes="dir")
    delta: float = opt(1.0, "hinge margin on log pi(chosen) - log pi(rejected), in nats", ge=0)
    reg_weight: float = opt(1.0, "weight of the per-token cross-entropy on the chosen answer", ge=0)
    max_len: int = opt(0, "longest prompt + answer in tokens (0: the model's context length)", ge=0)
    resume: bool = opt(True, RESUME_HELP)
    train: TrainConfig = sub(lambda: TrainConfig(lr=1e-4, batch_size=16, epochs=1.0, warmup_steps=10),
                             "optimisation; batch_size counts prompts (a ranking is one item)")

    def validate(self) -> None:
        check_fields(self)
        if not self.data:
            raise ConfigError("slic needs --data FILE (comparisons or rankings)")
