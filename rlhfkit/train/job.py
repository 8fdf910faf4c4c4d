"""A stage's output directory belongs to one job: fingerprints, resume guards, the finished marker.

A job's fingerprint records what produced its output: each starting model (resolved path, hash
of config.json, of the weight files and of the tokenizer files), each data file (path, size,
hash) and every config field that changes the result. It is written inside each checkpoint
(`checkpoint/job.json`) and, once the stage has finished, in `OUT/job.json`.

Started again on the same `--out` (`resume` true, the default), a stage
- returns the recorded result of a finished run of the same job, training nothing;
- resumes from `OUT/checkpoint` when the checkpoint's fingerprint matches;
- otherwise stops before writing anything, naming what differs.
With `resume` false it starts over (the old checkpoint, log and marker are removed; the old
`OUT/model` stays until the new one replaces it).

    job = Job.begin("sft", cfg, models={"model": cfg.model}, data={"data": cfg.data})
    if job.result is not None: return job.result       # finished before
    ...
    job.finish(result)
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from rlhfkit import runtime
from rlhfkit.errors import InputError
from rlhfkit.tasks.base import TASKS
from rlhfkit.train.model_card import write_card

# config fields that do not change what a run computes: changing them never blocks a resume
IGNORED_FIELDS = {"out", "resume", "threads", "checkpoint_every", "max_loss", "max_kl", "json", "report_to",
                  "log_completions_every"}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "vocab.json", "merges.txt", "tokenizer.model", "chat_template.jinja")
FULL_HASH_BYTES = 64 << 20   # weight files up to this size are hashed whole
SAMPLE_BYTES = 4 << 20       # larger ones: size, head and tail (every fine-tuning step rewrites both)


class JobMismatch(InputError):
    """`OUT` holds a checkpoint or a finished run of another job."""


def _sha256_file(path: Path, limit: int | None = None) -> str:
    h = hashlib.sha256()
    size = path.stat().st_size
    with path.open("rb") as f:
        if limit is None or size <= 2 * limit:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        else:
            h.update(f.read(limit))
            f.seek(size - limit)
            h.update(f.read(limit))
    return h.hexdigest()


def model_fingerprint(path: str | Path) -> dict:
    """Resolved path and hashes of a model directory's config, weights and tokenizer."""
    from rlhfkit.models.lm import resolve_model_dir
    d = resolve_model_dir(path)
    if not d.is_dir():
        return {"path": str(d.resolve()), "missing": True}
    weights = sorted(p for p in d.iterdir() if p.suffix in (".safetensors", ".bin") or p.name.endswith(".index.json"))
    config = d / "config.json"
    return {
        "path": str(d.resolve()),
        "config": _sha256_file(config) if config.is_file() else None,
        "weights": {p.name: [p.stat().st_size, _sha256_file(p, None if p.stat().st_size <= FULL_HASH_BYTES
                                                             else SAMPLE_BYTES)] for p in weights},
        "tokenizer": {n: _sha256_file(d / n) for n in TOKENIZER_FILES if (d / n).is_file()},
        # sampling takes its defaults (eos, repetition penalty, ...) from here
        "generation": _sha256_file(d / "generation_config.json") if (d / "generation_config.json").is_file() else None,
    }


def data_fingerprint(spec: str) -> dict:
    """Path, size and hash of a data file (every file of a directory; `FILE:SPLIT` hashes FILE and
    records SPLIT); a registered task by name (the loaders read it as the task, whatever the working
    directory holds)."""
    from rlhfkit.data.records import split_spec
    if spec in TASKS:
        return {"name": spec}
    p, split = split_spec(spec)
    if not p.exists():   # a missing file the loader will report
        return {"name": spec}
    files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    return {"path": str(p.resolve()), "split": split, "size": sum(f.stat().st_size for f in files),
            "sha256": hashlib.sha256("".join(_sha256_file(f) for f in files).encode()).hexdigest()}


def without_ignored(d: dict, paths: set[str] = frozenset()) -> dict:
    """A config dict, at every level, minus the fields that do not change the result and `paths`."""
    return {k: without_ignored(v, paths) if isinstance(v, dict) else v for k, v in d.items()
            if k not in IGNORED_FIELDS and k not in paths}


def config_fingerprint(cfg: Any, paths: set[str]) -> dict:
    """The config's fields minus those that do not change the result and the paths (hashed apart)."""
    return without_ignored(dataclasses.asdict(cfg), paths)


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix.rstrip("."): d}
    return {k: v for key, value in d.items() for k, v in _flatten(value, f"{prefix}{key}.").items()}


def differences(a: dict, b: dict) -> list[str]:
    """Dotted names of the leaves where two fingerprints differ."""
    fa, fb = _flatten(a), _flatten(b)
    return sorted(k for k in fa.keys() | fb.keys() if fa.get(k) != fb.get(k))


def with_added_fields(theirs: dict, defaults: dict) -> dict:
    """An older job's fingerprint with each config field it lacks (an option added since) at the
    field's default: options are added with the old behaviour as their default, so the older job
    run today is that job."""
    def fill(t: Any, d: Any) -> Any:
        if not (isinstance(t, dict) and isinstance(d, dict)):
            return t
        return {k: v for k, v in d.items() if k not in t} | {k: fill(v, d.get(k)) for k, v in t.items()}
    return theirs | {"config": fill(theirs["config"], defaults)} if "config" in theirs else theirs


def by_content(fingerprint: dict) -> dict:
    """A fingerprint as jobs are compared: each model and data file by its hashes, not where it lies,
    so a run directory copied or moved (or a checkout elsewhere) is the same job. The path stays in
    the record, and counts where there is no content to compare (a missing file)."""
    def strip(entry: Any) -> Any:
        hashed = isinstance(entry, dict) and ("sha256" in entry or "weights" in entry)
        return {k: v for k, v in entry.items() if k != "path"} if hashed else entry
    return fingerprint | {section: {k: strip(v) for k, v in fingerprint[section].items()}
                          for section in ("models", "data") if isinstance(fingerprint.get(section), dict)}


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


@dataclasses.dataclass
class Job:
    stage: str
    out: Path
    fingerprint: dict
    resume: bool = True
    result: dict | None = None      # the recorded result when this job had already finished
    started: float = dataclasses.field(default_factory=time.time)
    defaults: dict = dataclasses.field(default_factory=dict)    # the config's fields at their defaults
    config: dict = dataclasses.field(default_factory=dict)      # the whole config, for the model card

    @classmethod
    def begin(cls, stage: str, cfg: Any, models: dict[str, str] | None = None, data: dict[str, str] | None = None,
              resume: bool | None = None, out: str | Path | None = None, extra: dict | None = None) -> "Job":
        """Fingerprint the job and check `out` against it, before anything is written. `extra`:
        whatever else identifies the job (e.g. a reward function handed in from Python)."""
        models = {k: v for k, v in (models or {}).items() if v}
        data = {k: v for k, v in (data or {}).items() if v}
        fingerprint = {"stage": stage, "models": {k: model_fingerprint(v) for k, v in models.items()},
                       "data": {k: data_fingerprint(v) for k, v in data.items()},
                       "config": config_fingerprint(cfg, set(models) | set(data))} | (extra or {})
        fingerprint = json.loads(json.dumps(fingerprint))    # as it will read back from disk (tuples as lists)
        defaults = json.loads(json.dumps(config_fingerprint(type(cfg)(), set(models) | set(data))))
        job = cls(stage, Path(out if out is not None else cfg.out), fingerprint,
                  getattr(cfg, "resume", True) if resume is None else resume, defaults=defaults,
                  config=json.loads(json.dumps(dataclasses.asdict(cfg), default=str)))
        job.check()
        return job

    def same(self, theirs: dict | None) -> bool:
        """Whether a recorded fingerprint is this job's (an older rlhfkit's, fields added since aside, and
        fields that change no result wherever they sit: an older record may hold them)."""
        return theirs is not None and (without_ignored(by_content(with_added_fields(theirs, self.defaults)))
                                       == without_ignored(by_content(self.fingerprint)))

    def _refuse(self, what: Path, theirs: dict | None) -> None:
        if theirs is None:
            why = "it records no fingerprint (written by an older rlhfkit or another tool)"
        else:
            diff = differences(without_ignored(by_content(with_added_fields(theirs, self.defaults))),
                               without_ignored(by_content(self.fingerprint)))
            why = ", ".join(diff[:4]) + (f" and {len(diff) - 4} more" if len(diff) > 4 else "") + " differ"
        raise JobMismatch(f"{self.stage}: {what} belongs to another job ({why}); run with --resume false to "
                          f"start over in {self.out}, or choose another --out")

    def check(self) -> None:
        """Refuse `out` if it holds another job's checkpoint or finished run; take the recorded
        result of this job's finished run. With resume false, nothing is refused (and nothing is
        removed until `claim`, so a typo found while loading costs no earlier state)."""
        marker, checkpoint = self.out / "job.json", self.out / "checkpoint"
        if not self.resume:
            return
        done = _read_json(marker) if marker.is_file() else None
        if marker.is_file() and _outputs_exist(self.out, done):
            if done is None or not self.same(done.get("fingerprint")):
                self._refuse(self.out, done and done.get("fingerprint"))
            self.result = done.get("result", {})
            print(f"{self.stage}: {self.out} already holds this finished job; nothing to do "
                  "(--resume false trains it again)", file=sys.stderr)
            return
        from rlhfkit.models.lm import recover_atomic
        if runtime.is_main():          # one process finishes a save a kill cut short; the others then read it
            recover_atomic(checkpoint)
        runtime.barrier()
        if checkpoint.is_dir():
            theirs = _read_json(checkpoint / "job.json")
            if theirs is None or not self.same(theirs.get("fingerprint")):
                self._refuse(checkpoint, theirs and theirs.get("fingerprint"))

    def claim(self) -> None:
        """Just before a run's first write: drop what a fresh start replaces (with resume false, the
        old checkpoint and log) and any finished marker, which the new run makes stale. Under torchrun
        the main process does it while the others wait."""
        checkpoint = self.out / "checkpoint"
        if runtime.is_main():
            if not self.resume:
                for p in (checkpoint, checkpoint.with_name("checkpoint.old"), checkpoint.with_name("checkpoint.tmp")):
                    shutil.rmtree(p, ignore_errors=True)
                (self.out / "log.jsonl").unlink(missing_ok=True)
            (self.out / "job.json").unlink(missing_ok=True)
        runtime.barrier()

    def write_checkpoint_marker(self, checkpoint_dir: Path, step: int) -> None:
        """Stamp a checkpoint being written (inside its temporary directory) with this job and step."""
        (checkpoint_dir / "job.json").write_text(json.dumps({"fingerprint": self.fingerprint, "step": step}))

    def finish(self, result: dict) -> dict:
        """Record the finished job and its result (atomically): a later identical run returns it.
        The result gains `seconds`, the wall time of the process that finished it (a resumed job
        counts its resumed part). A saved OUT/model gets its model card (README.md)."""
        result = result | {"seconds": round(time.time() - self.started, 1)}
        if runtime.is_main() and (self.out / "model" / "config.json").is_file():
            write_card(self.out / "model", self.stage, self.fingerprint, self.config, result)
        if runtime.is_main():
            tmp = self.out / "job.json.tmp"
            tmp.write_text(json.dumps({"fingerprint": self.fingerprint, "result": result}, indent=1, default=str))
            os.replace(tmp, self.out / "job.json")
        runtime.barrier()
        return result


def _outputs_exist(out: Path, done: dict | None) -> bool:
    """Whether a finished run's output is still there (a run whose output was removed since is not
    finished any more): the result's `out` if it names one, else `OUT/model`."""
    named = (done or {}).get("result", {}).get("out")
    return Path(named).exists() if named else (out / "model" / "config.json").is_file()


def last_good_checkpoint(out: Path) -> str:
    """How a stopped run can be picked up again: its last checkpoint and step, if it wrote one."""
    marker = _read_json(out / "checkpoint" / "job.json")
    if marker is None:
        return "no checkpoint was written; earlier outputs in the directory are untouched"
    return f"last good checkpoint: {out / 'checkpoint'} at step {marker.get('step')}"
