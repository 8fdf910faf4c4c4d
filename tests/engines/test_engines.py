"""The generation engines agree: rlhfkit's own decode loop against transformers' generate."""
import pytest
import torch

from rlhfkit.engines import ENGINES, Sampling, finish, get_engine, is_external
from rlhfkit.errors import ModelError
from rlhfkit.models.lm import load_causal_lm
from rlhfkit.rollout.generate import encode_prompts, token_logprobs
from rlhfkit.tasks.tldr.world import make_split

LOCAL = [name for name in ENGINES if not is_external(name)]     # log-probs held to the trainer's


def drawn(name: str, model, ids, mask, sampling: Sampling):
    engine = get_engine(name)
    engine.load_weights(model)
    return engine.generate(ids, mask, sampling)


def settings(tok, *, temperature: float = 1.0, max_new_tokens: int = 24, greedy: bool = False) -> Sampling:
    return Sampling(temperature=temperature, max_new_tokens=max_new_tokens, eos_id=tok.eos_token_id,
                    pad_id=tok.pad_token_id, greedy=greedy)


@pytest.fixture(scope="module")
def base():
    return load_causal_lm("models/tldr-base")


def test_rows_are_cut_after_their_first_eos():
    out = finish(torch.tensor([[5, 2, 7, 2], [5, 6, 7, 8]]), torch.full((2, 4), -1.0),
                 Sampling(temperature=1.0, max_new_tokens=4, eos_id=2, pad_id=0))
    assert out.ids.tolist() == [[5, 2, 0, 0], [5, 6, 7, 8]]
    assert out.mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]
    assert out.logprobs.tolist() == [[-1, -1, 0, 0], [-1, -1, -1, -1]]
    assert out.finished.tolist() == [True, False]


def test_greedy_decoding_is_the_same_token_for_token(base):
    model, tok = base
    prompts = [p.prompt for p in make_split(0, "test", 6)]
    prompts[1] = prompts[1][:40]                                # uneven lengths: real left padding
    ids, mask = encode_prompts(prompts, tok, 400)
    hf = drawn("hf", model, ids, mask, settings(tok, greedy=True, max_new_tokens=48))
    own = drawn("rlhfkit", model, ids, mask, settings(tok, greedy=True, max_new_tokens=48))
    assert int(hf.finished.sum()) >= 3 and not hf.finished.all()   # rows leave the batch, some run to the limit
    assert torch.equal(hf.ids, own.ids) and torch.equal(hf.mask, own.mask)
    assert torch.equal(hf.finished, own.finished)
    assert torch.allclose(hf.logprobs, own.logprobs, atol=1e-4)


def test_rows_that_finish_early_leave_the_batch_without_changing_the_others(base):
    model, tok = base
    prompts = [p.prompt for p in make_split(1, "test", 8)]
    ids, mask = encode_prompts(prompts, tok, 400)
    together = drawn("rlhfkit", model, ids, mask, settings(tok, greedy=True, max_new_tokens=64))
    assert together.mask.sum(dim=1).unique().numel() >= 4     # rows leave at several steps: the batch is compacted
    for i, prompt in enumerate(prompts):
        one_ids, one_mask = encode_prompts([prompt], tok, 400)
        alone = drawn("rlhfkit", model, one_ids, one_mask, settings(tok, greedy=True, max_new_tokens=64))
        n = int(alone.mask.sum())
        assert together.ids[i, :n].tolist() == alone.ids[0, :n].tolist()
        assert torch.allclose(together.logprobs[i, :n], alone.logprobs[0, :n], atol=1e-5)
        assert together.finished[i] == alone.finished[0]


@pytest.mark.parametrize("name", LOCAL)
def test_the_samplers_logprobs_are_those_of_the_sampled_distribution(base, name):
    model, tok = base
    prompts = [p.prompt for p in make_split(2, "test", 4)]
    ids, mask = encode_prompts(prompts, tok, 400)
    torch.manual_seed(0)
    out = drawn(name, model, ids, mask, settings(tok, temperature=0.7))
    full = token_logprobs(model, torch.cat([ids, out.ids], 1), torch.cat([mask, out.mask], 1), out.ids.size(1), 0.7)
    assert torch.allclose(out.logprobs, full * out.mask, atol=1e-4)


def test_a_prompt_repeated_in_consecutive_rows_is_run_once_and_sampled_as_if_alone(base):
    """k samples of a prompt share its prefill: greedy rows equal generate's, sampled rows' log-probs
    equal a full forward's, and different draws of one prompt differ."""
    model, tok = base
    prompts = [p.prompt for p in make_split(3, "test", 3) for _ in range(4)]
    ids, mask = encode_prompts(prompts, tok, 400)
    hf = drawn("hf", model, ids, mask, settings(tok, greedy=True, max_new_tokens=32))
    own = drawn("rlhfkit", model, ids, mask, settings(tok, greedy=True, max_new_tokens=32))
    assert torch.equal(hf.ids, own.ids) and torch.equal(hf.mask, own.mask)
    torch.manual_seed(0)
    out = drawn("rlhfkit", model, ids, mask, settings(tok, temperature=0.7, max_new_tokens=32))
    full = token_logprobs(model, torch.cat([ids, out.ids], 1), torch.cat([mask, out.mask], 1), out.ids.size(1), 0.7)
    assert torch.allclose(out.logprobs, full * out.mask, atol=1e-4)
    assert len({tuple(r) for r in out.ids[:4].tolist()}) > 1


def chi_square_p(observed: torch.Tensor, expected: torch.Tensor) -> float:
    """p-value of Pearson's chi-square, categories with expected counts under 5 pooled into one."""
    small = expected < 5
    obs = torch.cat([observed[~small], observed[small].sum(0, keepdim=True)])
    exp = torch.cat([expected[~small], expected[small].sum(0, keepdim=True)])
    stat = ((obs - exp) ** 2 / exp.clamp(min=1e-12)).sum()
    return float(torch.special.gammaincc(torch.tensor((len(obs) - 1) / 2), stat / 2))


def first_tokens(name: str, model, tok, n: int, temperature: float) -> torch.Tensor:
    ids, mask = encode_prompts(["SUBREDDIT: r/relationships"] * n, tok, 400)
    torch.manual_seed(1)
    return drawn(name, model, ids, mask, settings(tok, temperature=temperature, max_new_tokens=1)).ids[:, 0]


@pytest.mark.parametrize("name", LOCAL)
def test_sampling_draws_from_the_models_distribution_at_the_temperature(base, name):
    """Chi-square of 3,000 first tokens against the model's own probabilities at T = 0.7;
    the same test rejects draws at T = 1.0, so it can fail."""
    model, tok = base
    ids, mask = encode_prompts(["SUBREDDIT: r/relationships"], tok, 400)
    with torch.no_grad():
        last = model(input_ids=ids, attention_mask=mask).logits[0, -1]
    n = 3000
    expected = torch.softmax(last / 0.7, dim=-1) * n
    counts = torch.bincount(first_tokens(name, model, tok, n, 0.7), minlength=expected.numel()).float()
    assert chi_square_p(counts, expected) > 1e-3
    hotter = torch.bincount(first_tokens(name, model, tok, n, 1.0), minlength=expected.numel()).float()
    assert chi_square_p(hotter, expected) < 1e-6


def test_an_architecture_it_does_not_run_is_one_clear_error():
    from transformers import GPT2Config, GPT2LMHeadModel
    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50))
    with pytest.raises(ModelError, match="--sample.engine hf"):
        get_engine("rlhfkit").load_weights(model)


def test_auto_runs_the_own_engine_where_it_can_and_generate_elsewhere(base):
    from transformers import GPT2Config, GPT2LMHeadModel
    from rlhfkit.engines import hf, static_kv
    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50))
    assert isinstance(get_engine("auto", base[0]), static_kv.Engine)
    assert isinstance(get_engine("auto", gpt2), hf.Engine)
    with pytest.raises(ValueError, match="auto engine is chosen for a model"):
        get_engine("auto")


def test_an_unknown_engine_is_named():
    with pytest.raises(ValueError, match="unknown generation engine 'vllmx'"):
        get_engine("vllmx")


@pytest.mark.parametrize("extra", [{}, {"head_dim": 16, "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0,
                                     "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                     "original_max_position_embeddings": 32}}])
def test_grouped_query_attention_biases_and_rope_scaling_match_generate(extra):
    """SmolLM2's shape of attention (fewer key/value heads than query heads), Qwen-style biases,
    and a Llama-3 model's head size and scaled rotary positions."""
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                         num_attention_heads=6, num_key_value_heads=2, attention_bias=True,
                         max_position_embeddings=128, bos_token_id=1, eos_token_id=2, pad_token_id=0, **extra)
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)          # far from uniform logits: greedy choices are not near-ties
    ids = torch.randint(3, 64, (3, 10))
    mask = torch.ones_like(ids)
    mask[0, :4] = 0                    # one left-padded row
    sampling = Sampling(temperature=1.0, max_new_tokens=16, eos_id=2, pad_id=0, greedy=True)
    hf, own = drawn("hf", model, ids, mask, sampling), drawn("rlhfkit", model, ids, mask, sampling)
    assert torch.equal(hf.ids, own.ids)
    assert torch.allclose(hf.logprobs, own.logprobs, atol=1e-4)


def test_generation_settings_saved_with_a_model_do_not_change_what_is_sampled(base):
    """A hub model's generation_config.json may carry a repetition penalty: the engines sample the
    plain temperature distribution all the same, the one whose log-probs they keep."""
    model, tok = base
    ids, mask = encode_prompts([p.prompt for p in make_split(3, "test", 2)], tok, 400)
    saved = model.generation_config.repetition_penalty
    model.generation_config.repetition_penalty = 3.0
    try:
        hf = drawn("hf", model, ids, mask, settings(tok, greedy=True, max_new_tokens=32))
    finally:
        model.generation_config.repetition_penalty = saved
    own = drawn("rlhfkit", model, ids, mask, settings(tok, greedy=True, max_new_tokens=32))
    assert torch.equal(hf.ids, own.ids)
