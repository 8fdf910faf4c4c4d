"""OUT/model/README.md: a model card saying what made a saved model.

Written when a stage's job finishes (`Job.finish`), from what the job recorded: the stage, the
models it started from and the data it read (with their hashes), its config, its final metrics,
the command line that ran it and rlhfkit's version. The YAML header is the Hugging Face Hub's card
metadata, so the directory can be pushed as it is.
"""
from __future__ import annotations

import json
import shlex
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

# stages whose name is an RL algorithm or a preference loss: the card says which family they belong to
FAMILIES = {"ppo": "rl", "rloo": "rl", "grpo": "rl", "reinforce_pp": "rl", "dpo": "preference", "ipo": "preference",
            "slic": "preference"}


def rlhfkit_version() -> str:
    try:
        return metadata.version("rlhfkit")
    except metadata.PackageNotFoundError:
        return "unknown"


def command_line() -> str:
    """How this process was started: `rlhfkit ...` from the console script or `python -m rlhfkit`,
    else the Python program that called rlhfkit's functions."""
    program = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path("python")
    if program.name == "rlhfkit" or program.resolve().parent == Path(__file__).resolve().parent.parent:
        return shlex.join(["rlhfkit", *sys.argv[1:]])       # the console script, or python -m rlhfkit[.cli]
    return shlex.join(["python", *sys.argv]) if sys.argv and sys.argv[0] else "python (interactive)"


def _metrics(result: dict) -> list[tuple[str, Any]]:
    """The result's numbers, nested ones (a budget) as dotted names."""
    rows = []
    for key, value in result.items():
        if isinstance(value, dict):
            rows += [(f"{key}.{k}", v) for k, v in _metrics(value)]
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            rows.append((key, value))
    return rows


def _hash_of(entry: dict) -> str:
    if "sha256" in entry:
        return entry["sha256"]
    weights = entry.get("weights") or {}
    return ", ".join(f"{name} {h[1][:16]}" for name, h in weights.items()) or "-"


def card_text(stage: str, fingerprint: dict, config: dict, result: dict) -> str:
    models, data = fingerprint.get("models", {}), fingerprint.get("data", {})
    base = next((m.get("path") for k, m in models.items() if k in ("model", "policy")), None)
    header = {"library_name": "transformers", "tags": ["rlhfkit", stage] + ([FAMILIES[stage]] if stage in FAMILIES
                                                                              else [])}
    if base:
        header["base_model"] = base
    lines = ["---", yaml.safe_dump(header, sort_keys=False).strip(), "---", "",
             f"# {stage}: made by rlhfkit {rlhfkit_version()}", "",
             f"Stage `{stage}`" + (f" ({FAMILIES[stage]})" if stage in FAMILIES else "") + ", run as:", "",
             "```", command_line(), "```", "", "## Started from", ""]
    lines += ([f"- {role}: `{m.get('path')}` (weights {_hash_of(m)})" for role, m in models.items()]
              or ["- nothing: trained from scratch"])
    lines += ["", "## Data", ""]
    lines += ([f"- {role}: `{d.get('path', d.get('name'))}`" + (f", {d['size']:,} bytes, sha256 {d['sha256']}"
                                                               if "sha256" in d else " (a built-in task)")
               for role, d in data.items()] or ["- none named (a built-in task's prompts)"])
    lines += ["", "## Final metrics", "", "| metric | value |", "|---|---|"]
    lines += [f"| {name} | {value:.6g} |" for name, value in _metrics(result)]
    lines += ["", "## Config", "", "```yaml", yaml.safe_dump(json.loads(json.dumps(config)), sort_keys=False).strip(),
              "```", ""]
    return "\n".join(lines)


def write_card(model_dir: Path, stage: str, fingerprint: dict, config: dict, result: dict) -> None:
    tmp = model_dir / "README.md.tmp"
    tmp.write_text(card_text(stage, fingerprint, config, result))
    tmp.replace(model_dir / "README.md")
