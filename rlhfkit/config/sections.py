"""Config sections the stages share: the world, optimisation, model shape, sampling, the RL update.

Limits on one field sit on the field (`opt(..., gt=0)`) and are checked by `check_fields`; a
section's `validate()` holds only the checks that span fields.
"""
from __future__ import annotations

from dataclasses import dataclass

from rlhfkit.algorithms.registry import RL_ALGORITHMS
from rlhfkit.engines import CHOICES
from rlhfkit.config.fields import ConfigError, opt

# experiment trackers (train/tracking.py)
REPORT_TO = ("none", "tensorboard", "trackio", "wandb")

DTYPES = ("float32", "bfloat16")
READOUTS = ("eos", "mean", "likelihood", "verdict")     # how a reward model reads a reward (models/heads.py)
RL_METHODS = tuple(RL_ALGORITHMS)
REWARD_HELP = ("instead of a reward model: a Python function (prompts, completions) -> list[float], as "
               "FILE.py:FUNCTION (a path from the working directory) or MODULE:FUNCTION (installed, or in the "
               "working directory)")


def check_reward_source(stage: str, reward_model: str, reward: str, with_reward_fn: bool = False,
                        required: bool = True) -> None:
    """A stage that scores samples takes one reward: --reward_model DIR, --reward SPEC, or a
    function handed to its `run` from Python (`with_reward_fn`). `required` false: the stage may
    have another (a task's environment) and checks that itself."""
    if reward and ":" not in reward:
        raise ConfigError(f"reward must look like 'FILE.py:FUNCTION' or 'MODULE:FUNCTION', got {reward!r}")
    if reward and reward_model:
        raise ConfigError(f"reward ({reward!r}) and reward_model ({reward_model!r}) are both given: "
                          f"score with one of them")
    if with_reward_fn and (reward_model or reward):
        raise ConfigError(f"{'reward_model' if reward_model else 'reward'} ({reward_model or reward!r}) is given "
                          f"beside a reward function: score with one of them")
    if required and not (reward or reward_model or with_reward_fn):
        raise ConfigError(f"{stage} needs --reward_model DIR or --reward FILE.py:FUNCTION | MODULE:FUNCTION")


@dataclass
class TaskConfig:
    """The built-in worlds: synthetic TL;DR posts, and the conversation world told from them."""
    seed: int = opt(0, "world seed: posts, references and labels are deterministic from it", ge=0)
    n_pretrain: int = opt(12000, "posts in the pretraining corpus", ge=1)
    n_train: int = opt(3000, "training prompts (demonstrations, comparisons)", ge=1)
    n_valid: int = opt(200, "validation prompts", ge=1)
    n_test: int = opt(500, "held-out test prompts for evaluation", ge=1)
    n_stats: int = opt(2000, "reference pairs used by `data tldr --stats`", ge=1)
    events: int = opt(2, "conversation: key events the assistant must gather (E, 1-4)", ge=1, le=4)
    writers: str = opt("", "the reference TL;DRs' writers (SFT data, comparisons' answers, evaluation references), "
                           "comma-separated from careful, decent, rushed, rambler, sloppy, copycat; '': all six. "
                           "Without careful ('decent,rushed,rambler,sloppy,copycat') the oracle's level is rare "
                           "under SFT: the hard TL;DR")


@dataclass
class TrainConfig:
    """Optimisation settings shared by the training stages."""
    lr: float = opt(1e-3, "peak learning rate (AdamW), linear warmup then cosine decay", gt=0)
    weight_decay: float = opt(0.0, "AdamW weight decay", ge=0)
    batch_size: int = opt(32, "sequences per optimizer step, over all processes under torchrun", ge=1)
    grad_accum: int = opt(1, "micro-batches each process splits its share of a batch into (less memory, the same "
                             "step)", ge=1)
    epochs: float = opt(1.0, "passes over the training data", gt=0)
    warmup_steps: int = opt(20, "linear warmup steps", ge=0)
    grad_clip: float = opt(1.0, "clip the gradient norm to this (0: off)", ge=0)
    seed: int = opt(0, "seed for initialisation, shuffling and dropout", ge=0)
    group_by_length: bool = opt(False, "batch items of similar length together (less padding): the shuffled items "
                                       "are sorted by length within windows of 64 batches, the batches shuffled. "
                                       "Faster, but it changes what is learned where lengths vary widely (README, "
                                       "'Conversations')")
    dtype: str = opt("float32", "float32 or bfloat16 (autocast); never float16 on CPU", choices=DTYPES)
    checkpoint_every: int = opt(200, "optimizer steps between resumable checkpoints (0: only at the end)", ge=0)
    threads: int = opt(0, "torch CPU threads (0: torch's default)", ge=0)
    max_loss: float = opt(0.0, "stop the run when the loss exceeds this (0: no limit; a non-finite loss always "
                               "stops it)", ge=0)
    report_to: str = opt("none", "experiment tracking of each step's scalars and the config: none, tensorboard "
                                 "(OUT/tensorboard), trackio or wandb (`pip install 'rlhfkit[NAME]'`)",
                         choices=REPORT_TO)


@dataclass
class LoRAConfig:
    """PEFT LoRA adapters on the trained model (`pip install 'rlhfkit[lora]'`)."""
    r: int = opt(0, "adapter rank; 0: no adapters, every weight trains", ge=0)
    alpha: float = opt(16.0, "adapter scale: the update is alpha / r x B A", gt=0)
    target_modules: str = opt("all-linear", "linear layers to adapt, comma-separated (e.g. q_proj,v_proj), or "
                                            "all-linear: every linear layer of the transformer blocks")


@dataclass
class ArchConfig:
    """Shape of the small Llama model `rlhfkit pretrain` builds."""
    vocab_size: int = opt(1024, "BPE vocabulary size, special tokens included (256 bytes + specials: >= 300)",
                          ge=300)
    hidden_size: int = opt(192, "model width", ge=1)
    intermediate_size: int = opt(512, "MLP width", ge=1)
    num_layers: int = opt(4, "transformer blocks", ge=1)
    num_heads: int = opt(6, "attention heads", ge=1)
    max_len: int = opt(320, "context length in tokens (prompt + response)", ge=2)

    def validate(self) -> None:
        if self.hidden_size % self.num_heads:
            raise ConfigError(f"arch.hidden_size ({self.hidden_size}) must be divisible by "
                              f"arch.num_heads ({self.num_heads})")
        if (self.hidden_size // self.num_heads) % 2:
            raise ConfigError(f"arch.hidden_size / arch.num_heads ({self.hidden_size // self.num_heads}) "
                              f"must be even (rotary embeddings rotate pairs of features)")


@dataclass
class SampleConfig:
    """How a policy is sampled."""
    temperature: float = opt(0.7, "sampling temperature", gt=0)
    max_new_tokens: int = opt(64, "response length limit in tokens (per turn, in a multi-turn task)", ge=1)
    max_turns: int = opt(8, "a multi-turn task's episodes end after this many of the policy's turns", ge=1)
    batch_size: int = opt(64, "prompts per generation batch", ge=1)
    seed: int = opt(1234, "sampling seed (fixed, so methods are compared on the same draws)", ge=0)
    engine: str = opt("auto", "generation engine: rlhfkit (own decode loop with a static KV cache, Llama-family "
                              "models), hf (transformers' generate, any model), vllm (vLLM in the process, on a GPU; "
                              "the [vllm] extra), or auto (rlhfkit where it runs the model, else hf)", choices=CHOICES)


@dataclass
class RLAlgoConfig:
    """Hyperparameters of the RL update (defaults: the N+ / Stiennon PPO recipe where it applies)."""
    steps: int = opt(40, "RL iterations: generate -> score -> advantages -> update", ge=1)
    prompts_per_step: int = opt(64, "prompts per iteration (rloo and grpo sample k answers for each)", ge=1)
    k: int = opt(4, "answers per prompt for the grouped algorithms, rloo and grpo (ppo and reinforce_pp sample 1)",
                 ge=1)
    epochs: int = opt(4, "optimisation passes over each batch of rollouts", ge=1)
    minibatch_size: int = opt(32, "rollouts per gradient step", ge=1)
    lr: float = opt(1e-4, "learning rate of policy and value model (AdamW, eps 1e-5; see lr_decay)", gt=0)
    lr_decay: bool = opt(True, "decay the lr linearly to 0 over the run (N+); false: constant after the warm-up, so "
                               "a run's first N iterations are the N-iteration run and its kept policies (keep_at) "
                               "a budget sweep")
    keep_at: str = opt("", "iterations whose policy is kept as OUT/at<N>/model, comma-separated")
    # on by default: measured on the demo's PPO over three seeds (README, "PPO's recipe"), it cuts the
    # first iterations' KL and clipping at an unchanged final KL and win rate
    warmup_steps: int = opt(5, "iterations of linear lr warm-up (0: none)", ge=0)
    value_warmup: int = opt(0, "ppo: first iterations that train only the value model, the policy held still "
                               "(0: none)", ge=0)
    # Stiennon et al. use 0.05; with the demo's reward model (6,000 comparisons, blind to flipped
    # polarities) the penalty works as early stopping, and 0.15 did best of three (README, "PPO's beta")
    beta: float = opt(0.15, "KL coefficient (the initial one when target_kl > 0)", ge=0)
    target_kl: float = opt(0.0, "adaptive KL controller's target sequence KL in nats (0: fixed beta)", ge=0)
    kl_horizon: int = opt(10000, "episodes over which the adaptive beta may change e-fold", ge=1)
    clip: float = opt(0.2, "policy ratio clip", gt=0)
    whiten_rewards: bool = opt(False, "ppo and reinforce_pp: scale the per-token rewards to unit variance over the "
                                      "batch before advantages (N+'s option; beta and the EOS penalty then act "
                                      "in those units)")
    eos_trick: bool = opt(True, "an answer that never emits EOS scores eos_penalty instead of its reward")
    eos_penalty: float = opt(-1.0, "the score the EOS trick gives")
    grad_clip: float = opt(1.0, "clip the gradient norm to this (0: off)", ge=0)
    # TRL's vllm_importance_sampling_cap was 2 when it added the correction (later versions: 3)
    tis_cap: float = opt(2.0, "an external engine's samples (vllm): weight each token's policy gradient by "
                              "min(pi_old / pi_sampler, tis_cap), truncated importance sampling (0: off)", ge=0)
    dtype: str = opt("float32", "float32 or bfloat16: autocast of the update's forward passes (generation and "
                                "scoring stay float32)", choices=DTYPES)
    seed: int = opt(0, "seed for sampling and minibatch order", ge=0)
    checkpoint_every: int = opt(10, "iterations between resumable checkpoints (0: only at the end)", ge=0)
    max_kl: float = opt(50.0, "stop the run when the rollouts' mean sequence KL to the reference exceeds this, "
                              "in nats (0: no limit; non-finite values always stop it)", ge=0)
    max_loss: float = opt(0.0, "stop the run when a minibatch loss exceeds this (0: no limit)", ge=0)
    report_to: str = opt("none", "experiment tracking of each iteration's scalars, sample answers and the config: "
                                 "none, tensorboard (OUT/tensorboard), trackio or wandb (`pip install "
                                 "'rlhfkit[NAME]'`)", choices=REPORT_TO)
    log_completions_every: int = opt(10, "iterations between the sample answers sent to the tracker (0: none)",
                                     ge=0)

    def validate(self, algo: str) -> None:
        if self.value_warmup and not RL_ALGORITHMS[algo].critic:
            raise ConfigError(f"rl.value_warmup is for algorithms with a value model; {algo} has none")
        if self.value_warmup >= self.steps:
            raise ConfigError(f"rl.value_warmup ({self.value_warmup}) must be below rl.steps ({self.steps})")
        if RL_ALGORITHMS[algo].grouped and self.k < 2:
            raise ConfigError(f"rl.k must be >= 2 for {algo} (its baseline needs other samples), got {self.k}")
        outside = [n for n in self.keep_steps if not 1 <= n <= self.steps]
        if outside:
            raise ConfigError(f"rl.keep_at: iteration {outside[0]} is outside the run's 1..{self.steps}")

    @property
    def keep_steps(self) -> list[int]:
        """keep_at's iterations, in order."""
        items = [x.strip() for x in self.keep_at.split(",") if x.strip()]
        bad = next((x for x in items if not x.isdigit()), None)
        if bad is not None:
            raise ConfigError(f"rl.keep_at: expected iterations like '10,30,120', got {bad!r}")
        return sorted({int(x) for x in items})


# ---- the RL algorithms' own sections: `--ppo.lam`, `--grpo.eps` (train/rl.py hands the section
# named after --algo to the algorithm's advantages() and loss(), as `own`)
@dataclass
class PPOOptions:
    """ppo's own options: GAE and the value model (the N+ / Stiennon et al. values)."""
    gamma: float = opt(1.0, "discount", ge=0, le=1)
    lam: float = opt(0.95, "GAE lambda", ge=0, le=1)
    vf_coef: float = opt(0.1, "value loss coefficient", ge=0)
    vf_clip: float = opt(0.2, "value clip: how far one update may move a value from the rollout's", gt=0)


GRPO_LOSS_AGGREGATIONS = ("seq_mean_token_mean", "token_mean", "seq_mean_token_sum_norm")


@dataclass
class GRPOOptions:
    """grpo's own options."""
    eps: float = opt(1e-4, "added to each group's reward std before dividing (a group of equal rewards gets "
                           "advantage 0)", gt=0)
    scale_advantages: bool = opt(True, "divide each group's advantages by its reward std; false: score - group "
                                       "mean, Dr.GRPO's unbiased form (Liu et al. 2025)")
    loss_agg: str = opt("seq_mean_token_mean", "how per-token losses make the loss: seq_mean_token_mean (GRPO: each "
                                               "sequence's mean, then their mean), token_mean (DAPO: every action "
                                               "token weighs the same), seq_mean_token_sum_norm (Dr.GRPO: each "
                                               "sequence's sum over a constant length, then their mean)",
                        choices=GRPO_LOSS_AGGREGATIONS)
    norm_length: int = opt(0, "seq_mean_token_sum_norm's constant length (0: the rollout batch's longest answer)",
                           ge=0)
    clip_high: float = opt(0.0, "upper ratio clip, 1 + clip_high (DAPO's clip-higher; 0: rl.clip, symmetric)",
                           ge=0)
    importance_level: str = opt("token", "token: one ratio per token; sequence: GSPO's one ratio per answer, the "
                                         "geometric mean of its tokens' ratios (Zheng et al. 2025)",
                                choices=("token", "sequence"))


# where the options that moved into an algorithm's section went (a config naming the old place is told)
MOVED_FIELDS = {f"rl.{name}": f"ppo.{name}" for name in ("gamma", "lam", "vf_coef", "vf_clip")}
