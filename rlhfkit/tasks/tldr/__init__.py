"""The built-in synthetic TL;DR world: posts, reference writers, the gold judge and simulated labelers."""
from rlhfkit.tasks.tldr.task import TldrTask

__all__ = ["TldrTask"]
