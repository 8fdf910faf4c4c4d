import argparse

import pytest

from rlhfkit.cli import DATA_TASKS, LABEL_COMMANDS, MODEL_COMMANDS, STAGES, main
from rlhfkit.config import (ArchConfig, ConfigError, DemoConfig, EvalConfig, PretrainConfig, RLAlgoConfig, RLConfig,
                            RSFTConfig, RWSFTConfig, SFTConfig, TrainConfig, add_arguments, check_fields, check_max_len,
                            from_args, to_dict)
from rlhfkit.config.fields import leaves
from rlhfkit.errors import InputError
from rlhfkit.feedback.config import LabelExportConfig

# the fields each command needs before its config is whole
NEEDED = {"DataTldrConfig": {"stats": True}, "RMConfig": {"data": "c.jsonl"}, "DPOConfig": {"data": "c.jsonl"},
          "SLiCConfig": {"data": "c.jsonl"}, "RLConfig": {"reward_model": "runs/rm"},
          "BestOfNConfig": {"reward_model": "runs/rm"}, "RSFTConfig": {"reward_model": "runs/rm"},
          "RWSFTConfig": {"reward_model": "runs/rm"},
          "DataVaderConfig": {"out": "data/vader"}, "ModelImportConfig": {"source": "smollm2", "out": "m"},
          "LabelCampaignConfig": {"rollouts": "r.jsonl"}, "LabelSimulateConfig": {"tokens": "t1"}}
ALL_CLASSES = [cls for table in (STAGES, DATA_TASKS, LABEL_COMMANDS, MODEL_COMMANDS) for cls, _ in table.values()]


def parse(cls, argv):
    parser = argparse.ArgumentParser()
    add_arguments(parser, cls)
    return from_args(cls, parser.parse_args([str(a) for a in argv]))


def yaml_file(tmp_path, text):
    f = tmp_path / "c.yaml"
    f.write_text(text)
    return f


def cli_error(capsys, *argv) -> str:
    """Run `rlhfkit ARGV`, which must fail as a usage error: exit 2 and one line on stderr."""
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


# ---- Loading: YAML then dotted flags --------------------------------------------------
def test_dotted_overrides_reach_nested_fields():
    cfg = parse(SFTConfig, ["--train.lr", "3e-4", "--task.seed", "7", "--resume", "false"])
    assert (cfg.train.lr, cfg.task.seed, cfg.resume) == (3e-4, 7, False)


def test_yaml_then_flags(tmp_path):
    f = yaml_file(tmp_path, "train:\n  lr: 0.01\n  batch_size: 4\nout: x\n")
    cfg = parse(SFTConfig, ["--config", f, "--train.batch_size", "8"])
    assert (cfg.train.lr, cfg.train.batch_size, cfg.out) == (0.01, 8, "x")


def test_yaml_reads_exponents_without_a_dot(tmp_path):
    # YAML 1.1 reads 1e-3 as a string; a float field parses it as the command line does
    cfg = parse(SFTConfig, ["--config", yaml_file(tmp_path, "train:\n  lr: 1e-3\n")])
    assert cfg.train.lr == 1e-3


def test_unknown_yaml_field_is_named(tmp_path):
    with pytest.raises(ConfigError, match="unknown config field 'train.lrr'"):
        parse(SFTConfig, ["--config", yaml_file(tmp_path, "train:\n  lrr: 0.01\n")])


def test_a_section_given_a_value_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"c.yaml: train is a section: set its fields \(train.FIELD\)"):
        parse(SFTConfig, ["--config", yaml_file(tmp_path, "train: 5\n")])


def test_shipped_configs_load():
    from pathlib import Path
    classes = {**{k: v[0] for k, v in STAGES.items()}, **{f"data_{k}": v[0] for k, v in DATA_TASKS.items()}}
    files = sorted(Path(__file__).parent.parent.joinpath("configs").glob("*.yaml"))
    assert files
    claims = 0
    for f in files:
        cls = classes[f.stem.split(".")[0]]
        cfg = parse(cls, ["--config", str(f)])
        if "(the defaults, written out" in f.read_text().splitlines()[0]:
            claims += 1
            # every value such a file writes is the dataclass default: it says so on its first line
            assert to_dict(cfg) == to_dict(cls()), f.name
    assert claims >= 2     # demo.tldr.yaml and vader.smollm2.yaml


# ---- Types are exact --------------------------------------------------------------------
@pytest.mark.parametrize("text,message", [
    ("train:\n  batch_size: 3.7\n", "train.batch_size: expected an integer, got 3.7"),
    ("task:\n  seed: true\n", "task.seed: expected an integer, got True"),
    ("resume: 1.5\n", "resume: expected true or false, got 1.5"),
    ("train:\n  lr: [0.1, 0.2]\n", r"train.lr: expected a number, got \[0.1, 0.2\]"),
    ("train:\n  lr: true\n", "train.lr: expected a number, got True"),
    ("out: [a, b]\n", r"out: expected a string, got \['a', 'b'\]"),
    ("train:\n  lr:\n", "train.lr: expected a number, got None"),
])
def test_yaml_value_of_the_wrong_type_names_file_and_field(tmp_path, text, message):
    f = yaml_file(tmp_path, text)
    with pytest.raises(ConfigError, match=f"^{f}: {message}$"):
        parse(SFTConfig, ["--config", f])


def test_flags_parse_to_the_field_type():
    assert parse(SFTConfig, ["--train.batch_size", "3"]).train.batch_size == 3
    with pytest.raises(ConfigError, match="train.batch_size: expected an integer, got '3.7'"):
        parse(SFTConfig, ["--train.batch_size", "3.7"])
    with pytest.raises(ConfigError, match="train.lr: expected a number, got 'fast'"):
        parse(SFTConfig, ["--train.lr", "fast"])
    with pytest.raises(ConfigError, match="resume: expected true or false, got 'maybe'"):
        parse(SFTConfig, ["--resume", "maybe"])


def test_python_configs_get_the_same_type_checks():
    with pytest.raises(ConfigError, match="train.batch_size: expected an integer, got 3.7"):
        SFTConfig(train=TrainConfig(batch_size=3.7)).validate()
    with pytest.raises(ConfigError, match="train.batch_size: expected an integer, got True"):
        SFTConfig(train=TrainConfig(batch_size=True)).validate()
    with pytest.raises(ConfigError, match="train: expected a TrainConfig, got None"):
        SFTConfig(train=None).validate()
    SFTConfig(train=TrainConfig(lr=1)).validate()   # an int is a fine float


# ---- Numbers finite and in range --------------------------------------------------------
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_lr_is_refused_from_flags_yaml_and_python(tmp_path, value):
    message = f"train.lr must be a finite number, got {float(value)}"
    with pytest.raises(ConfigError, match=message):
        parse(SFTConfig, [f"--train.lr={value}"])   # '=': argparse takes '-inf' alone for a flag
    with pytest.raises(ConfigError, match=f"c.yaml: {message}"):
        parse(SFTConfig, ["--config", yaml_file(tmp_path, f"train:\n  lr: {value}\n")])
    with pytest.raises(ConfigError, match=message):
        SFTConfig(train=TrainConfig(lr=float(value))).validate()


def test_yaml_nan_literal_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="train.lr must be a finite number, got nan"):
        parse(SFTConfig, ["--config", yaml_file(tmp_path, "train:\n  lr: .nan\n")])


@pytest.mark.parametrize("flag,message", [
    ("--train.warmup_steps", "train.warmup_steps must be >= 0, got -1"),
    ("--train.checkpoint_every", "train.checkpoint_every must be >= 0, got -1"),
    ("--train.grad_clip", "train.grad_clip must be >= 0, got -1.0"),
    ("--train.max_loss", "train.max_loss must be >= 0, got -1.0"),
    ("--train.batch_size", "train.batch_size must be >= 1, got -1"),
    ("--train.lr", "train.lr must be > 0, got -1.0"),
    ("--max_len", "max_len must be >= 0, got -1"),
])
def test_negative_values_are_refused(flag, message):
    with pytest.raises(ConfigError, match=message):
        parse(SFTConfig, [flag, "-1"])


def test_rl_limits_are_checked():
    with pytest.raises(ConfigError, match="rl.max_kl must be >= 0, got -1.0"):
        parse(RLConfig, ["--reward_model", "rm", "--rl.max_kl", "-1"])
    with pytest.raises(ConfigError, match="sample.temperature must be > 0, got 0.0"):
        parse(RLConfig, ["--reward_model", "rm", "--sample.temperature", "0"])
    with pytest.raises(ConfigError, match=r"rl.k must be >= 2 for grpo"):
        parse(RLConfig, ["--reward_model", "rm", "--algo", "grpo", "--rl.k", "1"])


def test_every_section_is_checked_under_its_own_name():
    # the demo's rsft / rwsft and preference sections are TrainConfigs like its sft section
    with pytest.raises(ConfigError, match="sl.lr must be > 0, got 0"):
        DemoConfig(sl=TrainConfig(lr=0)).validate()
    with pytest.raises(ConfigError, match="pref.warmup_steps must be >= 0, got -5"):
        DemoConfig(pref=TrainConfig(warmup_steps=-5)).validate()


def test_choices_are_named():
    with pytest.raises(ConfigError, match="train.dtype must be one of float32, bfloat16, got 'float16'"):
        parse(SFTConfig, ["--train.dtype", "float16"])
    with pytest.raises(ConfigError, match="algo must be one of ppo, rloo, grpo, reinforce_pp, got 'a2c'"):
        parse(RLConfig, ["--reward_model", "rm", "--algo", "a2c"])


def test_arch_heads_divide_the_width_into_even_parts():
    with pytest.raises(ConfigError, match=r"arch.hidden_size \(192\) must be divisible by arch.num_heads \(5\)"):
        PretrainConfig(arch=ArchConfig(num_heads=5)).validate()
    with pytest.raises(ConfigError, match=r"arch.hidden_size / arch.num_heads \(15\) must be even"):
        PretrainConfig(arch=ArchConfig(hidden_size=30, num_heads=2)).validate()


def test_help_shows_each_fields_limits():
    parser = argparse.ArgumentParser()
    add_arguments(parser, SFTConfig)
    text = " ".join(parser.format_help().split())
    assert "(default: 0.001; > 0)" in text and "(default: 'float32'; one of float32, bfloat16)" in text


# ---- Contradictions ---------------------------------------------------------------------
def test_reward_and_reward_model_together_are_refused(capsys):
    err = cli_error(capsys, "rl", "--reward", "m:f", "--reward_model", "runs/rm")
    assert "reward ('m:f') and reward_model ('runs/rm') are both given" in err
    with pytest.raises(ConfigError, match="are both given"):
        RLConfig(reward="m:f", reward_model="runs/rm").validate()


def test_rl_needs_a_reward():
    with pytest.raises(ConfigError, match="rl needs --reward_model DIR or --reward FILE.py:FUNCTION"):
        RLConfig().validate()
    RLConfig(reward="m:f").validate()
    RLConfig(reward_model="runs/rm").validate()


@pytest.mark.parametrize("stage", ["bon", "rsft", "rwsft"])
def test_sampling_stages_take_one_reward_as_rl_does(capsys, stage):
    cls = {name: cls for name, (cls, _) in STAGES.items()}[stage]
    err = cli_error(capsys, stage)
    assert f"{stage} needs --reward_model DIR or --reward FILE.py:FUNCTION" in err
    err = cli_error(capsys, stage, "--reward", "m:f", "--reward_model", "runs/rm")
    assert "reward ('m:f') and reward_model ('runs/rm') are both given" in err
    assert "must look like 'FILE.py:FUNCTION'" in cli_error(capsys, stage, "--reward", "rewards.py")
    cls(reward="m:f").validate()
    cls(reward_model="runs/rm").validate()


@pytest.mark.parametrize("cls", [RSFTConfig, RWSFTConfig])
def test_rejection_stages_take_a_reward_function_from_python(cls):
    cls().validate(with_reward_fn=True)
    with pytest.raises(ConfigError, match=r"reward \('m:f'\) is given beside a reward function"):
        cls(reward="m:f").validate(with_reward_fn=True)


def test_gold_upper_bounds_spend_ppos_episodes():
    cfg = DemoConfig(methods="gold_rsft,gold_ppo,rsft")
    cfg.validate()
    assert cfg.method_samples("gold_rsft") == cfg.method_samples("gold_ppo") == 40 * 64
    assert cfg.samples_per_unit("gold_rsft") == 2 * 8 and cfg.method_samples("rsft") == 0
    assert DemoConfig(methods="gold_rsft", samples=320).method_samples("gold_rsft") == 320
    with pytest.raises(ConfigError, match=r"gold_rsft's samples \(2560\) must be a multiple of 24"):
        DemoConfig(methods="gold_rsft", sample_n=12).validate()


def test_sweep_options_that_would_break_its_budgets_are_refused():
    from rlhfkit.config import SweepConfig
    SweepConfig().validate()
    with pytest.raises(ConfigError, match="rl.lr_decay must stay false and rl.keep_at empty"):
        SweepConfig(rl=RLAlgoConfig(lr_decay=True)).validate()
    with pytest.raises(ConfigError, match="samples: 1000 is not a multiple of 256, the samples one ppo iteration"):
        SweepConfig(samples="1000").validate()
    SweepConfig(samples="1000", methods="bon").validate()       # only the methods it runs set the units
    with pytest.raises(ConfigError, match=r"rl.value_warmup \(200\) must be below rl.steps \(120\)"):
        SweepConfig(rl=RLAlgoConfig(lr_decay=False, prompts_per_step=256, value_warmup=200)).validate()
    SweepConfig(seeds=3, only_seed=2).validate()
    with pytest.raises(ConfigError, match=r"only_seed: 3 is not one of the 3 seeds \(0 ... 2\)"):
        SweepConfig(seeds=3, only_seed=3).validate()


def test_a_reward_function_in_python_stands_for_reward():
    RLConfig().validate(with_reward_fn=True)
    with pytest.raises(ConfigError, match=r"reward_model \('runs/rm'\) is given beside a reward function"):
        RLConfig(reward_model="runs/rm").validate(with_reward_fn=True)


@pytest.mark.parametrize("algo", ["rloo", "grpo"])
def test_value_model_without_ppo_is_refused(capsys, algo):
    err = cli_error(capsys, "rl", "--algo", algo, "--reward_model", "rm", "--value_model", "v")
    assert f"value_model is for ppo; {algo} learns no value model" in err


def test_contradictory_counts_are_refused():
    with pytest.raises(ConfigError, match=r"n_prompts \(600\) exceeds task.n_test \(500\)"):
        parse(EvalConfig, ["--n_prompts", "600"])
    with pytest.raises(ConfigError, match=r"n_prompts \(600\) exceeds task.n_test \(500\)"):
        parse(DemoConfig, ["--n_prompts", "600"])
    with pytest.raises(ConfigError, match="json prints the statistics: give it with --stats"):
        parse(DATA_TASKS["tldr"][0], ["--out", "d", "--json"])


# ---- Files: the config itself and the output path ------------------------------------
def test_bad_yaml_names_file_and_line(capsys, tmp_path):
    f = yaml_file(tmp_path, "out: x\ntrain:\n  lr: 0.1: 3\n  batch_size: 4\n")
    err = cli_error(capsys, "sft", "--config", f)
    assert f"{f}:3: not valid YAML: mapping values are not allowed here" in err


def test_missing_config_file_is_named(capsys, tmp_path):
    err = cli_error(capsys, "sft", "--config", tmp_path / "nope.yaml")
    assert f"{tmp_path / 'nope.yaml'}: no such config file" in err


def test_wrong_type_in_yaml_exits_2(capsys, tmp_path):
    f = yaml_file(tmp_path, "train:\n  lr: [1, 2]\n")
    assert f"{f}: train.lr: expected a number" in cli_error(capsys, "sft", "--config", f)


def test_out_that_is_a_file_is_refused(capsys, tmp_path):
    f = tmp_path / "model.txt"
    f.write_text("")
    assert f"out: {f} is an existing file, not a directory" in cli_error(capsys, "sft", "--out", f)
    with pytest.raises(ConfigError, match="out: .* is an existing file, not a directory"):
        SFTConfig(out=str(f)).validate()
    # where the stage writes a file, a directory is the wrong kind
    with pytest.raises(ConfigError, match="out: .* is an existing directory, not a file"):
        LabelExportConfig(out=str(tmp_path)).validate()


# ---- validate() over every config ---------------------------------------------------
@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda c: c.__name__)
def test_defaults_are_within_limits_and_validate_is_idempotent(cls):
    cfg = cls(**NEEDED.get(cls.__name__, {}))
    check_fields(cls())
    before = to_dict(cfg)
    cfg.validate()
    cfg.validate()
    assert to_dict(cfg) == before


def test_every_number_field_is_bounded_or_named_here():
    # a field with no limit must be one that may be any finite value
    free = {"rl.eos_penalty", "eos_penalty", "positive_min"}
    for cls in ALL_CLASSES + [RLAlgoConfig]:
        for name, _, t, f in leaves(cls()):
            if t in (int, float) and not {"gt", "ge", "lt", "le"} & set(f.metadata):
                assert name in free, f"{cls.__name__}.{name} has no limits"


def test_check_max_len():
    check_max_len(512, 512)
    with pytest.raises(ConfigError, match=r"^max_len \(600\) is above the model's context length \(512\)$"):
        check_max_len(600, 512)
    with pytest.raises(ConfigError, match=r"^sample.max_new_tokens \(600\) is above"):
        check_max_len(600, 512, "sample.max_new_tokens")


def test_config_errors_are_input_errors():
    with pytest.raises(InputError):
        check_max_len(600, 512)


def test_value_warmup_needs_a_value_model_and_room_to_train_the_policy():
    with pytest.raises(ConfigError, match="rl.value_warmup is for algorithms with a value model; grpo has none"):
        RLConfig(algo="grpo", reward_model="rm", rl=RLAlgoConfig(value_warmup=2)).validate()
    with pytest.raises(ConfigError, match=r"rl.value_warmup \(40\) must be below rl.steps \(40\)"):
        RLConfig(reward_model="rm", rl=RLAlgoConfig(value_warmup=40)).validate()


# ---- Each RL algorithm's own section ------------------------------------------------------
def test_an_algorithms_own_options_live_in_its_section(tmp_path, capsys):
    cfg = parse(RLConfig, ["--reward_model", "rm", "--ppo.lam", "0.5", "--grpo.eps", "0.01"])
    assert (cfg.ppo.lam, cfg.grpo.eps) == (0.5, 0.01)
    # an option that moved there is named with its new place, on the command line and in a YAML file
    with pytest.raises(SystemExit) as exit:
        main(["rl", "--reward_model", "rm", "--rl.lam", "0.5"])
    err = capsys.readouterr().err
    assert exit.value.code == 2 and err.startswith("rlhfkit: error: --rl.lam is now --ppo.lam")
    with pytest.raises(ConfigError, match=r"c.yaml: config field 'rl.vf_coef' is now 'ppo.vf_coef'"):
        parse(RLConfig, ["--config", yaml_file(tmp_path, "rl:\n  vf_coef: 0.2\n")])
    with pytest.raises(ConfigError, match="ppo.lam must be <= 1"):
        parse(DemoConfig, ["--ppo.lam", "2"])


def test_demo_samples_set_every_sampling_methods_budget_or_name_what_it_must_divide():
    cfg = DemoConfig(methods="all,grpo", samples=2560)
    cfg.validate()
    units = {m: cfg.samples_per_unit(m) for m in ("rsft", "rwsft", "ppo", "grpo", "dpo", "bon")}
    assert units == {"rsft": 2 * 8, "rwsft": 8, "ppo": 64, "grpo": 64 * 4, "dpo": 0, "bon": 0}
    with pytest.raises(ConfigError, match=r"ppo's samples \(100\) must be a multiple of 64, the samples it draws"):
        DemoConfig(samples=100).validate()
