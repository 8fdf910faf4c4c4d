"""Generation engines: the one place tokens are sampled.

    engine = get_engine("auto", model)      # or "rlhfkit", "hf"; `--sample.engine`; holds model's weights
    out = engine.generate(prompt_ids, prompt_mask, Sampling(temperature=0.7, max_new_tokens=64,
                                                            eos_id=tok.eos_token_id, pad_id=tok.pad_token_id))

An engine takes left-padded prompt ids and returns, per row, the sampled ids (cut after the first
EOS), the sampler's own log-probs of them and whether the row stopped at EOS. Sampling is plain
temperature sampling from the global torch RNG (callers seed it), so two engines given the same
weights draw from the same distribution. A new engine is one module with a class named `Engine`
(and `unsupported(config)` if it runs only some models) and one line in ENGINES; this module imports nothing heavy, so configs can list the names.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from rlhfkit.errors import ModelError

if TYPE_CHECKING:
    import torch

ENGINES: dict[str, str] = {
    "hf": "rlhfkit.engines.hf",            # transformers' generate: the reference, any architecture
    "rlhfkit": "rlhfkit.engines.static_kv",  # own decode loop, static KV cache, Llama-family models
    "vllm": "rlhfkit.engines.vllm",        # vLLM, colocated (the [vllm] extra, CUDA): never chosen by auto
}
AUTO_ORDER = ("rlhfkit", "hf")     # "auto": the first that runs the model (a module's `unsupported(config)`)
CHOICES = ("auto", *ENGINES)       # what --sample.engine takes


@dataclass(frozen=True)
class Sampling:
    temperature: float
    max_new_tokens: int
    eos_id: int
    pad_id: int
    greedy: bool = False        # argmax instead of sampling (tests compare engines exactly with it)


@dataclass
class Generation:
    ids: "torch.Tensor"         # (B, R) sampled ids, pad after the first EOS (which stays)
    mask: "torch.Tensor"        # (B, R) 1 on sampled tokens up to and including EOS
    logprobs: "torch.Tensor"    # (B, R) float32 log-prob of each sampled token under the sampled
    #                             distribution (logits / temperature), 0 on padding
    finished: "torch.Tensor"    # (B,) bool: the row emitted EOS (else it hit max_new_tokens)


class Engine(Protocol):
    def load_weights(self, model) -> None: ...
    def generate(self, prompt_ids: "torch.Tensor", prompt_mask: "torch.Tensor", sampling: Sampling) -> Generation: ...


def finish(ids: "torch.Tensor", logprobs: "torch.Tensor", sampling: Sampling) -> Generation:
    """Cut each row after its first EOS (the EOS stays): pad ids, zero log-probs, mask 0 beyond it."""
    is_eos = ids == sampling.eos_id
    after = (is_eos.cumsum(dim=1) - is_eos.long()) > 0
    return Generation(ids=ids.masked_fill(after, sampling.pad_id), mask=(~after).long(),
                      logprobs=logprobs.masked_fill(after, 0.0), finished=is_eos.any(dim=1))


def is_external(name: str) -> bool:
    """Whether engine `name` samples with kernels other than the trainer's (a module's EXTERNAL), so
    its log-probs are not the trainer's log pi_old (`train/rl.py` recomputes and corrects them)."""
    return name != "auto" and getattr(importlib.import_module(ENGINES[name]), "EXTERNAL", False)


def get_engine(name: str, model=None) -> Engine:
    """A new engine `name` holding `model`'s weights (if given) until it is dropped. "auto" is the
    first of AUTO_ORDER that runs the model: the own engine for Llama-family models, else `generate`."""
    if name == "auto":
        if model is None:
            raise ValueError("the auto engine is chosen for a model: pass it")
        name = next(n for n in AUTO_ORDER if getattr(importlib.import_module(ENGINES[n]), "unsupported",
                                                     lambda config: None)(model.config) is None)
    if name not in ENGINES:
        raise ValueError(f"unknown generation engine {name!r}; known: auto, {', '.join(ENGINES)}")
    module = importlib.import_module(ENGINES[name])
    why = None if model is None else getattr(module, "unsupported", lambda config: None)(model.config)
    if why is not None:
        raise ModelError(f"generation engine {name!r} cannot run this model: {why}")
    engine = module.Engine()
    if model is not None:
        engine.load_weights(model)
    return engine
