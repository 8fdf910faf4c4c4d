"""Files shipped inside the package, so an installed rlhfkit works from any directory.

- tldr-base/: the TL;DR world's base model, `model/` (a Hugging Face directory) and its
  `pretrain_report.json` (`log.jsonl`, the training log, stays in the source tree only).
  `rlhfkit pretrain --out models/tldr-base` rebuilds it.
- conversation-base/: the same for the conversation world, pretrained on posts and transcripts
  with a 512-token context; `rlhfkit pretrain --corpus tldr+conversation --arch.max_len 512
  --out models/conversation-base` rebuilds it.

A `models/<name>` in the working directory is used in place of the shipped one.
"""
from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).parent
SHIPPED = ("tldr-base", "conversation-base")     # found as models/<name>
TLDR_BASE = ASSETS / "tldr-base"
CONVERSATION_BASE = ASSETS / "conversation-base"


def shipped(path: str | Path) -> Path:
    """`path` when it exists; else, when it names a shipped base model or a path in it
    (`models/tldr-base/model`), the package's copy; else `path` unchanged."""
    path = Path(path)
    if path.exists():
        return path
    for name in SHIPPED:
        try:
            return ASSETS / name / path.relative_to(Path("models") / name)
        except ValueError:
            continue
    return path
