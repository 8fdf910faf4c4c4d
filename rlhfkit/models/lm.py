"""Causal LMs: build a small Llama from a config, load any local Hugging Face directory, save
checkpoints atomically; and what differs between architectures, read one way for all (context
length, position ids, a pad token of its own).

    model, tok = load_causal_lm("models/tldr-base")
"""
from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
import json
import os
import shutil
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedModel

from rlhfkit import runtime
from rlhfkit.assets import shipped
from rlhfkit.models import lora
from rlhfkit.config import ArchConfig
from rlhfkit.errors import ModelError   # defined with the other error classes; imported from here too


PAD_TOKEN = "<pad>"     # the pad added to tokenizers that lack a distinct one


def build_llama(arch: ArchConfig, tokenizer) -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=arch.hidden_size, intermediate_size=arch.intermediate_size,
        num_hidden_layers=arch.num_layers, num_attention_heads=arch.num_heads,
        num_key_value_heads=arch.num_heads, max_position_embeddings=arch.max_len,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True,
        attention_dropout=0.0,  # dropout off: RLHF recomputes log-probs and needs them deterministic
    )
    return LlamaForCausalLM(config)


def resolve_model_dir(path: str | Path) -> Path:
    """A model directory, or a stage directory holding one in `model/` (e.g. `runs/sft`);
    `models/tldr-base` is the package's copy when the working directory has none."""
    path = shipped(path)
    if not (path / "config.json").is_file() and (path / "model" / "config.json").is_file():
        return path / "model"
    return path


def load_causal_lm(path: str | Path, dtype: torch.dtype = torch.float32):
    """(model, tokenizer) from a local directory, checked to belong together."""
    path = resolve_model_dir(path)
    model, tokenizer = from_pretrained(AutoModelForCausalLM, path, dtype=dtype)
    model.eval()
    check_tokenizer(model, tokenizer, str(path))
    add_pad_token(model, tokenizer)
    return model, tokenizer


def from_pretrained(model_class, path: Path, **kwargs) -> tuple[PreTrainedModel, object]:
    """(model, tokenizer) of a model directory; each way a directory is broken (no or malformed
    config.json, no tokenizer, truncated or corrupt weights) is one ModelError naming the file."""
    config = path / "config.json"
    if not config.is_file():
        raise ModelError(f"{path}: not a Hugging Face model directory (no config.json)")
    try:
        json.loads(config.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ModelError(f"{config}: not UTF-8 text") from None
    except json.JSONDecodeError as e:
        raise ModelError(f"{config}:{e.lineno}: malformed JSON ({e.msg} at column {e.colno})") from None
    if not any((path / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json")):
        raise ModelError(f"{path}: no tokenizer (neither tokenizer.json nor tokenizer_config.json); save the "
                         "tokenizer with the model")
    _loading(config, "it as a model config", AutoConfig.from_pretrained, path)   # names a bad field or model_type
    tokenizer = _loading(path, "the tokenizer", AutoTokenizer.from_pretrained, path)
    return _loading(path, "the model", model_class.from_pretrained, path, **kwargs), tokenizer


def _loading(where: Path, what: str, load, *args, **kwargs):
    """`load(*args, **kwargs)`, its failure a one-line ModelError."""
    try:
        return load(*args, **kwargs)
    except Exception as e:  # noqa: BLE001 -- a broken file surfaces as OSError, ValueError, SafetensorError...
        message = " ".join(str(e).split())[:300] or type(e).__name__
        weights = sorted(where.glob("*.safetensors")) if where.is_dir() else []
        if type(e).__name__ == "SafetensorError" and len(weights) == 1:
            raise ModelError(f"{weights[0]}: truncated or corrupt ({message})") from None
        raise ModelError(f"{where}: cannot load {what} ({message})") from None


def add_pad_token(model: PreTrainedModel, tokenizer) -> bool:
    """Give the tokenizer a `<pad>` of its own when it has no pad, or only EOS as pad (GPT-2,
    many hub models); True when one was added. A pad distinct from EOS keeps EOS learnable:
    masking by pad id would otherwise hide it from the loss and from the reward's last token.

    A new embedding row (and output row and bias) is the mean of the existing ones, never a
    random draw, so two loads give bitwise-equal weights whatever the seed, and pad's logit is
    an average one that a policy almost never samples."""
    if tokenizer.pad_token_id is not None and tokenizer.pad_token_id != tokenizer.eos_token_id:
        return False
    tokenizer.add_special_tokens({"pad_token": PAD_TOKEN})
    n_old = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > n_old:
        with torch.random.fork_rng(devices=[]):      # resizing draws rows we overwrite: leave the caller's RNG be
            model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        with torch.no_grad():
            for layer in (model.get_input_embeddings(), model.get_output_embeddings()):
                if layer is None:                    # a sequence-classification model has no output embedding
                    continue
                layer.weight[n_old:] = layer.weight[:n_old].mean(dim=0)
                if getattr(layer, "bias", None) is not None:
                    layer.bias[n_old:] = layer.bias[:n_old].mean()
    model.config.pad_token_id = tokenizer.pad_token_id
    if getattr(model, "generation_config", None) is not None:     # a reward model has none
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return True


def check_tokenizer(model: PreTrainedModel, tokenizer, where: str) -> None:
    n_embed = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > n_embed:
        raise ModelError(f"{where}: tokenizer has {len(tokenizer)} tokens but the model embeds only "
                         f"{n_embed}: they do not belong together")
    if tokenizer.eos_token_id is None:
        raise ModelError(f"{where}: tokenizer has no eos_token; responses could never end")
    eos = model.config.eos_token_id
    eos = eos if isinstance(eos, list) else [eos]
    if model.config.eos_token_id is not None and tokenizer.eos_token_id not in eos:
        raise ModelError(f"{where}: tokenizer eos_token_id {tokenizer.eos_token_id} differs from the model's "
                         f"eos_token_id {model.config.eos_token_id}: they do not belong together")


def context_length(model: PreTrainedModel) -> int:
    """The longest sequence the model takes. Configs name it differently (GPT-2's `n_positions` is
    mapped to `max_position_embeddings`, GPT-J says `n_ctx`); ALiBi models such as BLOOM have no
    limit of their own, and get 2048."""
    config = model.config.get_text_config()
    for name in ("max_position_embeddings", "n_positions", "n_ctx", "seq_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return 2048


def position_inputs(model: PreTrainedModel, attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Forward keyword arguments that number the real tokens 0, 1, ... so a left-padded row sees
    the positions it would alone: `position_ids` for models whose forward takes them (Llama,
    GPT-2, OPT, GPT-NeoX, ...), nothing for those that read positions from the mask (BLOOM's ALiBi)."""
    if "position_ids" not in inspect.signature(model.forward).parameters:
        return {}
    return {"position_ids": (attention_mask.cumsum(dim=1) - 1).clamp(min=0)}


def pack(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each row's real tokens moved to the front, in order, right-padded to the longest row:
    (ids (B, L), mask (B, L), where (B, T): the packed column of each input column's token, or of
    the real token before it for a padding column). A batch of rollouts (prompts left-padded to the
    longest, answers right-padded to the longest) is largely padding; packed, padding costs no
    compute, and as positions come from the mask a real token's output is what it was."""
    real = attention_mask.bool()
    lengths = real.sum(dim=1)
    B, T = input_ids.shape
    L = int(lengths.max())
    where = (real.long().cumsum(dim=1) - 1).clamp(min=0)
    packed = torch.arange(L, device=real.device)[None] < lengths[:, None]
    if L == T and bool((real == packed).all()):
        return input_ids, attention_mask, where
    rows = torch.arange(B, device=real.device)[:, None].expand(B, T)
    ids = input_ids.new_zeros((B, L))                                # any id: masked out
    ids[rows[real], where[real]] = input_ids[real]
    return ids, packed.to(attention_mask.dtype), where


def packed_forward(forward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], input_ids: torch.Tensor,
                   attention_mask: torch.Tensor) -> torch.Tensor:
    """`forward(ids, mask)` -> (B, L, ...) run on the packed rows (`pack`) and returned in the input's
    layout, (B, T, ...); a padding column holds the output at the real token before it."""
    ids, mask, where = pack(input_ids, attention_mask)
    out = forward(ids, mask)
    if ids is input_ids:
        return out
    index = where.view(*where.shape, *([1] * (out.dim() - 2))).expand(*where.shape, *out.shape[2:])
    return out.gather(1, index)


@dataclass
class SharedPrefix:
    """Sequences in groups (a prompt's answers) split where each group's members stop agreeing:
    every group's shared tokens once, right-padded (G, P), and every sequence's own rest,
    right-padded (N, S); `group` (N,) says whose prefix a rest continues."""
    prefix_ids: torch.Tensor
    prefix_mask: torch.Tensor
    suffix_ids: torch.Tensor
    suffix_mask: torch.Tensor
    group: torch.Tensor


def shared_prefix_length(sequences: list[list[int]], limit: int) -> int:
    """How many leading tokens all of `sequences` share, at most `limit`."""
    first = sequences[0]
    for i in range(limit):
        if any(s[i] != first[i] for s in sequences):
            return i
    return limit


def repeated_rows(ids: torch.Tensor, mask: torch.Tensor) -> list[int]:
    """Lengths of the runs of identical consecutive rows of (ids, mask), (B, T) each: the k samples
    of one prompt, laid out next to each other. [a, a, b, a] -> [2, 1, 1]."""
    new = torch.ones(ids.size(0), dtype=torch.long)
    new[1:] = ((ids[1:] != ids[:-1]) | (mask[1:] != mask[:-1])).any(dim=1).long()
    return torch.unique_consecutive(new.cumsum(dim=0), return_counts=True)[1].tolist()


def split_shared_prefix(sequences: list[list[int]], sizes: list[int], pad_id: int,
                        first_needed: list[int] | None = None) -> SharedPrefix | None:
    """`sequences` laid out group after group (`sizes`), split at each group's shared prefix. A
    sequence's outputs from position `first_needed[i]` on (default: its last token) stay in its
    suffix. None when some group shares no token (nothing to save, and an empty prefix row would
    attend to nothing), or under --fsdp."""
    if runtime.sharded():
        # FSDP2 lets a block's gathered weights go after its backward pass, and a prefix's backward
        # runs after its suffix's: under --fsdp each block runs once per step, on whole sequences
        return None
    needed = first_needed if first_needed is not None else [len(s) - 1 for s in sequences]
    groups, start = [], 0
    for k in sizes:
        groups.append(range(start, start + k))
        start += k
    cuts = [shared_prefix_length([sequences[i] for i in g], min(needed[i] for i in g)) for g in groups]
    if min(cuts) <= 0:
        return None
    prefix_ids, prefix_mask = right_pad([sequences[g[0]][:c] for g, c in zip(groups, cuts)], pad_id)
    suffix_ids, suffix_mask = right_pad([sequences[i][c:] for g, c in zip(groups, cuts) for i in g], pad_id)
    group = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    return SharedPrefix(prefix_ids, prefix_mask, suffix_ids, suffix_mask, group)


def right_pad(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of ids, left-aligned: (ids, mask), (B, longest)."""
    T = max(len(r) for r in rows)
    ids = torch.full((len(rows), T), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), T), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(r)
        mask[i, :len(r)] = 1
    return ids, mask


def shared_prefix_forward(model: PreTrainedModel, batch: SharedPrefix, **kwargs):
    """`model`'s output on every suffix (logits for a causal LM, hidden states for a backbone),
    as a full pass over prefix + suffix would give it, with each shared prefix run once through
    the backbone: its keys and values (and their gradients) are handed to its group's suffixes
    as a cache. A prompt's K answers then cost one prompt instead of K."""
    backbone = model.base_model
    prefix = backbone(input_ids=batch.prefix_ids, attention_mask=batch.prefix_mask, use_cache=True,
                      **position_inputs(backbone, batch.prefix_mask))
    # newer transformers name the cache `cache`, older ones `past_key_values`
    cache = prefix.cache if hasattr(prefix, "cache") else prefix.past_key_values
    cache.reorder_cache(batch.group)
    mask = torch.cat([batch.prefix_mask[batch.group], batch.suffix_mask], dim=1)
    parameters = inspect.signature(model.forward).parameters
    if "position_ids" in parameters:
        start = batch.prefix_mask.sum(dim=1)[batch.group]
        kwargs["position_ids"] = start[:, None] + torch.arange(batch.suffix_ids.size(1))[None]
    kwargs["cache" if "cache" in parameters else "past_key_values"] = cache
    return model(input_ids=batch.suffix_ids, attention_mask=mask, use_cache=True, **kwargs)


def logits_from(model: PreTrainedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                keep: int) -> torch.Tensor:
    """The logits of the last `keep` positions, (B, keep, V): the LM head and its softmax are the
    costly part of a small model's pass, and the positions before are never scored. Models whose
    forward takes `logits_to_keep` compute only those; others are sliced."""
    extra = {"logits_to_keep": keep} if "logits_to_keep" in inspect.signature(model.forward).parameters else {}
    logits = model(input_ids=input_ids, attention_mask=attention_mask, **position_inputs(model, attention_mask),
                   **extra).logits
    return logits[:, -keep:]


def decoder_layers(module: torch.nn.Module) -> list[torch.nn.Module]:
    """The repeated blocks of a transformers model, wherever the architecture keeps them."""
    for sub in module.modules():
        layers = getattr(sub, "layers", None) or getattr(sub, "h", None)
        if isinstance(layers, torch.nn.ModuleList):
            return list(layers)
    return []


def disable_dropout(model: torch.nn.Module) -> torch.nn.Module:
    """Turn every dropout of `model` off, module and functional alike. RL and preference losses
    compare log-probs of one text under two passes (ratio, KL, DPO margin); with dropout on they
    differ by noise alone (GPT-2 and OPT checkpoints ship with 0.1)."""
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
        for attr in ("attention_dropout", "dropout", "attn_dropout", "resid_dropout"):
            if isinstance(getattr(m, attr, None), float):
                setattr(m, attr, 0.0)
    return model


def save_atomic(path: str | Path, write) -> None:
    """Write a directory atomically: `write(tmp_dir)` fills a sibling, which then replaces `path`.
    A kill at any moment leaves either the old directory or the new one, never half of one. Under
    torchrun only the main process writes."""
    if not runtime.is_main():
        return
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    old = path.with_name(path.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write(tmp)
    if path.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


def recover_atomic(path: str | Path) -> None:
    """Finish a `save_atomic` that was killed between its two renames."""
    path = Path(path)
    old = path.with_name(path.name + ".old")
    if not path.exists() and old.exists():
        os.replace(old, path)


def save_model(path: str | Path, model: PreTrainedModel, tokenizer) -> None:
    """A finished model as a Hugging Face directory; one with LoRA adapters merged (it loads with
    `from_pretrained`), its adapter alone beside it (OUT/model -> OUT/adapter, OUT/value ->
    OUT/value_adapter)."""
    path = Path(path)
    adapters = lora.has_adapters(model)
    weights = lora.merged_state_dict(model) if adapters else runtime.full_state_dict(model)   # on every process

    def write(d: Path) -> None:
        model.save_pretrained(d, safe_serialization=True, **({"state_dict": weights} if weights is not None else {}))
        tokenizer.save_pretrained(d)
    save_atomic(path, write)
    if adapters:
        save_atomic(path.with_name("adapter" if path.name == "model" else f"{path.name}_adapter"),
                    lambda d: lora.save_adapter(d, model))


def save_weights(directory: Path, model: PreTrainedModel, weights: dict | None = None) -> None:
    """A checkpoint's weights: the whole model (`weights`, from `runtime.full_state_dict`, where it
    is sharded), or with LoRA only what trains (the base is read again from where it was loaded);
    `train.loop.load_weights` reads either back."""
    if lora.has_adapters(model):
        from safetensors.torch import save_file
        save_file(lora.trainable_state(model), str(directory / TRAINABLE_FILE))
        model.config.save_pretrained(directory)
    else:
        model.save_pretrained(directory, safe_serialization=True, **({"state_dict": weights} if weights else {}))


TRAINABLE_FILE = "trainable.safetensors"     # a LoRA checkpoint's weights (save_weights)


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
