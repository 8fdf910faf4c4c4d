import math

import pytest
import torch

from rlhfkit.config import DPOConfig, SLiCConfig
from rlhfkit.data.records import Comparison
from rlhfkit.models.lm import load_causal_lm
from rlhfkit.train.preference import dpo_step, reference_groups, sequence_logprobs, slic_step
from rlhfkit.train.reward_model import encode_comparison

OFF = torch.autocast("cpu", enabled=False)


def _groups(model, tok, with_reference=True):
    comparisons = [Comparison("post: my friend fixed the sink. tl;dr:", (" my friend fixed the sink.", " i feel sad.",
                                                                          " the bus was late.")),
                   Comparison("post: we ordered pizza. tl;dr:", (" we ordered pizza.", " pizza pizza pizza pizza."))]
    encoded = [encode_comparison(c, tok, 512) for c in comparisons]
    return reference_groups(model, encoded, tok.pad_token_id, OFF)


def test_sequence_logprobs_sum_over_answer_tokens_only(tiny_model_dir):
    model, tok = load_causal_lm(tiny_model_dir)
    g = _groups(model, tok)[0]
    logp, n = sequence_logprobs(model, g.answers[:1], tok.pad_token_id)
    ids = torch.tensor([g.answers[0].input_ids])
    with torch.no_grad():
        full = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), -1)
    answer = [t for t, label in enumerate(g.answers[0].labels) if label != -100]
    expected = sum(full[t - 1, ids[0, t]].item() for t in answer)
    assert n.item() == len(answer) and logp.item() == pytest.approx(expected, abs=1e-4)


def test_reference_logprobs_do_not_depend_on_batching_or_order(tiny_model_dir):
    model, tok = load_causal_lm(tiny_model_dir)
    groups = _groups(model, tok)                        # length-sorted batches of 32
    for g in groups:
        for ex, ref in zip(g.answers, g.ref_logprobs):
            alone = sequence_logprobs(model, [ex], tok.pad_token_id)[0].item()
            assert ref == pytest.approx(alone, abs=1e-4)


def test_dpo_starts_at_log2_under_bf16_autocast_too(tiny_model_dir):
    model, tok = load_causal_lm(tiny_model_dir)
    bf16 = torch.autocast("cpu", dtype=torch.bfloat16)
    encoded = [g.answers for g in _groups(model, tok)]
    groups = reference_groups(model, encoded, tok.pad_token_id, bf16, batch_size=2)
    loss, _ = dpo_step(model, groups, tok.pad_token_id, DPOConfig(data="x", beta=0.5), bf16)
    assert loss.item() == pytest.approx(math.log(2), abs=1e-5)


def test_dpo_starts_at_log2_and_learns_the_rankings(tiny_model_dir):
    model, tok = load_causal_lm(tiny_model_dir)
    groups = _groups(model, tok)
    cfg = DPOConfig(data="x", beta=0.5)
    loss, stats = dpo_step(model, groups, tok.pad_token_id, cfg, OFF)
    assert loss.item() == pytest.approx(math.log(2), abs=1e-5)     # policy == reference
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(20):
        loss, stats = dpo_step(model, groups, tok.pad_token_id, cfg, OFF)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert stats["accuracy"] == 1.0 and loss.item() < 0.3


def test_slic_gradient_shrinks_the_hinge(tiny_model_dir):
    model, tok = load_causal_lm(tiny_model_dir)
    groups = _groups(model, tok)
    cfg = SLiCConfig(data="x", delta=1.0, reg_weight=0.1)
    first = slic_step(model, groups, tok.pad_token_id, cfg, OFF)[1]
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(30):
        loss, stats = slic_step(model, groups, tok.pad_token_id, cfg, OFF)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert stats["hinge"] < 0.5 * first["hinge"] and stats["accuracy"] == 1.0
