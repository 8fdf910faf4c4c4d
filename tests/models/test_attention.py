"""Training attention in bfloat16 on the CPU: the matmul form computes what sdpa computes."""
import pytest
import torch
import torch.nn.functional as F

from rlhfkit.models import attention
from rlhfkit.models.lm import load_causal_lm


class Module(torch.nn.Module):
    def __init__(self, groups: int) -> None:
        super().__init__()
        self.num_key_value_groups = groups
        self.is_causal = True


def reference(q, k, v, allowed):
    """float32 attention, key/value heads repeated for grouped queries; `allowed` (B, 1, T, S) or None (causal)."""
    groups = q.size(1) // k.size(1)
    k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
    if allowed is None:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed).transpose(1, 2)


@pytest.mark.parametrize("heads,kv_heads", [(4, 4), (6, 2)])
@pytest.mark.parametrize("masked", [False, True])
def test_the_matmul_form_under_bf16_autocast_matches_float32_attention(heads, kv_heads, masked):
    torch.manual_seed(0)
    B, T, D = 3, 10, 16
    q, k, v = torch.randn(B, heads, T, D), torch.randn(B, kv_heads, T, D), torch.randn(B, kv_heads, T, D)
    allowed = None
    if masked:     # left padding: the first row has 4 pads, whose queries see only themselves
        real = torch.ones(B, T, dtype=torch.bool)
        real[0, :4] = False
        allowed = (torch.ones(T, T, dtype=torch.bool).tril() & real[:, None, :]) | torch.eye(T, dtype=torch.bool)
        allowed = allowed[:, None]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, _ = attention.cpu_attention(Module(heads // kv_heads), q, k, v, allowed)
    assert out.shape == (B, T, heads, D)
    torch.testing.assert_close(out.float(), reference(q, k, v, allowed), atol=3e-2, rtol=3e-2)


def test_a_float32_model_and_long_sequences_keep_sdpa(monkeypatch):
    model, _ = load_causal_lm("models/tldr-base")
    attention.use_for_training(model, "float32")
    assert model.config._attn_implementation == "sdpa"
    attention.use_for_training(model, "bfloat16")
    assert model.config._attn_implementation == attention.NAME
    called = []
    monkeypatch.setattr(attention, "sdpa_attention_forward", lambda *a, **kw: called.append(1) or (a[1], None))
    q = torch.randn(1, 2, attention.MATMUL_MAX_KEYS + 1, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        attention.cpu_attention(Module(1), q, q, q, None)
    assert called == [1]


def test_a_model_trains_to_the_same_loss_and_gradient_through_it():
    """The shipped model's loss and gradient under bf16 autocast: sdpa and the matmul form agree to
    bf16 rounding, so routing changes the arithmetic, not the model."""
    torch.manual_seed(0)
    ids = torch.randint(3, 900, (4, 40))
    mask = torch.ones_like(ids)
    mask[0, :7] = 0                                   # one left-padded row, as rollouts are
    results = []
    for route in (False, True):
        model, _ = load_causal_lm("models/tldr-base")
        if route:
            attention.use_for_training(model, "bfloat16")
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(input_ids=ids, attention_mask=mask).logits
        loss = F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.size(-1)), ids[:, 1:].reshape(-1),
                               reduction="none").view(4, -1)[mask[:, 1:].bool()].mean()
        loss.backward()
        results.append((loss.item(), model.model.layers[0].self_attn.q_proj.weight.grad.clone()))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-2)
    cosine = F.cosine_similarity(results[0][1].flatten(), results[1][1].flatten(), dim=0)
    assert cosine > 0.99
