"""Configs of the `rlhfkit label` commands (the same dataclass machinery as rlhfkit.config)."""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from rlhfkit.config import ConfigError, SampleConfig, TaskConfig, check_fields, opt, parse_policies, sub


def _check_db(db: str) -> None:
    # an in-memory SQLite database would vanish with the command (and each connection has its own)
    if not (db.startswith("sqlite:///") or db.startswith("postgresql")) or db in ("sqlite:///", "sqlite:///:memory:"):
        raise ConfigError(f"db must be sqlite:///FILE or a postgresql:// URL, got {db!r}")


def _check_base_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path.strip("/") or parts.query:
        raise ConfigError(f"base_url must be http(s)://HOST[:PORT], got {url!r}")


@dataclass
class LabelServeConfig:
    """`rlhfkit label serve`: the labeling web app."""
    db: str = opt("sqlite:///runs/label/labels.db", "database URL: sqlite:///FILE (WAL) or postgresql://...; "
                  "it must hold campaigns already (`label campaign create` makes it) unless --create")
    create: bool = opt(False, "start on a new, empty database when --db names none (else a typo is refused)")
    admin_token: str = opt("", "token for the admin pages (empty: a random one, printed at start)")
    host: str = opt("127.0.0.1", "address to listen on")
    port: int = opt(8000, "port to listen on", ge=1, le=65535)
    base_url: str = opt("", "where people reach the app, for invite and admin links, e.g. https://label.example.org "
                        "(empty: http://HOST:PORT); never taken from a request's Host header")
    pool_size: int = opt(16, "database connections, and so the most requests served at once (the rest wait "
                         "their turn holding neither a connection nor a worker thread)", ge=1)
    max_body_kb: int = opt(64, "largest request body accepted, in KiB (an answer with its note needs ~3); "
                           "larger gets 413", ge=1)
    reward_model: str = opt("", "a reward model the labels are held against on the stats page (optional)")
    gold: bool = opt(False, "also hold the labels against the built-in world's gold judge (its prompts only)")
    policies: str = opt("", "two policies for the playground page (/play), a=DIR,b=DIR, loaded once: a signed-in "
                            "person's prompt gets both answers side by side and their pick is stored as a "
                            "comparison (empty: no playground)")
    play_temperature: float = opt(0.7, "the playground's sampling temperature", gt=0)
    play_max_new_tokens: int = opt(64, "the playground's longest answer, in tokens", ge=1)
    task: TaskConfig = sub(TaskConfig, "the world, with --gold")

    def validate(self) -> None:
        check_fields(self)
        _check_db(self.db)
        if self.policies and len(parse_policies(self.policies)) != 2:
            raise ConfigError(f"policies: the playground compares two policies, a=DIR,b=DIR; got {self.policies!r}")
        if self.base_url:
            _check_base_url(self.base_url)

    @property
    def public_url(self) -> str:
        return (self.base_url or f"http://{self.host}:{self.port}").rstrip("/")


@dataclass
class LabelCampaignConfig:
    """`rlhfkit label campaign create`: a labeling campaign from a rollouts file (prompt + 2..K completions)."""
    rollouts: str = opt("", "JSONL / Parquet with 'prompt' and 'completions' (also accepted as --from)")
    name: str = opt("campaign", "campaign name")
    overlap: int = opt(1, "labelers who see each item (2+ measures agreement)", ge=1)
    invite: str = opt("", "comma-separated labeler names to invite now; their links are printed")
    base_url: str = opt("http://127.0.0.1:8000", "where the app is served (serve's base_url), for the printed "
                        "invite links")
    db: str = opt("sqlite:///runs/label/labels.db", "database URL (made if new)")

    def validate(self) -> None:
        check_fields(self)
        _check_db(self.db)
        _check_base_url(self.base_url)
        if not self.rollouts:
            raise ConfigError("campaign create needs --from ROLLOUTS.jsonl")


@dataclass
class LabelExportConfig:
    """`rlhfkit label export`: a campaign's answers as the comparison records `rlhfkit rm` reads."""
    campaign: int = opt(1, "campaign id", ge=1)
    out: str = opt("runs/label/comparisons.jsonl", "JSONL file to write", writes="file")
    db: str = opt("sqlite:///runs/label/labels.db", "database URL of an existing labeling database")

    def validate(self) -> None:
        check_fields(self)
        _check_db(self.db)


@dataclass
class LabelSampleConfig:
    """`rlhfkit label sample`: K answers per prompt from a policy, as a rollouts file for a campaign."""
    policy: str = opt("runs/sft", "causal-LM directory to sample from")
    prompts: str = opt("tldr", "'tldr' (the world's training prompts) or a JSONL / Parquet file with 'prompt'")
    n_prompts: int = opt(50, "prompts to sample for", ge=1)
    k: int = opt(4, "answers per prompt", ge=2)
    out: str = opt("runs/label/rollouts.jsonl", "JSONL file to write", writes="file")
    task: TaskConfig = sub(TaskConfig, "the world, when prompts is 'tldr'")
    sample: SampleConfig = sub(SampleConfig, "sampling")

    def validate(self) -> None:
        check_fields(self)


@dataclass
class LabelSimulateConfig:
    """`rlhfkit label simulate`: the built-in simulated labelers answer a campaign through the HTTP API."""
    url: str = opt("http://127.0.0.1:8000", "where the app is served")
    tokens: str = opt("", "comma-separated invite tokens (or invite links), one simulated labeler each")
    labeler: str = opt("", "which built-in labeler answers (default: one per token, in turn)")
    seed: int = opt(0, "seed of the labelers' draws", ge=0)
    task: TaskConfig = sub(TaskConfig, "the world whose posts the prompts come from")

    def validate(self) -> None:
        check_fields(self)
        if not self.tokens:
            raise ConfigError("simulate needs --tokens TOKEN[,TOKEN...]")
