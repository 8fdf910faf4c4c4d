"""The project's error classes: what the command line turns into one line and an exit code.

- InputError (exit 2): the input or the usage is wrong; nothing has run yet. DataError (a
  record: file, line, field) and ModelError (a model directory) are its two common kinds.
- RunError (exit 1): a run went wrong while running (a non-finite loss, a diverged KL, a
  reward function that returns NaN); the message says where the last good state is.
"""
from __future__ import annotations


class InputError(ValueError):
    """Bad input or usage, found before anything runs."""


class DataError(InputError):
    """A malformed input record; the message names file, line and field."""


class ModelError(InputError):
    """A model directory that cannot be used as asked; the message names the path."""


class RunError(RuntimeError):
    """A run that went wrong while running; the message names the last good state."""
