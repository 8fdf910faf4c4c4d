"""Attention for training in bfloat16 on a CPU.

torch's fused CPU attention (the kernel behind transformers' "sdpa") runs its backward pass far
slower in bfloat16 than in float32, so bf16 autocast gains little there; attention written as two
matmuls and a float32 softmax is faster on short sequences, and slower on long ones, where the
fused kernel's memory traffic wins (bench/README.md, "Training in bfloat16"). `use_for_training`
routes a model's attention to whichever is faster for each batch's length; it changes what is
computed only by float rounding.
"""
from __future__ import annotations

import torch
from transformers import AttentionInterface
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask
from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward

NAME = "rlhfkit_cpu"
MATMUL_MAX_KEYS = 192     # at or below this many keys the matmul form is the faster one (bf16, CPU)


def cpu_attention(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                  attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                  is_causal: bool | None = None, **kwargs) -> tuple[torch.Tensor, None]:
    """sdpa's contract (query (B, H, T, D), key/value (B, Hkv, S, D), output (B, T, H, D)), computed
    as matmuls for short sequences in bf16 (weights or autocast; under autocast, rotary positions
    hand over float32 queries and keys) on the CPU, and by sdpa otherwise."""
    bf16 = query.dtype == torch.bfloat16 or (torch.is_autocast_enabled("cpu")
                                             and torch.get_autocast_dtype("cpu") == torch.bfloat16)
    short = key.size(2) <= MATMUL_MAX_KEYS and bf16 and query.device.type == "cpu"
    if not short or kwargs.get("position_bias") is not None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    groups = getattr(module, "num_key_value_groups", 1)
    key, value = repeat_kv(key, groups), repeat_kv(value, groups)
    scale = query.size(-1) ** -0.5 if scaling is None else scaling
    # (B, H, T, S) is the one large tensor here: scaled through the query, masked in place, and
    # only the softmax's output is float32, so as few copies of it as possible are made
    scores = torch.matmul(query * scale, key.transpose(2, 3))
    if attention_mask is None and (getattr(module, "is_causal", True) if is_causal is None else is_causal):
        q, s = query.size(2), key.size(2)
        attention_mask = torch.ones(q, s, dtype=torch.bool, device=query.device).tril(diagonal=s - q)
    if attention_mask is not None and attention_mask.dtype == torch.bool:
        # not -inf: a row with no key to see stays finite
        scores = scores.masked_fill_(~attention_mask, torch.finfo(scores.dtype).min)
    elif attention_mask is not None:
        scores = scores + attention_mask
    weights = torch.softmax(scores, dim=-1, dtype=torch.float32).to(value.dtype)
    weights = torch.nn.functional.dropout(weights, p=dropout, training=module.training)
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), None


AttentionInterface.register(NAME, cpu_attention)
AttentionMaskInterface.register(NAME, sdpa_mask)     # the masks sdpa gets (without one, padding is not masked)


def use_for_training(model, dtype: str) -> None:
    """Route a model's sdpa attention through `cpu_attention` when it trains in bfloat16 on the CPU;
    any other model (eager, flash, float32, CUDA) is left as it is."""
    config = getattr(model, "config", None)
    if dtype != "bfloat16" or config is None or getattr(config, "_attn_implementation", None) != "sdpa":
        return
    if next(model.parameters()).device.type != "cpu":
        return
    model.set_attn_implementation(NAME)
