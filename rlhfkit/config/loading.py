"""A config tree from YAML and dotted command-line flags.

Precedence: defaults < `--config FILE` (YAML, nested like the tree) < dotted overrides
(`--train.lr 3e-4 --task.seed 7`). Each value is parsed to its field's type and checked as it is
set, so an error names the field (and the file); then the stage's `validate()` checks the whole.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from rlhfkit.config.fields import TYPE_WORDS, ConfigError, check_value, leaves, limits_text
from rlhfkit.config.sections import MOVED_FIELDS

_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _parse(value: Any, t: type, name: str) -> Any:
    """A string from the command line (or a quoted YAML value) as the field's type; other values pass as
    they are, for `check_value` to judge (so YAML's 3.7 never becomes the int 3)."""
    if not isinstance(value, str) or t is str:
        return value
    word = value.strip().lower()
    if t is bool and word in _TRUE + _FALSE:
        return word in _TRUE
    if t is not bool:
        with contextlib.suppress(ValueError):
            return t(value)
    raise ConfigError(f"{name}: expected {TYPE_WORDS[t]}, got {value!r}")


def unknown_field(name: str) -> str:
    """The message for a field no config has, or where it went if it moved."""
    moved = MOVED_FIELDS.get(name)
    return f"config field {name!r} is now {moved!r}" if moved else f"unknown config field {name!r}"


def _field(node: Any, part: str, name: str) -> tuple[dataclasses.Field, type]:
    fields = {f.name: f for f in dataclasses.fields(node)}
    if part not in fields:
        raise ConfigError(unknown_field(name))
    return fields[part], typing.get_type_hints(type(node))[part]


def _leaf(cfg: Any, name: str) -> tuple[Any, dataclasses.Field, type]:
    """The section holding the dotted field `name`, the field and its declared type."""
    *path, leaf = name.split(".")
    node = cfg
    for part in path:
        if not dataclasses.is_dataclass(_field(node, part, name)[1]):
            raise ConfigError(f"unknown config field {name!r}")
        node = getattr(node, part)
    f, t = _field(node, leaf, name)
    if dataclasses.is_dataclass(t):
        raise ConfigError(f"{name} is a section: set its fields ({name}.FIELD)")
    return node, f, t


def set_dotted(cfg: Any, name: str, value: Any) -> None:
    """Set the leaf `name` ('train.lr') from a YAML or command-line value, parsed and checked."""
    node, f, t = _leaf(cfg, name)
    value = _parse(value, t, name)
    check_value(name, value, t, f.metadata)
    setattr(node, f.name, value)


def _flat(d: dict, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _flat(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def apply_yaml(cfg: Any, path: str | Path) -> None:
    """Set the fields a YAML file gives; every error names the file (and the line, for bad YAML)."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the config file ({e.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML: {getattr(e, 'problem', None) or type(e).__name__}") from None
    if data is None:
        return
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    for name, value in _flat(data):
        try:
            set_dotted(cfg, name, value)
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None


def add_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """One `--dotted.name` flag per leaf of `cls`, its help the field's help, default and limits."""
    parser.add_argument("--config", metavar="FILE.yaml", help="YAML file with values for this stage")
    for name, default, t, f in leaves(cls()):
        limits = limits_text(f.metadata)
        help = f"{f.metadata.get('help', '')} (default: {default!r}{'; ' + limits if limits else ''})"
        kwargs: dict[str, Any] = {"dest": name, "default": argparse.SUPPRESS, "help": help.replace("%", "%%")}
        if t is bool:  # `--stats` alone means true; `--stats false` works too
            kwargs.update(nargs="?", const="true", metavar="BOOL")
        else:
            kwargs["metavar"] = t.__name__.upper()
        parser.add_argument(f"--{name}", **kwargs)


def from_args(cls: type, args: argparse.Namespace) -> Any:
    """The config `cls` from parsed flags: defaults, then --config, then the flags given; validated."""
    cfg = cls()
    given = vars(args)
    if given.get("config"):
        apply_yaml(cfg, given["config"])
    for name in [name for name, *_ in leaves(cfg)]:
        if name in given:
            set_dotted(cfg, name, given[name])
    cfg.validate()
    return cfg


def to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)
