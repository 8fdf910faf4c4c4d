"""Config of `rlhfkit data vader` (the same dataclass machinery as rlhfkit.config)."""
from __future__ import annotations

from dataclasses import dataclass

from rlhfkit.config import ConfigError, RLAlgoConfig, SampleConfig, TrainConfig, check_fields, opt, sub

SPLITS = ("train", "valid", "test")


@dataclass
class DataVaderConfig:
    """`rlhfkit data vader`: comparisons, rankings and prompts from the VADER human sentiment ratings."""
    out: str = opt("", "directory to write the JSONL files and stats.json into", writes="dir")
    archive: str = opt("", "a local copy of the ratings instead of the pip download: the vaderSentiment-3.3.2 "
                           "sdist (.tar.gz), its inner hutto_ICWSM_2014.tar.gz or that extracted")
    cache_dir: str = opt("~/.cache/rlhfkit/vader", "where the downloaded sdist is kept between runs", writes="dir")
    seed: int = opt(0, "seed of the sentence split and of the pair and ranking draws", ge=0)
    valid_frac: float = opt(0.1, "share of each corpus's sentences held out for validation", ge=0, lt=1)
    test_frac: float = opt(0.1, "share of each corpus's sentences held out for test (train is the rest)",
                           ge=0, lt=1)
    # above 0: a pair needs a preferred side
    min_gap: float = opt(1.0, "least difference of mean rating between the two sides of a pair (and "
                              "between neighbours in a ranking)", gt=0)
    k: int = opt(4, "answers per K-way ranking", ge=2)
    n_pairs_train: int = opt(20000, "comparisons drawn from the train sentences", ge=0)
    n_pairs_valid: int = opt(2000, "comparisons drawn from the valid sentences", ge=0)
    n_pairs_test: int = opt(2000, "comparisons drawn from the test sentences", ge=0)
    n_rankings_train: int = opt(5000, "K-way rankings drawn from the train sentences", ge=0)
    n_rankings_valid: int = opt(500, "K-way rankings drawn from the valid sentences", ge=0)
    n_rankings_test: int = opt(500, "K-way rankings drawn from the test sentences", ge=0)
    prompt_words: int = opt(4, "words of a movie-review sentence given as the continuation prompt", ge=1)
    positive_min: float = opt(2.0, "least mean rating of a sentence in the positive-sentence SFT set")

    def validate(self) -> None:
        check_fields(self)
        if not self.out:
            raise ConfigError("data vader needs --out DIR")
        if self.valid_frac + self.test_frac >= 1:
            raise ConfigError(f"valid_frac + test_frac must leave some train sentences, "
                              f"got {self.valid_frac} + {self.test_frac}")

    def count(self, kind: str, split: str) -> int:
        """n_pairs_<split> or n_rankings_<split>."""
        return getattr(self, f"n_{kind}_{split}")


@dataclass
class VaderExperimentConfig:
    """`rlhfkit vader`: a real model on real human ratings: SmolLM2 tuned to continue reviews more positively."""
    out: str = opt("runs/vader", "directory for every stage's output and the report", writes="dir")
    resume: bool = opt(True, "true: each stage continues or skips its own finished job, and a stage of another job "
                             "(another config) is refused; false: every stage starts over")
    model: str = opt("smollm2", "the start model: smollm2 (imported once into base_dir) or a causal-LM directory")
    base_dir: str = opt("models/smollm2", "where `model import smollm2` writes the start model", writes="dir")
    archive: str = opt("", "local copy of the ratings (see `data vader --archive`); empty: pip download")
    methods: str = opt("sft,bon,dpo,ppo", "methods beside the start model, from sft, bon, dpo, ppo")
    rm_pairs: int = opt(2000, "human comparisons the reward model (and DPO) learn from", ge=1)
    n_prompts: int = opt(200, "held-out review openings every method continues", ge=1)
    bon_n: int = opt(8, "best-of-n's n", ge=1)
    dpo_beta: float = opt(0.1, "dpo's beta", gt=0)
    rm: TrainConfig = sub(lambda: TrainConfig(lr=2e-5, batch_size=16, epochs=1.0, warmup_steps=10,
                                              dtype="bfloat16"), "reward-model optimisation")
    sft: TrainConfig = sub(lambda: TrainConfig(lr=2e-5, batch_size=16, epochs=1.0, warmup_steps=10,
                                               dtype="bfloat16"), "SFT on positive sentences")
    dpo: TrainConfig = sub(lambda: TrainConfig(lr=5e-6, batch_size=16, epochs=1.0, warmup_steps=10,
                                               dtype="bfloat16"), "DPO on the human comparisons")
    # no EOS trick: a continuation cut at the limit is a fine answer here, read as if it ended there
    # lr 3e-5, beta 0.05, 40 steps: lr 1e-5, beta 0.1, 30 steps moved VADER's score by +0.02 only (README);
    # no lr warm-up, as when its README figures were measured
    rl: RLAlgoConfig = sub(lambda: RLAlgoConfig(steps=40, prompts_per_step=32, epochs=2, minibatch_size=16,
                                                lr=3e-5, beta=0.05, eos_trick=False, dtype="bfloat16",
                                                checkpoint_every=5, warmup_steps=0), "PPO")
    sample: SampleConfig = sub(lambda: SampleConfig(temperature=0.7, max_new_tokens=24, batch_size=32),
                               "sampling, for rollouts and for evaluation")

    def validate(self) -> None:
        check_fields(self)
        unknown = set(self.method_list()) - set(VADER_METHODS)
        if unknown:
            raise ConfigError(f"methods: unknown {sorted(unknown)}; choose from {', '.join(VADER_METHODS)}")

    def method_list(self) -> list[str]:
        return [m.strip() for m in self.methods.split(",") if m.strip()]


VADER_METHODS = ("sft", "bon", "dpo", "ppo")
