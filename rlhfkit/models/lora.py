"""LoRA adapters (PEFT) on any transformers model rlhfkit trains: `--lora.r 8`.

The adapters are injected in place (`peft.inject_adapter_in_model`): the model keeps its class and
forward, so every scorer, engine and trainer reads it as before. Only the adapters train (and a
reward or value model's scalar head beside them); the base weights stay as loaded, so:
- the KL reference of RL and DPO is the same model with its adapters switched off (`disabled`),
  not a second copy of the weights;
- a checkpoint holds only what trains (`trainable_state`), the base is read again from --model;
- the finished model is saved merged (base + B A, plain names: it loads with
  `from_pretrained`) as OUT/model, and the adapter alone as OUT/adapter (`save_adapter`, a PEFT
  adapter directory: `PeftModel.from_pretrained(base, OUT/adapter)`).
PEFT is imported only where adapters are asked for (`pip install 'rlhfkit[lora]'`).
"""
from __future__ import annotations

import contextlib
from pathlib import Path

import torch

from rlhfkit import runtime
from rlhfkit.errors import ModelError

LORA_KEY = ".lora_"       # the adapters' parameters carry it in their names
TRAINS = "rlhfkit_lora_trains"    # the model attribute naming what trains (adapters, a head beside them)


def _linear_types() -> tuple[type, ...]:
    from transformers.pytorch_utils import Conv1D       # GPT-2's linear layers
    return torch.nn.Linear, Conv1D


def has_adapters(model: torch.nn.Module) -> bool:
    return any(LORA_KEY in name for name, _ in model.named_parameters())


def adapter_layers(model: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """The modules holding an adapter (PEFT's LoRA layers), by name."""
    return {name: m for name, m in model.named_modules() if hasattr(m, "get_delta_weight") and hasattr(m, "lora_A")}


def block_linear_names(model: torch.nn.Module) -> list[str]:
    """Names of the linear layers inside the transformer blocks (q_proj, ..., down_proj): what
    "all-linear" adapts; never the LM head or a scalar head."""
    from rlhfkit.models.lm import decoder_layers     # lm imports this module
    layers = decoder_layers(model)
    return sorted({name.rsplit(".", 1)[-1] for layer in layers[:1] for name, m in layer.named_modules()
                   if isinstance(m, _linear_types())})


def add_adapters(model: torch.nn.Module, r: int, alpha: float, target_modules: str,
                 train_beside: tuple[torch.nn.Module, ...] = ()) -> torch.nn.Module:
    """Inject rank-`r` adapters (B starts at 0: the model is unchanged until it trains) into the
    `target_modules` ("all-linear" or comma-separated names); freeze everything else but the
    modules `train_beside` (a scalar head)."""
    try:
        from peft import LoraConfig, inject_adapter_in_model
    except ImportError:
        raise ModelError("--lora.r needs PEFT: pip install 'rlhfkit[lora]'") from None
    targets = (block_linear_names(model) if target_modules == "all-linear"
               else [t.strip() for t in target_modules.split(",") if t.strip()])
    present = {name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, _linear_types())}
    missing = [t for t in targets if t not in present]
    if not targets or missing:
        named = ", ".join(missing) or repr(target_modules)
        raise ModelError(f"{type(model).__name__}: no linear layer named {named} for --lora.target_modules; "
                         f"it has {', '.join(sorted(present))}")
    inject_adapter_in_model(LoraConfig(r=r, lora_alpha=alpha, target_modules=targets, lora_dropout=0.0,
                                       bias="none"), model)
    for name, p in model.named_parameters():
        p.requires_grad_(LORA_KEY in name)
    for module in train_beside:
        module.requires_grad_(True)
    # what trains, by name: a value warm-up may freeze the adapters for a while, a checkpoint still holds them
    setattr(model, TRAINS, frozenset(name for name, p in model.named_parameters() if p.requires_grad))
    return model


def apply(model: torch.nn.Module, cfg, seed: int, train_beside: tuple[torch.nn.Module, ...] = ()) -> torch.nn.Module:
    """`model` with the adapters a LoRAConfig asks for, their random A drawn from `seed` (`cfg` None
    or r 0: the model as it is, every weight trains)."""
    if cfg is None or not cfg.r:
        return model
    if runtime.sharded():
        raise ModelError("--lora.r with --fsdp: not supported yet (adapters are merged from whole weights); "
                         "use DDP (no --fsdp) with LoRA")
    torch.manual_seed(seed)
    return add_adapters(model, cfg.r, cfg.alpha, cfg.target_modules, train_beside)


@contextlib.contextmanager
def disabled(model: torch.nn.Module):
    """The base model: every adapter switched off inside the block (a KL reference without a copy)."""
    layers = list(adapter_layers(model).values())
    trains = {name: p.requires_grad for name, p in model.named_parameters()}
    for layer in layers:
        layer.enable_adapters(False)
    try:
        yield model
    finally:
        for layer in layers:
            layer.enable_adapters(True)
        for name, p in model.named_parameters():       # PEFT's enable_adapters marks every adapter trainable
            p.requires_grad_(trains[name])


def effective_weight(linear: torch.nn.Module) -> torch.Tensor:
    """A linear layer's weight as its forward applies it: with an adapter, base + B A x scale."""
    if hasattr(linear, "get_delta_weight") and hasattr(linear, "lora_A") and not linear.disable_adapters:
        return linear.base_layer.weight + sum(linear.get_delta_weight(name) for name in linear.active_adapters)
    return linear.weight


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """What trains: the adapters and any head beside them (a checkpoint's weights)."""
    trains = getattr(model, TRAINS)
    return {name: p.detach().clone() for name, p in model.named_parameters() if name in trains}


def load_trainable_state(model: torch.nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    """Put back `trainable_state`, refusing a state of other parameters."""
    expected = set(getattr(model, TRAINS))
    if set(state) != expected:
        odd = sorted(set(state) ^ expected)[:3]
        raise ModelError(f"{where}: its adapter weights do not fit the model ({', '.join(odd)})")
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value)


def merged_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's weights with every adapter merged into its layer, under the plain names."""
    layers = adapter_layers(model)
    out = {}
    for key, value in model.state_dict().items():
        if LORA_KEY in key:
            continue
        if ".base_layer." in key:
            owner, leaf = key.split(".base_layer.")
            key = f"{owner}.{leaf}"
            if leaf == "weight":
                value = effective_weight(layers[owner]).detach()
        out[key] = value.contiguous()
    return out


def save_adapter(path: Path, model: torch.nn.Module) -> None:
    """The adapter alone as a PEFT adapter directory (adapter_config.json + adapter_model.safetensors),
    its rank and alpha read from the layers, its base from the directory the model was loaded from.
    A reward or value model's trained head and read-out are in its merged model, not here."""
    from peft import LoraConfig, get_peft_model_state_dict
    from safetensors.torch import save_file
    layers = adapter_layers(model)
    first = next(iter(layers.values()))
    r, alpha = first.r["default"], first.lora_alpha["default"]
    base = str(getattr(model.config, "_name_or_path", ""))
    targets = sorted({name.rsplit(".", 1)[-1] for name in layers})
    config = LoraConfig(r=r, lora_alpha=alpha, target_modules=targets, lora_dropout=0.0, bias="none",
                        base_model_name_or_path=base)
    path.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(str(path))
    state = {f"base_model.model.{k}": v.contiguous() for k, v in get_peft_model_state_dict(model).items()}
    save_file(state, str(path / "adapter_model.safetensors"))
    (path / "README.md").write_text(f"LoRA adapter (r {r}, alpha {alpha:g}) for {base}, made by rlhfkit.\n")
