import argparse

import pytest

from rlhfkit.config import ConfigError, EvalConfig, SFTConfig, add_arguments, from_args


def parse(cls, argv):
    parser = argparse.ArgumentParser()
    add_arguments(parser, cls)
    return from_args(cls, parser.parse_args(argv))


def test_dotted_overrides_reach_nested_fields():
    cfg = parse(SFTConfig, ["--train.lr", "3e-4", "--task.seed", "7", "--resume", "false"])
    assert (cfg.train.lr, cfg.task.seed, cfg.resume) == (3e-4, 7, False)


def test_yaml_then_flags(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  lr: 0.01\n  batch_size: 4\nout: x\n")
    cfg = parse(SFTConfig, ["--config", str(f), "--train.batch_size", "8"])
    assert (cfg.train.lr, cfg.train.batch_size, cfg.out) == (0.01, 8, "x")


def test_unknown_yaml_field_is_named(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  lrr: 0.01\n")
    with pytest.raises(ConfigError, match="unknown config field 'train.lrr'"):
        parse(SFTConfig, ["--config", str(f)])


def test_validate_rejects_contradictions():
    with pytest.raises(ConfigError, match=r"n_prompts \(600\) exceeds task.n_test \(500\)"):
        parse(EvalConfig, ["--n_prompts", "600"])
    with pytest.raises(ConfigError, match="train.dtype"):
        parse(SFTConfig, ["--train.dtype", "float16"])


def test_bad_value_type_is_named():
    with pytest.raises(ConfigError, match="train.lr: expected float"):
        parse(SFTConfig, ["--train.lr", "fast"])


def test_shipped_configs_load():
    from pathlib import Path
    from rlhfkit.cli import DATA_TASKS, STAGES
    classes = {**{k: v[0] for k, v in STAGES.items()}, **{f"data_{k}": v[0] for k, v in DATA_TASKS.items()}}
    files = sorted(Path(__file__).parent.parent.joinpath("configs").glob("*.yaml"))
    assert files
    for f in files:
        stage = f.stem.split(".")[0]
        parse(classes[stage], ["--config", str(f)])
