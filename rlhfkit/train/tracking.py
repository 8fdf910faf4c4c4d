"""Experiment tracking: a run's scalars (the lines of its log.jsonl), sample completions and its
config, sent to TensorBoard, Trackio or Weights & Biases (`report_to`; none by default).

Each backend's package is imported only when it is chosen (`pip install 'rlhfkit[tensorboard]'`,
`[trackio]`, `[wandb]`); a missing one stops the run before its first step, in one line. Only the
main process reports. A run is named after its stage, its output directory and an id kept in
OUT/tracker_run.txt: a resumed run continues its record, a run started over gets a new one.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import secrets
import sys
from pathlib import Path

from rlhfkit.errors import InputError
PROJECT = "rlhfkit"
COMPLETION_COLUMNS = ["prompt", "completion", "score"]


class Tracker:
    """The `none` backend, and the interface of the others."""

    def scalars(self, stats: dict, step: int) -> None:
        pass

    def completions(self, rows: list[list], step: int) -> None:
        """rows: [prompt, completion, score]."""

    def close(self) -> None:
        pass


def numbers(stats: dict) -> dict[str, float]:
    return {k: float(v) for k, v in stats.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


class TensorBoard(Tracker):
    """Event files in OUT/tensorboard/<run id> (`tensorboard --logdir OUT/tensorboard`)."""

    def __init__(self, out: Path, name: str, config: dict) -> None:
        from torch.utils.tensorboard import SummaryWriter
        self.writer = SummaryWriter(log_dir=str(out / "tensorboard" / name.rpartition(":")[2]))
        self.writer.add_text("config", f"{name}\n\n```\n{json.dumps(config, indent=1)}\n```", 0)

    def scalars(self, stats: dict, step: int) -> None:
        for k, v in numbers(stats).items():
            self.writer.add_scalar(k, v, step)

    def completions(self, rows: list[list], step: int) -> None:
        table = ["| " + " | ".join(COMPLETION_COLUMNS) + " |", "|---|---|---|"]
        table += ["| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in row) + " |" for row in rows]
        self.writer.add_text("completions", "\n".join(table), step)

    def close(self) -> None:
        self.writer.close()


class Trackio(Tracker):
    """Trackio's local database (TRACKIO_DIR, else the Hugging Face cache; `trackio show`)."""

    def __init__(self, out: Path, name: str, config: dict) -> None:
        import trackio
        self.trackio = trackio
        with contextlib.redirect_stdout(sys.stderr):      # stdout carries the command's result
            trackio.init(project=PROJECT, name=name, config=config, resume="allow", embed=False,
                         auto_log_cpu=False, auto_log_gpu=False)

    def scalars(self, stats: dict, step: int) -> None:
        self.trackio.log(numbers(stats), step=step)

    def completions(self, rows: list[list], step: int) -> None:
        self.trackio.log({"completions": self.trackio.Table(columns=COMPLETION_COLUMNS, data=rows)}, step=step)

    def close(self) -> None:
        with contextlib.redirect_stdout(sys.stderr):
            self.trackio.finish()


class WandB(Tracker):
    """Weights & Biases (its own login and mode: WANDB_MODE=offline keeps the run local)."""

    def __init__(self, out: Path, name: str, config: dict) -> None:
        import wandb
        self.wandb = wandb
        self.run = wandb.init(project=PROJECT, name=name, id=hashlib.sha1(name.encode()).hexdigest()[:16],
                              config=config, dir=str(out), resume="allow")

    def scalars(self, stats: dict, step: int) -> None:
        self.run.log(numbers(stats), step=step)

    def completions(self, rows: list[list], step: int) -> None:
        self.run.log({"completions": self.wandb.Table(columns=COMPLETION_COLUMNS, data=rows)}, step=step)

    def close(self) -> None:
        self.run.finish()


BACKENDS = {"tensorboard": (TensorBoard, "tensorboard"), "trackio": (Trackio, "trackio"), "wandb": (WandB, "wandb")}


RUN_ID_FILE = "tracker_run.txt"


def run_id(out: Path, fresh: bool) -> str:
    """The run's id in its tracker: a new one for a run from its first step, else the recorded one."""
    path = out / RUN_ID_FILE
    if not fresh and path.is_file():
        return path.read_text().strip()
    rid = secrets.token_hex(4)
    path.write_text(rid + "\n")
    return rid


def open_tracker(report_to: str, out: Path, stage: str, config: dict, fresh: bool = True) -> Tracker:
    if report_to == "none":
        return Tracker()
    cls, package = BACKENDS[report_to]
    if importlib.util.find_spec(package) is None:
        raise InputError(f"{stage}: report_to {report_to} needs the {package} package: "
                         f"pip install 'rlhfkit[{report_to}]'")
    return cls(out, f"{stage}:{out.resolve()}:{run_id(out, fresh)}", config)
