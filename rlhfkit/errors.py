"""The project's error classes: what the command line turns into one line and an exit code.

- InputError (exit 2): the input or the usage is wrong; nothing has run yet.
- RunError (exit 1): a run went wrong while running (a non-finite loss, a diverged KL); the
  message says where the last good state is.
"""
from __future__ import annotations


class InputError(ValueError):
    """Bad input or usage, found before anything runs."""


class RunError(RuntimeError):
    """A run that went wrong while running; the message names the last good state."""
