"""Config fields and the check every leaf passes, whichever way the config was built.

`opt(default, help, gt=0)` declares a leaf with its default, its help line and its limits;
`sub(factory, help)` a nested section. `check_fields(cfg)` walks a whole tree and refuses, naming
the dotted field: a value of the wrong type (an int field takes neither 3.7 nor true, a float
field no string), a float that is nan or infinite, a value outside its limits or choices, and an
output path that exists as the wrong kind (a file where the stage writes a directory). The YAML
and command-line loaders run the same check on each value they set, and every stage's
`validate()` runs it first, so a config built in Python meets the same rules.
"""
from __future__ import annotations

import dataclasses
import math
import operator
import typing
from collections.abc import Iterator, Mapping
from dataclasses import field
from pathlib import Path
from typing import Any

from rlhfkit.errors import InputError

# the `resume` field of every training stage (rlhfkit.train.job decides what belongs to a job)
RESUME_HELP = ("true: continue this job from its checkpoint in `out`, or return its recorded result if it "
               "finished; a checkpoint or result of another job is refused. false: start over")


class ConfigError(InputError):
    """A config that contradicts itself, holds a value out of range or names an unknown field."""


def opt(default: Any, help: str, *, gt: float | None = None, ge: float | None = None, lt: float | None = None,
        le: float | None = None, choices: tuple[str, ...] | None = None, writes: str | None = None) -> Any:
    """A config field with its default, its help line and its limits.

    gt / ge / lt / le bound a number; choices lists the strings allowed; writes is "dir" or
    "file" for an output path (it must not exist as the other kind).
    """
    limits = {"gt": gt, "ge": ge, "lt": lt, "le": le, "choices": choices, "writes": writes}
    metadata = {"help": help} | {k: v for k, v in limits.items() if v is not None}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def sub(factory: Any, help: str) -> Any:
    """A nested config section; `factory` is its class, or a lambda giving stage-specific defaults."""
    return field(default_factory=factory, metadata={"help": help})


TYPE_WORDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
_BOUNDS = {"gt": (operator.gt, ">"), "ge": (operator.ge, ">="), "lt": (operator.lt, "<"), "le": (operator.le, "<=")}


def leaves(cfg: Any, prefix: str = "") -> Iterator[tuple[str, Any, type, dataclasses.Field]]:
    """(dotted name, value, declared type, field) for every leaf of a config tree."""
    hints = typing.get_type_hints(type(cfg))
    for f in dataclasses.fields(cfg):
        name, value, t = prefix + f.name, getattr(cfg, f.name), hints[f.name]
        if dataclasses.is_dataclass(t):
            if not isinstance(value, t):
                raise ConfigError(f"{name}: expected a {t.__name__}, got {value!r}")
            yield from leaves(value, name + ".")
        else:
            yield name, value, t, f


def _has_type(value: Any, t: type) -> bool:
    # bool is an int to Python, never to a config; an int is a fine float
    if isinstance(value, bool):
        return t is bool
    return isinstance(value, (int, float)) if t is float else isinstance(value, t)


def check_value(name: str, value: Any, t: type, meta: Mapping[str, Any]) -> None:
    """Refuse a value of the wrong type, a non-finite float, or one outside the field's limits."""
    if not _has_type(value, t):
        raise ConfigError(f"{name}: expected {TYPE_WORDS[t]}, got {value!r}")
    if t is float and not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value}")
    for key, (holds, sign) in _BOUNDS.items():
        if key in meta and not holds(value, meta[key]):
            raise ConfigError(f"{name} must be {sign} {meta[key]}, got {value}")
    if "choices" in meta and value not in meta["choices"]:
        raise ConfigError(f"{name} must be one of {', '.join(meta['choices'])}, got {value!r}")
    path = Path(value).expanduser() if meta.get("writes") and value else None
    if meta.get("writes") == "dir" and path and path.is_file():
        raise ConfigError(f"{name}: {value} is an existing file, not a directory")
    if meta.get("writes") == "file" and path and path.is_dir():
        raise ConfigError(f"{name}: {value} is an existing directory, not a file")


def limits_text(meta: Mapping[str, Any]) -> str:
    """A field's limits as its --help shows them: '> 0', '>= 0, < 1', 'one of dpo, ipo'."""
    parts = [f"{sign} {meta[key]}" for key, (_, sign) in _BOUNDS.items() if key in meta]
    if "choices" in meta:
        parts.append("one of " + ", ".join(meta["choices"]))
    return ", ".join(parts)


def check_fields(cfg: Any) -> None:
    """Check every leaf of a config tree against its declared type and limits (see the module docstring)."""
    for name, value, t, f in leaves(cfg):
        check_value(name, value, t, f.metadata)


def check_max_len(max_len: int, context: int, field: str = "max_len") -> None:
    """Refuse a length the model cannot hold, before a run starts rather than mid-run."""
    if max_len > context:
        raise ConfigError(f"{field} ({max_len}) is above the model's context length ({context})")
