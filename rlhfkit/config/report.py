"""Configs of the stages that compare policies: `rlhfkit eval` and the end-to-end `rlhfkit demo`."""
from __future__ import annotations

from dataclasses import dataclass, fields, is_dataclass, replace
from typing import Any

from rlhfkit.algorithms.registry import RL_ALGORITHMS
from rlhfkit.config.fields import ConfigError, check_fields, opt, sub
from rlhfkit.config.sections import (READOUTS, REPORT_TO, RL_METHODS, GRPOOptions, PPOOptions, RLAlgoConfig,
                                     SampleConfig, TaskConfig, TrainConfig)

def spread_report_to(cfg: Any) -> Any:
    """A pipeline's config with its report_to in every section that trains (those with a report_to)."""
    if cfg.report_to == "none":
        return cfg
    return replace(cfg, **{f.name: replace(getattr(cfg, f.name), report_to=cfg.report_to) for f in fields(cfg)
                           if is_dataclass(getattr(cfg, f.name)) and hasattr(getattr(cfg, f.name), "report_to")})


# upper bounds, not methods: rsft and ppo with the gold judge as their reward, at ppo's episodes
GOLD_METHODS = ("gold_rsft", "gold_ppo")
METHODS = ("bon", "rsft", "rwsft", "slic", "dpo", "ipo") + RL_METHODS + GOLD_METHODS
ALL_METHODS = ("bon", "rsft", "rwsft", "slic", "dpo", "ipo", "ppo")


def trained_as(method: str) -> str:
    """The trainer behind a demo method: a gold upper bound's method without its reward model."""
    return method.removeprefix("gold_")


JUDGES = ("rm", "fn", "pairwise")     # `rlhfkit eval --judge KIND:TARGET` on the user's prompts


def parse_policies(spec: str) -> dict[str, str]:
    """'a=DIR,b=FILE.jsonl' as {name: path}."""
    out = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ConfigError(f"policies: expected name=DIR, got {item!r}")
        out[name] = path
    if not out:
        raise ConfigError("policies: give at least one name=DIR")
    return out


@dataclass
class EvalConfig:
    """`rlhfkit eval`: judge policies on held-out prompts: the built-in world's against its reference
    TL;DRs with the gold judge, or your own (--prompts) with the judge you name (--judge)."""
    policies: str = opt("sft=runs/sft", "comma-separated name=DIR (or name=FILE.jsonl of written answers) pairs, "
                                        "e.g. 'base=models/tldr-base,sft=runs/sft,bon=runs/bon/completions.jsonl'")
    kl_ref: str = opt("runs/sft", "model the KL of each policy is measured against (the SFT policy)")
    out: str = opt("runs/eval", "directory for results.json and report.md", writes="dir")
    n_prompts: int = opt(500, "held-out test prompts to evaluate on", ge=1)
    bootstrap: int = opt(2000, "bootstrap resamples for the 95% confidence intervals", ge=1)
    prompts: str = opt("", "your own prompts in place of the built-in world: a JSONL / Parquet file or datasets "
                           "directory with 'prompt' and optionally the reference answer ('reference' or "
                           "'completion'); the first n_prompts are used; needs --judge")
    judge: str = opt("", "with --prompts: rm:DIR (a reward model's score), fn:FILE.py:FUNCTION or fn:MODULE:FUNCTION "
                         "(a Python (prompts, completions) -> scores) or pairwise:DIR (a reward model reading both "
                         "answers: win probability sigmoid(r - r_baseline))")
    task: TaskConfig = sub(TaskConfig, "the world")
    sample: SampleConfig = sub(SampleConfig, "sampling")

    def validate(self) -> None:
        check_fields(self)
        if bool(self.prompts) != bool(self.judge):
            raise ConfigError("prompts and judge go together: your prompts need a judge (--judge rm:DIR, "
                              "fn:FILE.py:FUNCTION or pairwise:DIR), and the built-in world has its own")
        kind, _, target = self.judge.partition(":")
        if self.judge and (kind not in JUDGES or not target):
            raise ConfigError(f"judge: expected rm:DIR, fn:FILE.py:FUNCTION or pairwise:DIR, got {self.judge!r}")
        if not self.prompts and self.n_prompts > self.task.n_test:
            raise ConfigError(f"n_prompts ({self.n_prompts}) exceeds task.n_test ({self.task.n_test})")
        parse_policies(self.policies)


@dataclass
class DemoConfig:
    """`rlhfkit demo`: the built-in RL-vs-SL experiment, end to end."""
    out: str = opt("runs/demo", "directory for every stage's output and the report", writes="dir")
    resume: bool = opt(True, "true: each stage continues or skips its own finished job, and a stage of another job "
                             "(another config) is refused; false: every stage starts over")
    base_model: str = opt("models/tldr-base", "the shipped base model to start from")
    methods: str = opt("bon,dpo,ppo", "methods beside SFT, comma-separated, from " + ", ".join(METHODS) +
                                         "; 'all' = the eight rows (sft, " + ", ".join(ALL_METHODS) + "). "
                                         "gold_rsft and gold_ppo are upper bounds: rsft and ppo with the gold judge as "
                                         "their reward, at ppo's episodes (or --samples)")
    seeds: int = opt(1, "training seeds (world fixed); the report gives mean and CI over them", ge=1)
    n_prompts: int = opt(500, "held-out test prompts to evaluate on", ge=1)
    label_budget: int = opt(6000, "pairwise comparisons the simulated labelers make (a K-way ranking holds C(K,2))",
                            ge=1)
    label_k: int = opt(4, "answers sampled from the SFT policy per labelled prompt", ge=2)
    label_temperature: float = opt(0.7, "temperature of the answers shown to labelers (on-policy: the RL one)", gt=0)
    task: TaskConfig = sub(TaskConfig, "the world")
    sft: TrainConfig = sub(lambda: TrainConfig(epochs=2.0, dtype="bfloat16"), "SFT optimisation")
    rm: TrainConfig = sub(lambda: TrainConfig(lr=3e-4, batch_size=16, epochs=2.0, warmup_steps=10, dtype="bfloat16"),
                          "reward-model optimisation (batch_size counts rankings)")
    rm_readout: str = opt("eos", "how the reward model reads a reward (`rlhfkit rm --readout`): eos, mean, "
                                 "likelihood or verdict (asked as 'The TL;DR is right / not')", choices=READOUTS)
    rm_likelihood_weight: float = opt(1.0, "rm_readout likelihood: weight of the log-likelihood term", ge=0)
    report_to: str = opt("none", "experiment tracking for every stage the demo trains (each section's report_to): "
                                 "none, tensorboard, trackio or wandb", choices=REPORT_TO)
    # 2 epochs, not N+'s 4: no measured loss in win rate, and half the update, the bulk of PPO's time;
    # lr 5e-4, not 1e-4: with the gold judge as its reward PPO gets further (README, "Where PPO stops").
    # Every training stage of the demo runs in bf16 autocast: same results, faster (bench/README.md)
    rl: RLAlgoConfig = sub(lambda: RLAlgoConfig(epochs=2, lr=5e-4, dtype="bfloat16"),
                           "the RL update, shared by every RL method")
    ppo: PPOOptions = sub(PPOOptions, "ppo's own options")
    grpo: GRPOOptions = sub(GRPOOptions, "grpo's own options")
    pref: TrainConfig = sub(lambda: TrainConfig(lr=1e-4, batch_size=16, epochs=1.0, warmup_steps=10, dtype="bfloat16"),
                            "optimisation of dpo, ipo and slic (batch_size counts rankings)")
    dpo_beta: float = opt(0.1, "dpo's beta", gt=0)
    ipo_beta: float = opt(0.1, "ipo's beta", gt=0)
    bon_n: int = opt(8, "best-of-n's n (KL to SFT log n - (n-1)/n)", ge=1)
    sample_n: int = opt(8, "answers sampled per prompt for rsft and rwsft", ge=1)
    rsft_rounds: int = opt(2, "rejection-sampling rounds", ge=1)
    rwsft_tau: float = opt(0.1, "rwsft's reward temperature", gt=0)
    rwsft_alpha: float = opt(0.5, "rwsft's weight on the demonstrations' text loss", ge=0)
    sl: TrainConfig = sub(lambda: TrainConfig(lr=1e-4, batch_size=16, epochs=1.0, warmup_steps=10, dtype="bfloat16"),
                          "optimisation of rsft (each round) and rwsft")
    samples: int = opt(0, "reward-model-scored samples every training method that samples draws, for comparisons "
                          "at equal budget: sets the RL methods' rl.steps (episodes = steps x rl.prompts_per_step, "
                          "x rl.k for rloo and grpo), rsft's prompts per round (rounds x prompts x sample_n) and "
                          "rwsft's prompts (prompts x sample_n); 0: each method's own settings. Best-of-n, an "
                          "inference-time method, keeps bon_n per test prompt", ge=0)
    eval: SampleConfig = sub(SampleConfig, "sampling, for rollouts and for evaluation")

    def validate(self) -> None:
        check_fields(self)
        from rlhfkit.tasks.tldr.writers import writer_pool     # the world imports this package: not at the top
        writer_pool(self.task.writers)
        if self.n_prompts > self.task.n_test:
            raise ConfigError(f"n_prompts ({self.n_prompts}) exceeds task.n_test ({self.task.n_test})")
        for m in self.method_list:
            if m not in METHODS:
                raise ConfigError(f"methods: unknown method {m!r}; choose from {', '.join(METHODS)} or 'all'")
            if trained_as(m) in RL_METHODS:
                self.rl.validate(trained_as(m))
            samples, per_unit = self.method_samples(m), self.samples_per_unit(m)
            if samples and per_unit and samples % per_unit:
                raise ConfigError(f"{m}'s samples ({samples}) must be a multiple of {per_unit}, the samples it "
                                  "draws per RL iteration (or rsft round prompt, or rwsft prompt)")

    def samples_per_unit(self, method: str) -> int:
        """What one unit of a sampling method's budget draws: an RL iteration's episodes, rsft's
        rounds x sample_n per prompt of a round, rwsft's sample_n per prompt; 0 for the others."""
        method = trained_as(method)
        if method in RL_METHODS:
            return self.rl.prompts_per_step * (self.rl.k if RL_ALGORITHMS[method].grouped else 1)
        return {"rsft": self.rsft_rounds * self.sample_n, "rwsft": self.sample_n}.get(method, 0)

    def method_samples(self, method: str) -> int:
        """The reward-scored samples a method is given: --samples; a gold upper bound without it,
        ppo's episodes (so both bounds spend the same); 0: the method's own settings."""
        if self.samples or method not in GOLD_METHODS:
            return self.samples
        return self.rl.steps * self.samples_per_unit("ppo")

    @property
    def method_list(self) -> list[str]:
        """The methods beside SFT, in the report's order (supervised first, then RL)."""
        given = [m.strip() for m in self.methods.split(",") if m.strip()]
        given = [x for m in given for x in (ALL_METHODS if m == "all" else (m,))]
        return [m for m in METHODS if m in given] + [m for m in dict.fromkeys(given) if m not in METHODS]


# the conversation experiment's methods, in the report's order: per-turn SL, conversation SL, RL
CONVERSATION_METHODS = ("turn_bon", "turn_rsft", "turn_dpo", "conv_rsft", "conv_dpo", "ppo", "rloo")
TURN_SL, CONVERSATION_SL, CONVERSATION_RL = ("turn_bon", "turn_rsft", "turn_dpo"), ("conv_rsft", "conv_dpo"), \
    ("ppo", "rloo")


def parse_events(spec: str) -> list[int]:
    """'1,2,3,4' as [1, 2, 3, 4]: the doses E of a conversation experiment."""
    try:
        doses = [int(x) for x in spec.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"events: expected comma-separated integers 1-4, got {spec!r}") from None
    if not doses or any(not 1 <= e <= 4 for e in doses) or len(set(doses)) != len(doses):
        raise ConfigError(f"events: expected distinct integers 1-4, comma-separated, got {spec!r}")
    return doses


@dataclass
class ConversationDemoConfig:
    """`rlhfkit demo --task conversation`: per-turn SL vs conversation SL vs RL, in the conversation world."""
    out: str = opt("runs/conversation", "directory for every stage's output and the report", writes="dir")
    resume: bool = opt(True, "true: each stage continues or skips its own finished job; false: every stage starts "
                             "over")
    base_model: str = opt("models/conversation-base", "the shipped base model (posts and transcripts) to start from")
    events: str = opt("2", "doses E, comma-separated (1-4): key events a good conversation must gather; "
                           "'1,2,3,4' is the dose sweep")
    methods: str = opt(",".join(CONVERSATION_METHODS), "methods beside SFT, comma-separated, from "
                       + ", ".join(CONVERSATION_METHODS))
    seeds: int = opt(1, "training seeds (world fixed); the report gives mean and CI over them", ge=1)
    episodes: int = opt(1024, "conversations each sampling method samples in training (ppo, rloo, conv_rsft; "
                              "turn_rsft samples episodes / sample_n conversations with sample_n turns per turn)",
                        ge=1)
    label_budget: int = opt(1200, "comparisons the simulated labelers make of each kind: whole conversations "
                                  "(conversation RM, conv_dpo, RL) and single turns (turn RM, turn_dpo)", ge=1)
    label_k: int = opt(4, "conversations (or candidate turns) sampled from SFT per labelled opening (or state)",
                       ge=2)
    sample_n: int = opt(4, "rsft's n (whole conversations per opening, or candidate turns per turn) and "
                           "turn_bon's", ge=2)
    n_prompts: int = opt(200, "held-out test openings every policy converses on", ge=1)
    ceiling_prompts: int = opt(100, "test openings of the selection ceiling (gold best-of-n over SFT "
                                    "conversations)", ge=1)
    ceiling_n: int = opt(16, "the selection ceiling's largest n (a power of 2)", ge=1)
    task: TaskConfig = sub(lambda: TaskConfig(n_valid=100), "the world (task.events is set from events)")
    sft: TrainConfig = sub(lambda: TrainConfig(epochs=1.0), "SFT on the mixed-skill transcripts")
    rm: TrainConfig = sub(lambda: TrainConfig(lr=3e-4, batch_size=16, epochs=2.0, warmup_steps=10),
                          "optimisation of both reward models (batch_size counts rankings)")
    rl: RLAlgoConfig = sub(lambda: RLAlgoConfig(epochs=2, lr=5e-4), "the RL update of ppo and rloo: "
                           "rl.prompts_per_step conversations per iteration for both (rloo: / rl.k openings, k "
                           "each); rl.steps is set from episodes")
    ppo: PPOOptions = sub(PPOOptions, "ppo's own options")
    pref: TrainConfig = sub(lambda: TrainConfig(lr=1e-4, batch_size=16, epochs=2.0, warmup_steps=10),
                            "optimisation of turn_dpo and conv_dpo (batch_size counts rankings)")
    dpo_beta: float = opt(0.1, "dpo's beta", gt=0)
    report_to: str = opt("none", "experiment tracking for every stage the experiment trains: none, tensorboard, "
                                 "trackio or wandb", choices=REPORT_TO)
    sl: TrainConfig = sub(lambda: TrainConfig(lr=1e-4, batch_size=16, epochs=2.0, warmup_steps=10),
                          "optimisation of turn_rsft and conv_rsft")
    sample: SampleConfig = sub(lambda: SampleConfig(max_new_tokens=96),
                               "sampling of every conversation (sample.max_turns is the world's turn limit)")

    def validate(self) -> None:
        check_fields(self)
        parse_events(self.events)
        for m in self.method_list:
            if m not in CONVERSATION_METHODS:
                raise ConfigError(f"methods: unknown method {m!r}; choose from {', '.join(CONVERSATION_METHODS)}")
        for algo in CONVERSATION_RL:
            if algo in self.method_list:
                self.rl.validate(algo)
        if self.episodes % self.rl.prompts_per_step:
            raise ConfigError(f"episodes ({self.episodes}) must be a multiple of rl.prompts_per_step "
                              f"({self.rl.prompts_per_step}), the conversations of one RL iteration")
        if "rloo" in self.method_list and self.rl.prompts_per_step % self.rl.k:
            raise ConfigError(f"rl.prompts_per_step ({self.rl.prompts_per_step}) must be a multiple of rl.k "
                              f"({self.rl.k}): rloo samples k conversations of each opening")
        if self.episodes % self.sample_n:
            raise ConfigError(f"episodes ({self.episodes}) must be a multiple of sample_n ({self.sample_n})")
        for name, n in (("n_prompts", self.n_prompts), ("ceiling_prompts", self.ceiling_prompts)):
            if n > self.task.n_test:
                raise ConfigError(f"{name} ({n}) exceeds task.n_test ({self.task.n_test})")
        if self.ceiling_n & (self.ceiling_n - 1):
            raise ConfigError(f"ceiling_n must be a power of 2, got {self.ceiling_n}")

    @property
    def method_list(self) -> list[str]:
        given = [m.strip() for m in self.methods.split(",") if m.strip()]
        return [m for m in CONVERSATION_METHODS if m in given] + [m for m in given if m not in CONVERSATION_METHODS]

    @property
    def doses(self) -> list[int]:
        return parse_events(self.events)


SWEEP_METHODS = ("bon", "rsft", "ppo", "gold_ppo")


@dataclass
class SweepConfig:
    """`rlhfkit sweep`: PPO, RSFT and best-of-n over a range of sample budgets, from a finished demo."""
    demo: str = opt("runs/demo", "a finished `rlhfkit demo` directory: each seed's sft/ and rm/ are the start, and "
                                 "its world and sampling are reused")
    out: str = opt("runs/sweep", "directory for every run, results.json, report.md and sweep.png", writes="dir")
    resume: bool = opt(True, "true: each run continues or skips its own finished job; false: every run starts over")
    seeds: int = opt(3, "seeds of the demo to start from (seed0 ... seed{N-1})", ge=1)
    only_seed: int = opt(-1, "run this one seed (0 ... seeds-1), e.g. to spread the seeds over processes or "
                             "machines, then report over every seed whose results OUT/seed*/ holds; -1: every seed",
                         ge=-1)
    samples: str = opt("2560,7680,30720", "reward-scored samples per method (PPO episodes; RSFT's rounds x prompts x "
                                          "sample_n), comma-separated: one long PPO run per seed and reward, kept at "
                                          "each (its lr constant after the warm-up, so each is that budget's run)")
    methods: str = opt(",".join(SWEEP_METHODS), "from " + ", ".join(SWEEP_METHODS) + " (gold_ppo: ppo with the gold "
                                                "judge as its reward, the upper bound)")
    join: str = opt("", "another sweep's OUT from the same demo (e.g. gold_ppo run there on its own): its methods "
                        "join this report seed by seed, so the paired differences cover both; it must have finished "
                        "every seed reported here. Empty: none")
    bon_n: int = opt(64, "best-of-n's largest n, on the test prompts (the curve at n = 1, 2, 4, ...)", ge=1)
    sample_n: int = opt(8, "answers sampled per prompt for rsft", ge=1)
    rsft_rounds: int = opt(2, "rejection-sampling rounds", ge=1)
    # the demo's PPO at a batch of 256 prompts, lr held constant after the warm-up
    rl: RLAlgoConfig = sub(lambda: RLAlgoConfig(prompts_per_step=256, minibatch_size=64, epochs=2, lr=5e-4,
                                                lr_decay=False, dtype="bfloat16"),
                           "the RL update (rl.steps, rl.keep_at and rl.seed are set by the sweep from --samples "
                           "and the seed)")
    ppo: PPOOptions = sub(PPOOptions, "ppo's own options")
    sl: TrainConfig = sub(lambda: TrainConfig(lr=1e-4, batch_size=16, epochs=1.0, warmup_steps=10, dtype="bfloat16"),
                          "optimisation of each rsft round")

    @property
    def budgets(self) -> list[int]:
        items = [x.strip() for x in self.samples.split(",") if x.strip()]
        bad = next((x for x in items if not x.isdigit() or int(x) == 0), None)
        if bad is not None or not items:
            raise ConfigError(f"samples: expected budgets like '2560,7680,30720', got {bad or self.samples!r}")
        return sorted({int(x) for x in items})

    @property
    def method_list(self) -> list[str]:
        given = [m.strip() for m in self.methods.split(",") if m.strip()]
        unknown = next((m for m in given if m not in SWEEP_METHODS), None)
        if unknown is not None:
            raise ConfigError(f"methods: unknown method {unknown!r}; choose from {', '.join(SWEEP_METHODS)}")
        return [m for m in SWEEP_METHODS if m in given]

    def validate(self) -> None:
        check_fields(self)
        if self.only_seed >= self.seeds:
            raise ConfigError(f"only_seed: {self.only_seed} is not one of the {self.seeds} seeds (0 ... {self.seeds - 1})")
        if self.rl.lr_decay or self.rl.keep_at:
            raise ConfigError("sweep: rl.lr_decay must stay false and rl.keep_at empty: the sweep keeps one run's "
                              "policy at each budget, which is that budget's run only with a constant lr")
        methods = self.method_list
        for b in self.budgets:
            units = {m: u for m, u in (("ppo", self.rl.prompts_per_step), ("gold_ppo", self.rl.prompts_per_step),
                                       ("rsft", self.rsft_rounds * self.sample_n)) if m in methods}
            for m, unit in units.items():
                if b % unit:
                    raise ConfigError(f"samples: {b} is not a multiple of {unit}, the samples one {m} "
                                      f"{'prompt' if m == 'rsft' else 'iteration'} draws")
        if {"ppo", "gold_ppo"} & set(methods):
            replace(self.rl, steps=max(self.budgets) // self.rl.prompts_per_step).validate("ppo")
