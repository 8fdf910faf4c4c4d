"""Configs of the supervised stages: the world's data, pretraining, SFT, and the supervised
alternatives to RL that sample against a reward model (best-of-n, rejection sampling, reward-weighted SFT)."""
from __future__ import annotations

from dataclasses import dataclass

from rlhfkit.config.fields import ConfigError, RESUME_HELP, check_fields, opt, sub
from rlhfkit.config.sections import REWARD_HELP, ArchConfig, LoRAConfig, SampleConfig, TaskConfig, TrainConfig, check_reward_source
from rlhfkit.tasks.base import TASKS

PRETRAIN_CORPORA = ("tldr", "tldr+conversation")


@dataclass
class DataTldrConfig:
    """`rlhfkit data tldr`: write the world's data sets, or print its statistics."""
    out: str = opt("", "directory to write JSONL files into (not needed with --stats)", writes="dir")
    stats: bool = opt(False, "compute the world's statistics instead of writing files")
    json: bool = opt(False, "with --stats: print one JSON object on stdout")
    k: int = opt(4, "answers per K-way ranking", ge=2)
    task: TaskConfig = sub(TaskConfig, "the world")

    def validate(self) -> None:
        check_fields(self)
        if not self.stats and not self.out:
            raise ConfigError("data tldr needs --out DIR (or --stats)")
        if self.json and not self.stats:
            raise ConfigError("json prints the statistics: give it with --stats")


@dataclass
class PretrainConfig:
    """`rlhfkit pretrain`: train the BPE tokenizer and the base model on the world's text."""
    out: str = opt("models/tldr-base", "output directory (a Hugging Face model directory)", writes="dir")
    corpus: str = opt("tldr", "'tldr': posts with TL;DRs; 'tldr+conversation': also the conversation world's "
                              "transcripts (task.n_train training conversations by its scripted assistants, "
                              "E = 1-4 mixed)", choices=PRETRAIN_CORPORA)
    resume: bool = opt(True, RESUME_HELP)
    task: TaskConfig = sub(TaskConfig, "the world whose text is the corpus")
    arch: ArchConfig = sub(ArchConfig, "model shape")
    # 5 epochs at batch 16: shorter runs leave a model that writes fluent TL;DRs of facts it
    # invents; copying facts from the post appears only after ~2,000 steps (valid ppl 2.2 -> 1.98)
    train: TrainConfig = sub(lambda: TrainConfig(lr=2e-3, batch_size=16, epochs=5.0, dtype="bfloat16",
                                                 checkpoint_every=250), "optimisation")

    def validate(self) -> None:
        check_fields(self)
        self.arch.validate()


@dataclass
class SFTConfig:
    """`rlhfkit sft`: supervised fine-tuning on demonstrations (loss on response tokens only)."""
    model: str = opt("models/tldr-base", "local Hugging Face causal-LM directory to start from")
    data: str = opt("tldr", "'tldr' (the built-in world), 'conversation' (its transcripts, whole) or a JSONL / "
                            "Parquet file or `datasets` directory")
    valid_data: str = opt("", "optional held-out file in the same format, for the validation loss")
    out: str = opt("runs/sft", "output directory: the fine-tuned model and its checkpoints", writes="dir")
    max_len: int = opt(0, "longest prompt + response in tokens (0: the model's context length)", ge=0)
    resume: bool = opt(True, RESUME_HELP)
    task: TaskConfig = sub(TaskConfig, "the world, when data is a task ('tldr', 'conversation')")
    lora: LoRAConfig = sub(LoRAConfig, "LoRA adapters on the trained model (r 0: none)")
    train: TrainConfig = sub(lambda: TrainConfig(epochs=2.0), "optimisation")

    def validate(self) -> None:
        check_fields(self)
        if not self.model:
            raise ConfigError("sft needs --model DIR")
        if not self.data:
            raise ConfigError("sft needs --data ('tldr' or a file of demonstrations)")


@dataclass
class BestOfNConfig:
    """`rlhfkit bon`: best-of-n sampling against a reward model (an inference-time baseline)."""
    policy: str = opt("runs/sft", "causal-LM directory to sample from")
    reward_model: str = opt("", "reward model directory that picks the best answer; or give --reward")
    reward: str = opt("", REWARD_HELP)
    n: int = opt(16, "answers sampled per prompt; KL to the policy is log n - (n-1)/n", ge=1)
    eos_trick: bool = opt(True, "an answer that never emits EOS is never picked (else it is scored as cut)")
    prompts: str = opt("tldr", "'tldr' (the world's test prompts) or a JSONL / Parquet file with 'prompt'")
    n_prompts: int = opt(500, "with prompts 'tldr': how many test prompts", ge=1)
    out: str = opt("runs/bon", "output directory: completions.jsonl (best answer, every candidate and score)",
                   writes="dir")
    resume: bool = opt(True, RESUME_HELP)
    task: TaskConfig = sub(TaskConfig, "the world, when prompts is 'tldr'")
    sample: SampleConfig = sub(SampleConfig, "sampling of the candidates")

    def validate(self) -> None:
        check_fields(self)
        check_reward_source("bon", self.reward_model, self.reward)
        if self.prompts in TASKS and self.n_prompts > self.task.n_test:
            raise ConfigError(f"n_prompts ({self.n_prompts}) exceeds task.n_test ({self.task.n_test})")


@dataclass
class RSFTConfig:
    """`rlhfkit rsft`: rejection-sampling fine-tuning: SFT on the reward model's best of n, in rounds."""
    policy: str = opt("runs/sft", "causal-LM directory to start from (and sample from in round 1)")
    reward_model: str = opt("", "reward model directory that picks the best answer; or give --reward")
    reward: str = opt("", REWARD_HELP)
    n: int = opt(8, "answers sampled per prompt each round", ge=1)
    rounds: int = opt(2, "sample -> select -> fine-tune rounds, each from the latest policy", ge=1)
    prompts: str = opt("tldr", "'tldr' (the world's training prompts) or a JSONL / Parquet file with 'prompt'")
    prompts_per_round: int = opt(500, "prompts sampled each round (taken in turn from the prompt set)", ge=1)
    out: str = opt("runs/rsft", "output directory: round<r>/ per round, model/ the last", writes="dir")
    resume: bool = opt(True, RESUME_HELP)
    task: TaskConfig = sub(TaskConfig, "the world, when prompts is 'tldr'")
    sample: SampleConfig = sub(SampleConfig, "sampling of the candidates")
    train: TrainConfig = sub(lambda: TrainConfig(lr=1e-4, batch_size=16, epochs=1.0, warmup_steps=10),
                             "optimisation of each round")

    def validate(self, with_reward_fn: bool = False) -> None:
        check_fields(self)
        check_reward_source("rsft", self.reward_model, self.reward, with_reward_fn)


@dataclass
class RWSFTConfig:
    """`rlhfkit rwsft`: reward-weighted SFT, text loss plus a reward-weighted term on samples."""
    policy: str = opt("runs/sft", "causal-LM directory to start from and sample from")
    reward_model: str = opt("", "reward model directory that weighs the samples; or give --reward")
    reward: str = opt("", REWARD_HELP)
    demonstrations: str = opt("tldr", "demonstrations for the text loss: 'tldr' or a JSONL / Parquet file "
                                      "('' for none)")
    n: int = opt(8, "answers sampled per prompt", ge=1)
    tau: float = opt(0.1, "reward temperature: weights exp(r/tau) normalised per prompt", gt=0)
    alpha: float = opt(0.5, "weight of the text loss on demonstrations beside the reward term", ge=0)
    prompts: str = opt("tldr", "'tldr' (the world's training prompts) or a JSONL / Parquet file with 'prompt'")
    n_prompts: int = opt(500, "prompts to sample for", ge=1)
    out: str = opt("runs/rwsft", "output directory: the fine-tuned policy", writes="dir")
    resume: bool = opt(True, RESUME_HELP)
    task: TaskConfig = sub(TaskConfig, "the world, when prompts or demonstrations are 'tldr'")
    sample: SampleConfig = sub(SampleConfig, "sampling of the candidates")
    train: TrainConfig = sub(lambda: TrainConfig(lr=1e-4, batch_size=32, epochs=1.0, warmup_steps=10),
                             "optimisation")

    def validate(self, with_reward_fn: bool = False) -> None:
        check_fields(self)
        check_reward_source("rwsft", self.reward_model, self.reward, with_reward_fn)
