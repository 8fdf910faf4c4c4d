"""Configs of the `rlhfkit label` commands (the same dataclass machinery as rlhfkit.config)."""
from __future__ import annotations

from dataclasses import dataclass

from rlhfkit.config import ConfigError, SampleConfig, TaskConfig, opt, sub


@dataclass
class LabelServeConfig:
    """`rlhfkit label serve`: the labeling web app."""
    db: str = opt("sqlite:///runs/label/labels.db", "database URL: sqlite:///FILE (WAL) or postgresql://...")
    admin_token: str = opt("", "token for the admin pages (empty: a random one, printed at start)")
    host: str = opt("127.0.0.1", "address to listen on")
    port: int = opt(8000, "port to listen on")
    reward_model: str = opt("", "a reward model the labels are held against on the stats page (optional)")
    gold: bool = opt(False, "also hold the labels against the built-in world's gold judge (its prompts only)")
    task: TaskConfig = sub(TaskConfig, "the world, with --gold")

    def validate(self) -> None:
        if not (self.db.startswith("sqlite:///") or self.db.startswith("postgresql")):
            raise ConfigError(f"db must be sqlite:///FILE or a postgresql:// URL, got {self.db!r}")


@dataclass
class LabelCampaignConfig:
    """`rlhfkit label campaign create`: a labeling campaign from a rollouts file (prompt + 2..K completions)."""
    rollouts: str = opt("", "JSONL / Parquet with 'prompt' and 'completions' (also accepted as --from)")
    name: str = opt("campaign", "campaign name")
    overlap: int = opt(1, "labelers who see each item (2+ measures agreement)")
    invite: str = opt("", "comma-separated labeler names to invite now; their links are printed")
    base_url: str = opt("http://127.0.0.1:8000", "where the app is served, for the printed invite links")
    db: str = opt("sqlite:///runs/label/labels.db", "database URL")

    def validate(self) -> None:
        if not self.rollouts:
            raise ConfigError("campaign create needs --from ROLLOUTS.jsonl")
        if self.overlap < 1:
            raise ConfigError(f"overlap must be >= 1, got {self.overlap}")


@dataclass
class LabelExportConfig:
    """`rlhfkit label export`: a campaign's answers as the comparison records `rlhfkit rm` reads."""
    campaign: int = opt(1, "campaign id")
    out: str = opt("runs/label/comparisons.jsonl", "JSONL file to write")
    db: str = opt("sqlite:///runs/label/labels.db", "database URL")

    def validate(self) -> None:
        pass


@dataclass
class LabelSampleConfig:
    """`rlhfkit label sample`: K answers per prompt from a policy, as a rollouts file for a campaign."""
    policy: str = opt("runs/sft", "causal-LM directory to sample from")
    prompts: str = opt("tldr", "'tldr' (the world's training prompts) or a JSONL / Parquet file with 'prompt'")
    n_prompts: int = opt(50, "prompts to sample for")
    k: int = opt(4, "answers per prompt")
    out: str = opt("runs/label/rollouts.jsonl", "JSONL file to write")
    task: TaskConfig = sub(TaskConfig, "the world, when prompts is 'tldr'")
    sample: SampleConfig = sub(SampleConfig, "sampling")

    def validate(self) -> None:
        self.sample.validate("sample")
        if self.k < 2 or self.n_prompts < 1:
            raise ConfigError("k must be >= 2 and n_prompts >= 1")


@dataclass
class LabelSimulateConfig:
    """`rlhfkit label simulate`: the built-in simulated labelers answer a campaign through the HTTP API."""
    url: str = opt("http://127.0.0.1:8000", "where the app is served")
    tokens: str = opt("", "comma-separated invite tokens (or invite links), one simulated labeler each")
    labeler: str = opt("", "which built-in labeler answers (default: one per token, in turn)")
    seed: int = opt(0, "seed of the labelers' draws")
    task: TaskConfig = sub(TaskConfig, "the world whose posts the prompts come from")

    def validate(self) -> None:
        if not self.tokens:
            raise ConfigError("simulate needs --tokens TOKEN[,TOKEN...]")
