"""Shared fixtures: a tiny Llama and tokenizer built from config, never from a hub."""
from __future__ import annotations

import os

import pytest
import torch

for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY"):
    os.environ[var] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
torch.set_num_threads(2)

from rlhfkit.config import ArchConfig  # noqa: E402
from rlhfkit.models.lm import build_llama, save_model  # noqa: E402
from rlhfkit.models.tokenizer import train_tokenizer  # noqa: E402
from rlhfkit.train.pretrain import corpus  # noqa: E402

TINY = ArchConfig(vocab_size=400, hidden_size=32, intermediate_size=64, num_layers=2, num_heads=2, max_len=512)


@pytest.fixture(scope="session")
def tiny_tokenizer():
    return train_tokenizer(corpus(0, "pretrain", 300), TINY.vocab_size)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_tokenizer):
    """A tiny untrained Llama saved as a Hugging Face directory."""
    torch.manual_seed(0)
    model = build_llama(TINY, tiny_tokenizer)
    path = tmp_path_factory.mktemp("tiny") / "model"
    save_model(path, model, tiny_tokenizer)
    return path


@pytest.fixture()
def kill_at_step(monkeypatch):
    """`kill_at_step(run, step)`: call `run()`, killed (KeyboardInterrupt) while the training loop
    builds the batch of `step` (1-based), as a kill -9 would stop it; the loop is whole again after."""
    from rlhfkit.train import loop

    def kill(run, step: int) -> None:
        real, calls = loop.batch_at, {"n": 0}

        def dying(*args):
            calls["n"] += 1
            if calls["n"] == step:
                raise KeyboardInterrupt
            return real(*args)
        monkeypatch.setattr(loop, "batch_at", dying)
        with pytest.raises(KeyboardInterrupt):
            run()
        monkeypatch.setattr(loop, "batch_at", real)
    return kill


def pytest_addoption(parser):
    parser.addoption("--load-answers", type=int, default=10000,
                     help="answers the labeling app's load test submits")
