"""`rlhfkit <stage>`: parse the stage's config from YAML and dotted flags, then run the stage.

Nothing else lives here: each stage is `run(cfg)` in its own module. Every error the user can
cause is one line on stderr, no traceback: exit 2 for usage and input errors (flags, config,
data, model directories, reward modules: `rlhfkit.errors.InputError`), 1 for a run that fails
while running (`RunError`, or the system's: disk full, permission denied). A failed stage leaves
no empty `--out` directory behind it.

`torchrun --nproc_per_node N -m rlhfkit <stage> ...` runs a stage in N processes (`rlhfkit.runtime`).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import NoReturn

from rlhfkit import config as C
from rlhfkit import runtime
from rlhfkit.errors import InputError, RunError
from rlhfkit.feedback import config as L
from rlhfkit.models import config as M
from rlhfkit.tasks.vader.config import DataVaderConfig, VaderExperimentConfig

# (name, config class, "module:function") per stage; modules import lazily so --help is fast
STAGES = {
    "pretrain": (C.PretrainConfig, "rlhfkit.train.pretrain:run"),
    "sft": (C.SFTConfig, "rlhfkit.train.sft:run"),
    "rm": (C.RMConfig, "rlhfkit.train.reward_model:run"),
    "rl": (C.RLConfig, "rlhfkit.train.rl:run"),
    "bon": (C.BestOfNConfig, "rlhfkit.train.best_of_n:run"),
    "rsft": (C.RSFTConfig, "rlhfkit.train.rejection:run_rsft"),
    "rwsft": (C.RWSFTConfig, "rlhfkit.train.rejection:run_rwsft"),
    "slic": (C.SLiCConfig, "rlhfkit.train.preference:run_slic"),
    "dpo": (C.DPOConfig, "rlhfkit.train.preference:run_dpo"),
    "eval": (C.EvalConfig, "rlhfkit.evaluate.run:run"),
    "demo": (C.DemoConfig, "rlhfkit.pipelines.demo:run"),
    "sweep": (C.SweepConfig, "rlhfkit.pipelines.sweep:run"),
    "vader": (VaderExperimentConfig, "rlhfkit.pipelines.vader:run"),
    "chat": (C.ChatConfig, "rlhfkit.chat:run"),
}
# `rlhfkit demo --task NAME`: the experiment of each world (tldr is the default)
DEMO_TASKS = {"tldr": (C.DemoConfig, "rlhfkit.pipelines.demo:run"),
              "conversation": (C.ConversationDemoConfig, "rlhfkit.pipelines.conversation:run")}
DATA_TASKS = {"tldr": (C.DataTldrConfig, "rlhfkit.tasks.tldr.export:run"),
              "vader": (DataVaderConfig, "rlhfkit.tasks.vader.export:run")}
LABEL_COMMANDS = {
    "sample": (L.LabelSampleConfig, "rlhfkit.feedback.commands:sample"),
    "campaign create": (L.LabelCampaignConfig, "rlhfkit.feedback.commands:campaign_create"),
    "serve": (L.LabelServeConfig, "rlhfkit.feedback.commands:serve"),
    "simulate": (L.LabelSimulateConfig, "rlhfkit.feedback.commands:simulate"),
    "export": (L.LabelExportConfig, "rlhfkit.feedback.commands:export"),
}
MODEL_COMMANDS = {"import": (M.ModelImportConfig, "rlhfkit.models.hub:run")}


def _first_line(cls: type) -> str:
    line = (cls.__doc__ or "").strip().splitlines()[0]
    return line.split(": ", 1)[1] if line.startswith("`") else line


class Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line (exit 2), like every other input error."""

    def error(self, message: str) -> NoReturn:
        moved = [f"--{old} is now --{new}" for old, new in C.MOVED_FIELDS.items() if f"--{old}" in message.split()]
        self.exit(2, f"{self.prog}: error: {'; '.join(moved) or message} (see {self.prog} --help)\n")


def demo_task(argv: list[str]) -> str:
    """The world `rlhfkit demo --task NAME` names (its own options follow), 'tldr' when none is named."""
    for i, arg in enumerate(argv):
        if arg == "--task" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--task="):
            return arg.partition("=")[2]
    return "tldr"


def build_parser(demo: str = "tldr") -> argparse.ArgumentParser:
    parser = Parser(prog="rlhfkit", description="RLHF and its supervised alternatives, "
                                     "end to end. Run `rlhfkit <stage> --help` for a stage's options.")
    stages = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")
    data = stages.add_parser("data", help="write a built-in task's data sets")
    tasks = data.add_subparsers(dest="task", required=True, metavar="TASK")
    for name, (cls, _) in DATA_TASKS.items():
        sp = tasks.add_parser(name, help=_first_line(cls), description=_first_line(cls))
        C.add_arguments(sp, cls)
    label = stages.add_parser("label", help="collect human comparisons: the labeling web app and its commands")
    commands = label.add_subparsers(dest="command", required=True, metavar="COMMAND")
    campaign = None
    for name, (cls, _) in LABEL_COMMANDS.items():
        if name.startswith("campaign "):
            if campaign is None:
                campaign = commands.add_parser("campaign", help="labeling campaigns").add_subparsers(
                    dest="action", required=True, metavar="ACTION")
            sp = campaign.add_parser(name.split()[1], help=_first_line(cls), description=_first_line(cls))
            sp.add_argument("--from", dest="rollouts", default=argparse.SUPPRESS, metavar="FILE",
                            help="same as --rollouts")
        else:
            sp = commands.add_parser(name, help=_first_line(cls), description=_first_line(cls))
        C.add_arguments(sp, cls)
    model = stages.add_parser("model", help="bring a pretrained model into rlhfkit")
    model_commands = model.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (cls, _) in MODEL_COMMANDS.items():
        sp = model_commands.add_parser(name, help=_first_line(cls), description=_first_line(cls))
        if name == "import":
            sp.add_argument("source", nargs="?", default=argparse.SUPPRESS, metavar="SOURCE",
                            help="same as --source")
        C.add_arguments(sp, cls)
    for name, (cls, _) in STAGES.items():
        if name == "demo":
            cls = DEMO_TASKS[demo][0]
        sp = stages.add_parser(name, help=_first_line(cls), description=_first_line(cls))
        if name == "demo":
            sp.add_argument("--task", dest="demo_task", choices=tuple(DEMO_TASKS), default=argparse.SUPPRESS,
                            help="the world whose experiment runs (default: 'tldr'); `--task conversation --help` "
                                 "lists the conversation experiment's options")
        C.add_arguments(sp, cls)
        sp.add_argument("--device", choices=runtime.DEVICES, default=argparse.SUPPRESS,
                        help="where models compute: cpu, or cuda (under torchrun one GPU per process, by "
                             "LOCAL_RANK); not part of a job's identity, so a run resumes on either (default: cpu)")
        sp.add_argument("--fsdp", action="store_true", default=argparse.SUPPRESS,
                        help="under torchrun: shard the trained models' weights, gradients and optimizer state "
                             "over the processes (FSDP2) instead of a whole copy in each (DDP)")
    return parser


def _call(target: str, cfg) -> object:
    import importlib
    module, fn = target.split(":")
    return getattr(importlib.import_module(module), fn)(cfg)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    demo = demo_task(argv) if argv[:1] == ["demo"] else "tldr"
    args = build_parser(demo if demo in DEMO_TASKS else "tldr").parse_args(argv)
    name = " ".join(filter(None, ("rlhfkit", args.stage, getattr(args, "task", None), getattr(args, "command", None),
                                  getattr(args, "action", None))))
    if args.stage == "data":
        cls, target = DATA_TASKS[args.task]
    elif args.stage == "label":
        cls, target = LABEL_COMMANDS[" ".join(filter(None, (args.command, getattr(args, "action", None))))]
    elif args.stage == "model":
        cls, target = MODEL_COMMANDS[args.command]
    elif args.stage == "demo":
        cls, target = DEMO_TASKS[demo]
    else:
        cls, target = STAGES[args.stage]
    device, fsdp = vars(args).pop("device", "cpu"), vars(args).pop("fsdp", False)
    for key in ("stage", "task", "command", "action", "demo_task"):
        vars(args).pop(key, None)
    try:
        cfg = C.from_args(cls, args)
    except InputError as e:
        return _fail(f"{name}: config error: {e}", 2)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    _quiet_transformers()
    created = _created_by(Path(cfg.out)) if getattr(cfg, "out", "") else None
    try:
        runtime.use_device(device)
        runtime.use_fsdp(fsdp)
    except ValueError as e:
        return _fail(f"{name}: {e}", 2)
    try:
        runtime.current()                   # under torchrun: join the other processes before any work
        result = _call(target, cfg)
    except BaseException as e:
        if created is not None and runtime.is_main():
            _remove_if_empty(created)
        if isinstance(e, KeyboardInterrupt):
            return _fail(f"{name}: interrupted", 130)
        code = _exit_code(e)
        if code is None:     # a bug: its traceback is what a report needs
            raise
        return _fail(f"{name}: {'config ' if isinstance(e, C.ConfigError) else ''}error: {e}", code)
    finally:
        runtime.shutdown()
    if isinstance(result, dict) and not getattr(cfg, "json", False) and runtime.is_main():
        print(json.dumps({k: v for k, v in result.items() if k != "config"}, indent=2))
    return 0


def _exit_code(e: BaseException) -> int | None:
    if isinstance(e, InputError):      # ConfigError, DataError, ModelError, JobMismatch
        return 2
    if isinstance(e, (RunError, OSError)):
        return 1
    return None


def _fail(message: str, code: int) -> int:
    print(" ".join(message.split()), file=sys.stderr)     # one line, whatever the message holds
    return code


def _quiet_transformers() -> None:
    """No loading bars or warnings from transformers (unless TRANSFORMERS_VERBOSITY asks): the
    stages report their own progress, and an error stays the one line on stderr."""
    if "TRANSFORMERS_VERBOSITY" not in os.environ:
        from transformers.utils import logging
        logging.set_verbosity_error()
        logging.disable_progress_bar()


def _created_by(out: Path) -> Path | None:
    """The outermost directory of `out` that does not exist yet (what a run would create), or None."""
    if out.exists():
        return None
    while not out.parent.exists():
        out = out.parent
    return out


def _remove_if_empty(path: Path) -> None:
    """Remove a directory the failed run created when it holds nothing but empty files."""
    if path.is_dir() and all(f.is_dir() or f.stat().st_size == 0 for f in path.rglob("*")):
        shutil.rmtree(path)


if __name__ == "__main__":
    sys.exit(main())
