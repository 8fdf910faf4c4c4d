"""The shipped base model is found from any working directory, and the wheel ships it."""
import tomllib
from pathlib import Path

from rlhfkit.assets import CONVERSATION_BASE, TLDR_BASE
from rlhfkit.models.lm import load_causal_lm, resolve_model_dir

ROOT = Path(__file__).resolve().parents[1]


def test_the_default_name_finds_the_shipped_model_from_another_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_model_dir("models/tldr-base") == TLDR_BASE / "model"
    assert resolve_model_dir("models/tldr-base/model") == TLDR_BASE / "model"
    assert resolve_model_dir("models/conversation-base") == CONVERSATION_BASE / "model"
    assert resolve_model_dir("models/other") == Path("models/other")       # only the shipped names are looked up
    model, tokenizer = load_causal_lm("models/tldr-base")
    assert model.config.num_hidden_layers == 4 and len(tokenizer) == model.config.vocab_size
    model, tokenizer = load_causal_lm("models/conversation-base")
    assert model.config.max_position_embeddings == 512 and len(tokenizer) == model.config.vocab_size


def test_a_base_model_in_the_working_directory_wins(tmp_path, monkeypatch, tiny_model_dir):
    """`rlhfkit pretrain --out models/tldr-base` rebuilds it where the user works; that copy is used."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "tldr-base").symlink_to(tiny_model_dir.parent)
    assert resolve_model_dir("models/tldr-base") == Path("models/tldr-base/model")


def test_the_wheel_ships_the_model_and_its_report_but_not_its_log():
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["rlhfkit.assets"]
    shipped = {p.relative_to(TLDR_BASE.parent).as_posix() for g in globs for p in TLDR_BASE.parent.glob(g)}
    files = ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")
    assert shipped == {f"{name}/{f}" for name in ("tldr-base", "conversation-base")
                       for f in ("pretrain_report.json", *(f"model/{f}" for f in files))}
