"""Files shipped inside the package, so an installed rlhfkit works from any directory.

- tldr-base/: the built-in task's base model, `model/` (a Hugging Face directory) and its
  `pretrain_report.json` (`log.jsonl`, the training log, stays in the source tree only).
  `rlhfkit pretrain --out models/tldr-base` rebuilds it; a `models/tldr-base` in the working
  directory is then used in place of the shipped one.
"""
from __future__ import annotations

from pathlib import Path

SHIPPED_NAME = Path("models/tldr-base")       # the name configs and the README use
TLDR_BASE = Path(__file__).parent / "tldr-base"


def shipped(path: str | Path) -> Path:
    """`path` when it exists; else, when it names the shipped base model or a path in it
    (`models/tldr-base/model`), the package's copy; else `path` unchanged."""
    path = Path(path)
    if path.exists():
        return path
    try:
        return TLDR_BASE / path.relative_to(SHIPPED_NAME)
    except ValueError:
        return path
