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
from transformers import AutoModelForCausalLM

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


class StandInVLLM(types.ModuleType):
    """Just enough of vLLM's interface (LLM, SamplingParams, TokensPrompt) to run the engine's own code
    on the CPU: the "engine" is transformers' model read back from the directory the engine wrote,
    sampling greedily through rlhfkit's hf engine, its outputs in vLLM's shapes (the stop token kept
    in token_ids, one {token: Logprob} dict per position)."""

    def __init__(self, eos_id: int, pad_id: int):
        super().__init__("vllm")
        stand_in, self.built, self.pushes, self.resets = self, [], [], 0
        self.SamplingParams = lambda **kw: SimpleNamespace(**kw)
        self.inputs = types.SimpleNamespace(TokensPrompt=lambda prompt_token_ids: {"ids": prompt_token_ids})

        class LLM:
            def __init__(self, model, **kwargs):
                self.model = AutoModelForCausalLM.from_pretrained(model)
                stand_in.built.append(kwargs)
                runner = SimpleNamespace(model=SimpleNamespace(load_weights=self.load))
                self.llm_engine = SimpleNamespace(model_executor=SimpleNamespace(
                    driver_worker=SimpleNamespace(worker=SimpleNamespace(model_runner=runner))))

            def load(self, weights):
                stand_in.pushes.append(self.model.load_state_dict(dict(weights), strict=False))

            def reset_prefix_cache(self):
                stand_in.resets += 1

            def generate(self, prompts, params, use_tqdm):
                outputs = []
                for prompt, p in zip(prompts, params):
                    assert p.temperature == 0.0 and p.logprobs == 0 and p.stop_token_ids == [eos_id]
                    ids = torch.tensor([prompt["ids"]])
                    out = hf.Engine()
                    out.load_weights(self.model)
                    g = out.generate(ids, torch.ones_like(ids), Sampling(1.0, p.max_tokens, eos_id, pad_id, greedy=True))
                    n = int(g.mask.sum())
                    tokens = g.ids[0, :n].tolist()
                    steps = [{t: SimpleNamespace(logprob=float(lp))} for t, lp in zip(tokens, g.logprobs[0, :n])]
                    outputs.append(SimpleNamespace(outputs=[SimpleNamespace(token_ids=tokens, logprobs=steps)]))
                return outputs
        self.LLM = LLM


def test_the_vllm_engine_builds_once_and_samples_the_current_weights(tiny_model_dir, monkeypatch):
    from rlhfkit.engines import vllm as engine_module
    from rlhfkit.rollout.generate import encode_prompts
    model, tok = load_causal_lm(str(tiny_model_dir))
    stand_in = StandInVLLM(tok.eos_token_id, tok.pad_token_id)
    monkeypatch.setitem(sys.modules, "vllm", stand_in)
    monkeypatch.setitem(sys.modules, "vllm.inputs", stand_in.inputs)
    monkeypatch.setattr(engine_module, "unsupported", lambda config: None)     # no GPU here
    monkeypatch.setattr(engine_module, "_llm", None)
    ids, mask = encode_prompts(["the cat", "a much longer opening line"], tok, 100)
    greedy = Sampling(temperature=1.0, max_new_tokens=12, eos_id=tok.eos_token_id, pad_id=tok.pad_token_id,
                      greedy=True)

    def both():
        return get_engine("vllm", model).generate(ids, mask, greedy), get_engine("hf", model).generate(ids, mask, greedy)
    for attempt in range(2):          # the second time: the weights changed, the engine is the same one
        if attempt:
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(0.05 * torch.randn_like(p))
        theirs, ours = both()
        assert torch.equal(theirs.ids, ours.ids) and torch.equal(theirs.mask, ours.mask)
        assert torch.allclose(theirs.logprobs, ours.logprobs, atol=1e-5)
    assert len(stand_in.built) == 1 and stand_in.resets == 1 and len(stand_in.pushes) == 1
    assert not stand_in.pushes[0].missing_keys or stand_in.pushes[0].missing_keys == ["lm_head.weight"]
    built = stand_in.built[0]
    assert built["logprobs_mode"] == "processed_logprobs" and built["skip_tokenizer_init"]
    assert built["generation_config"] == "vllm"
