"""Real human preferences: the VADER sentiment ratings (Hutto & Gilbert 2014) as a task."""
from __future__ import annotations


def __getattr__(name: str):
    # `rlhfkit --help` imports this package for its config; the task (numpy, the data code) only on use
    if name == "VaderTask":
        from rlhfkit.tasks.vader.task import VaderTask
        return VaderTask
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["VaderTask"]
