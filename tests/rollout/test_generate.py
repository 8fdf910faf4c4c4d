import pytest
import torch

from rlhfkit.engines import ENGINES, is_external
from rlhfkit.models.lm import load_causal_lm
from rlhfkit.rollout.generate import generate, token_logprobs
from rlhfkit.tasks.tldr.world import make_split


@pytest.mark.parametrize("engine", [n for n in ENGINES if not is_external(n)])
def test_generation_is_seeded_and_its_kl_to_itself_is_zero(tiny_model_dir, engine):
    model, tok = load_causal_lm(tiny_model_dir)
    prompts = [p.prompt for p in make_split(0, "test", 4)]
    a = generate(model, tok, prompts, temperature=0.7, max_new_tokens=12, seed=3, engine=engine)
    b = generate(model, tok, prompts, temperature=0.7, max_new_tokens=12, seed=3, engine=engine)
    assert torch.equal(a.response_ids, b.response_ids)
    ref = token_logprobs(model, a.input_ids, a.attention_mask, a.response_ids.size(1), 0.7) * a.response_mask
    assert torch.allclose((a.logprobs - ref).sum(dim=1), torch.zeros(4), atol=1e-5)


def test_logprobs_do_not_depend_on_left_padding(tiny_model_dir):
    model, tok = load_causal_lm(tiny_model_dir)
    prompts = [p.prompt for p in make_split(0, "test", 3)]
    batch = generate(model, tok, prompts, temperature=1.0, max_new_tokens=8, seed=0)
    alone = generate(model, tok, prompts[:1], temperature=1.0, max_new_tokens=8, seed=0)
    # same response tokens scored alone vs in a padded batch
    n = batch.response_mask[0].sum()
    ids = torch.cat([alone.prompt_ids, batch.response_ids[:1]], dim=1)
    mask = torch.cat([alone.prompt_mask, batch.response_mask[:1]], dim=1)
    lp = token_logprobs(model, ids, mask, batch.response_ids.size(1), 1.0)
    assert torch.allclose(lp[0, :n], batch.logprobs[0, :n], atol=1e-4)
