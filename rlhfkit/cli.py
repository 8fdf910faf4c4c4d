"""`rlhfkit <stage>`: parse the stage's config from YAML and dotted flags, then run the stage.

Nothing else lives here: each stage is `run(cfg)` in its own module.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from rlhfkit import config as C
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
    "demo": (C.DemoConfig, "rlhfkit.demo:run"),
    "vader": (VaderExperimentConfig, "rlhfkit.tasks.vader.experiment:run"),
}
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rlhfkit", description="RLHF and its supervised alternatives, "
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
        sp = stages.add_parser(name, help=_first_line(cls), description=_first_line(cls))
        C.add_arguments(sp, cls)
    return parser


def _call(target: str, cfg) -> object:
    import importlib
    module, fn = target.split(":")
    return getattr(importlib.import_module(module), fn)(cfg)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.stage == "data":
        cls, target = DATA_TASKS[args.task]
    elif args.stage == "label":
        cls, target = LABEL_COMMANDS[" ".join(filter(None, (args.command, getattr(args, "action", None))))]
    elif args.stage == "model":
        cls, target = MODEL_COMMANDS[args.command]
    else:
        cls, target = STAGES[args.stage]
    for key in ("stage", "task", "command", "action"):
        vars(args).pop(key, None)
    try:
        cfg = C.from_args(cls, args)
    except C.ConfigError as e:
        print(f"rlhfkit {sys.argv[1] if len(sys.argv) > 1 else ''}: config error: {e}", file=sys.stderr)
        return 2
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from rlhfkit.data.records import DataError
    from rlhfkit.models.lm import ModelError
    try:
        result = _call(target, cfg)
    except (DataError, ModelError) as e:
        print(f"rlhfkit: error: {e}", file=sys.stderr)
        return 1
    if isinstance(result, dict) and not getattr(cfg, "json", False):
        print(json.dumps({k: v for k, v in result.items() if k != "config"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
