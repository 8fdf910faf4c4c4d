"""An external engine (vLLM) and the correction its samples get: truncated importance sampling.
vLLM itself needs a CUDA GPU and is not installed here; what runs without it is tested: the
weights, the parsing of vLLM's outputs, and an RL run through an engine whose log-probs are not
the trainer's."""
import math
import sys
import types
from types import SimpleNamespace

import pytest
import torch

from rlhfkit import engines
from rlhfkit.algorithms.stats import clipped_surrogate, truncated_is
from rlhfkit.engines import Sampling, get_engine, hf, is_external
from rlhfkit.engines.vllm import sampled_rows
from rlhfkit.models.lm import load_causal_lm
from rlhfkit.train import rl
from tests.train.test_rl import _cfg, e_share


def test_truncated_weights_by_hand():
    trainer = torch.tensor([[-1.0, -2.0, -0.5, 0.0]])
    sampler = torch.tensor([[-1.5, -1.0, -0.5, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    weights, stats = truncated_is(trainer, sampler, mask, cap=1.5)
    # exp(0.5) = 1.65 is cut to 1.5; exp(-1) = 0.37 stays; equal log-probs weigh 1; padding 0
    assert weights[0].tolist() == pytest.approx([1.5, math.exp(-1.0), 1.0, 0.0])
    assert stats["tis_weight"] == pytest.approx((1.5 + math.exp(-1.0) + 1.0) / 3)
    assert stats["tis_capped"] == pytest.approx(1 / 3)
    k3 = [math.exp(d) - 1 - d for d in (0.5, -1.0, 0.0)]      # KL(sampler || trainer), on the sampler's tokens
    assert stats["sampler_kl"] == pytest.approx(sum(k3) / 3)


def test_scaling_the_advantages_weights_the_clipped_term():
    torch.manual_seed(0)
    logp, old, adv = torch.randn(3, 5) * 0.3, torch.randn(3, 5) * 0.3, torch.randn(3, 5)
    mask = torch.ones(3, 5)
    w = torch.rand(3, 5) * 2
    weighted, _ = clipped_surrogate(logp, old, adv, mask, 0.2)
    scaled, _ = clipped_surrogate(logp, old, adv * w, mask, 0.2)
    assert torch.allclose(w * weighted, scaled, atol=1e-6)


def test_vllm_outputs_become_padded_rows():
    def step(token, logprob):
        return {token: SimpleNamespace(logprob=logprob)}
    completions = [SimpleNamespace(token_ids=[5, 2], logprobs=[step(5, -0.5), step(2, -0.25)]),
                   SimpleNamespace(token_ids=[7, 8, 9], logprobs=[step(7, -1.0), step(8, -2.0), step(9, -3.0)])]
    ids, logprobs = sampled_rows(completions, Sampling(temperature=1.0, max_new_tokens=3, eos_id=2, pad_id=0))
    assert ids.tolist() == [[5, 2, 0], [7, 8, 9]]
    assert logprobs.tolist() == [[-0.5, -0.25, 0.0], [-1.0, -2.0, -3.0]]


def test_the_engines_say_which_are_external():
    assert is_external("vllm") and not is_external("hf") and not is_external("rlhfkit") and not is_external("auto")
    assert "vllm" not in engines.AUTO_ORDER            # chosen by name only
    assert "vllm" not in sys.modules                   # the engine's module imports vLLM only when it starts


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without CUDA")
def test_vllm_is_refused_without_a_gpu(tiny_model_dir):
    model, _ = load_causal_lm(str(tiny_model_dir))
    with pytest.raises(ValueError, match="vLLM needs a CUDA GPU"):
        get_engine("vllm", model)


def noisy_engine_module() -> types.ModuleType:
    """An external engine for the test: transformers' generate, its log-probs shifted by noise (as
    another engine's kernels and precision would shift them)."""
    module = types.ModuleType("noisy_engine")
    module.EXTERNAL = True

    class Engine(hf.Engine):
        def generate(self, prompt_ids, prompt_mask, sampling):
            out = super().generate(prompt_ids, prompt_mask, sampling)
            out.logprobs = (out.logprobs + 0.5 * torch.randn(out.logprobs.shape)) * out.mask
            return out
    module.Engine = Engine
    return module


def test_an_external_engines_samples_are_rescored_and_corrected(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "noisy_engine", noisy_engine_module())
    monkeypatch.setitem(engines.ENGINES, "hf", "noisy_engine")      # --sample.engine hf samples with it
    cfg = _cfg(tiny_model_dir, tmp_path / "noisy")
    cfg.rl.steps, cfg.rl.epochs, cfg.rl.minibatch_size, cfg.sample.engine = 1, 1, 8, "hf"
    stats = rl.run(cfg, reward_fn=e_share)
    # log pi_old is the trainer's own: the first minibatch's ratio is exactly 1 despite the noise
    assert stats["approx_kl"] == 0.0 and stats["clipfrac"] == 0.0, stats
    assert stats["sampler_kl"] > 0.05 and 0 < stats["tis_capped"] < 1 and stats["tis_weight"] > 0
    cfg.rl.tis_cap, cfg.out = 0.0, str(tmp_path / "off")
    assert "tis_weight" not in rl.run(cfg, reward_fn=e_share)
