"""The architecture matrix: every stage, run a few steps through its `run(cfg)`, on tiny models of
nine architectures built from configs (no hub): GPT-2 (with GPT-2's tokenizer conventions: one
`<|endoftext|>` for BOS and EOS, no pad), Llama, Qwen2 (grouped-query attention), OPT (learned
positions with an offset), GPT-NeoX (partial rotary), Phi (a biased output layer), Gemma, BLOOM
(ALiBi: no position ids) and Falcon.

Stages chain as a user chains them: base -> sft; base -> rm; sft + rm -> everything else. The
reward model starts from the base directory so that GPT-2's pad is added there too.

    pytest tests/models/test_architectures.py
"""
from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer
from transformers import (AutoModelForCausalLM, AutoModelForSequenceClassification, BloomConfig, FalconConfig,
                          GemmaConfig, GPT2Config,
                          GPTNeoXConfig, LlamaConfig, OPTConfig, PhiConfig, PreTrainedTokenizerFast, Qwen2Config)

from rlhfkit.config import (BestOfNConfig, DPOConfig, RLAlgoConfig, RLConfig, RMConfig, RSFTConfig, RWSFTConfig,
                            SampleConfig, SFTConfig, SLiCConfig, TrainConfig)
from rlhfkit.data.records import Comparison
from rlhfkit.models.heads import group_rewards, load_scalar_model, scalar_model_from_lm, sequence_rewards
from rlhfkit.models.lm import load_causal_lm, right_pad, save_model
from rlhfkit.rollout.generate import encode_prompts, token_logprobs
from rlhfkit.train import best_of_n, preference, rejection, reward_model, rl, sft
from rlhfkit.train.reward_model import encode_comparison

END = "<|endoftext|>"
SHAPE = dict(num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=512)
# dropout off everywhere, as in rlhfkit's own models: the invariants below (DPO at log 2, a first
# RL step with KL 0) hold only when a forward pass is deterministic
ARCHS = {
    "gpt2": lambda ids: GPT2Config(n_embd=32, n_layer=2, n_head=2, n_positions=512, resid_pdrop=0.0, embd_pdrop=0.0,
                                   attn_pdrop=0.0, **ids),
    "llama": lambda ids: LlamaConfig(hidden_size=32, intermediate_size=64, num_key_value_heads=2,
                                     tie_word_embeddings=True, **SHAPE, **ids),
    "qwen2": lambda ids: Qwen2Config(hidden_size=32, intermediate_size=64, num_key_value_heads=1, **SHAPE, **ids),
    "opt": lambda ids: OPTConfig(hidden_size=32, ffn_dim=64, word_embed_proj_dim=32, dropout=0.0, **SHAPE, **ids),
    "gpt_neox": lambda ids: GPTNeoXConfig(hidden_size=32, intermediate_size=64, **SHAPE, **ids),
    "phi": lambda ids: PhiConfig(hidden_size=32, intermediate_size=64, **SHAPE, **ids),
    "gemma": lambda ids: GemmaConfig(hidden_size=32, intermediate_size=64, num_key_value_heads=1, head_dim=16,
                                     **SHAPE, **ids),
    "bloom": lambda ids: BloomConfig(hidden_size=32, n_layer=2, n_head=2, **ids),
    "falcon": lambda ids: FalconConfig(hidden_size=32, **SHAPE, **ids),
}
POSTS = ["my friend fixed the sink", "we ordered pizza", "the bus was late again", "i lost my keys at work",
         "my sister moved to a new city", "our dog learned a trick"]
FAST = TrainConfig(lr=1e-3, batch_size=4, epochs=2.0, warmup_steps=1)   # 6 items: 2 steps per epoch
SAMPLE = SampleConfig(temperature=1.0, max_new_tokens=6, batch_size=8)


def gpt2_tokenizer(tokenizer) -> PreTrainedTokenizerFast:
    """The fixture's tokenizer as GPT-2's is: `<|endoftext|>` is both BOS and EOS and there is no pad
    (the fixture's `<pad>` renamed, so giving it one must grow the vocabulary)."""
    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str().replace('"<pad>"', f'"{END}"'))
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=END, eos_token=END, unk_token="<unk>")


def weights(path) -> dict[str, torch.Tensor]:
    return load_file(path / "model.safetensors")


def assert_trained(before, after) -> None:
    """Every weight finite, and the training moved some of them."""
    old, new = weights(before), weights(after)
    assert all(torch.isfinite(t).all() for t in new.values())
    assert any(not torch.equal(old[k], new[k]) for k in new if k in old and old[k].shape == new[k].shape)


def assert_equal_with_gradients(model, expected: torch.Tensor, actual: torch.Tensor, atol: float = 1e-5) -> None:
    """`actual` equals `expected`, and so do the gradients of their sums with respect to the model's weights."""
    params = list(model.parameters())
    expected_grads = torch.autograd.grad(expected.sum(), params, allow_unused=True)
    actual_grads = torch.autograd.grad(actual.sum(), params, allow_unused=True)
    torch.testing.assert_close(actual, expected, atol=atol, rtol=0)
    for a, b in zip(expected_grads, actual_grads):
        if a is not None:
            torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-4)


def log_lines(out) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


# ---- Data and models, shared by the stages of one architecture ------------------------------------
@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    prompts = [f"post: {p}. tl;dr:" for p in POSTS]
    (d / "sft.jsonl").write_text("".join(json.dumps({"prompt": q, "completion": f" {p}."}) + "\n"
                                         for q, p in zip(prompts, POSTS)))
    (d / "comparisons.jsonl").write_text("".join(json.dumps({"prompt": q, "chosen": f" {p}.", "rejected": " i am sad."})
                                                 + "\n" for q, p in zip(prompts, POSTS)))
    (d / "prompts.jsonl").write_text("".join(json.dumps({"prompt": q}) + "\n" for q in prompts[:4]))
    return d


@pytest.fixture(scope="module", params=list(ARCHS))
def arch(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def base(arch, tmp_path_factory, tiny_tokenizer):
    """A tiny untrained model of `arch` and its tokenizer, saved as a Hugging Face directory."""
    tok = gpt2_tokenizer(tiny_tokenizer) if arch == "gpt2" else tiny_tokenizer
    ids = dict(vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
               pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(ARCHS[arch](ids))
    path = tmp_path_factory.mktemp(arch) / "base"
    save_model(path, model, tok)
    return path


@pytest.fixture(scope="module")
def sft_dir(base, data):
    sft.run(SFTConfig(model=str(base), data=str(data / "sft.jsonl"), out=str(base.parent / "sft"), train=FAST))
    return base.parent / "sft"


@pytest.fixture(scope="module")
def rm_dir(base, data):
    reward_model.run(RMConfig(model=str(base), data=str(data / "comparisons.jsonl"), out=str(base.parent / "rm"),
                              train=FAST))
    return base.parent / "rm"


# ---- Generation and reading rewards: padding must not change a row's numbers --------------------
def test_left_padding_gives_the_logprobs_and_rewards_of_no_padding(arch, base):
    model, tok = load_causal_lm(base)
    rm, _ = scalar_model_from_lm(base)
    short, long = "post: we ordered pizza.", "post: my friend fixed the sink at work."
    ids, mask = encode_prompts([short, long], tok, 64)                   # the short one left-padded
    alone, alone_mask = encode_prompts([short], tok, 64)
    n = alone.size(1) - 1
    assert mask[0, 0] == 0
    with torch.no_grad():
        padded = token_logprobs(model, ids, mask, n, 1.0)[0]
        single = token_logprobs(model, alone, alone_mask, n, 1.0)[0]
        torch.testing.assert_close(padded, single, atol=1e-5, rtol=0)
        torch.testing.assert_close(sequence_rewards(rm, ids, mask)[0], sequence_rewards(rm, alone, alone_mask)[0],
                                   atol=1e-5, rtol=0)


def test_rewards_with_shared_prompts_run_once_equal_the_full_pass_and_its_gradients(arch, base):
    rm, tok = scalar_model_from_lm(base)
    rm.train()
    def enc(text):
        return [tok.bos_token_id, *tok(text, add_special_tokens=False)["input_ids"]]
    # two prompts of different lengths, 3 and 2 answers of different lengths (padding on both sides)
    groups = [[enc("post: we ordered pizza. tl;dr:" + a) for a in (" pizza.", " we ate a lot of pizza.", " sad.")],
              [enc("post: the bus was late again today. tl;dr:" + a) for a in (" late bus.", " i walked.")]]
    seqs = [s for g in groups for s in g]
    ids, mask = right_pad(seqs, tok.pad_token_id)
    assert_equal_with_gradients(rm, sequence_rewards(rm, ids, mask), group_rewards(rm, seqs, [3, 2], tok.pad_token_id))


def test_answer_logprobs_with_shared_prompts_run_once_equal_the_full_pass_and_its_gradients(arch, base):
    model, tok = load_causal_lm(base)
    model.train()
    # the first two answers share their first word: it is scored, so it must not go into the shared prefix
    groups = [Comparison("post: we ordered pizza. tl;dr:", (" we ate pizza.", " we ordered a lot of pizza.", " sad.")),
              Comparison("post: the bus was late again today. tl;dr:", (" late bus.", " i walked."))]
    examples = [ex for c in groups for ex in encode_comparison(c, tok, 512)]
    full, n_full = preference.sequence_logprobs(model, examples, tok.pad_token_id)
    shared, n_shared = preference.group_logprobs(model, examples, [3, 2], tok.pad_token_id)
    assert n_shared.tolist() == n_full.tolist()
    assert_equal_with_gradients(model, full, shared, atol=1e-4)


def test_samples_of_one_prompt_get_the_logprobs_and_gradients_of_each_alone(arch, base):
    # rows 0-1 sample one prompt, row 2 another (left-padded): the first two share a pass over their prompt
    model, tok = load_causal_lm(base)
    short, long = "post: we ordered pizza.", "post: my friend fixed the sink at work."
    prompt_ids, prompt_mask = encode_prompts([long, long, short], tok, 64)
    answers = [tok(a, add_special_tokens=False)["input_ids"] for a in (" the sink.", " a friend helped.", " pizza.")]
    R = max(map(len, answers))
    response = torch.tensor([a + [tok.pad_token_id] * (R - len(a)) for a in answers])
    response_mask = (response != tok.pad_token_id).long()
    ids, mask = torch.cat([prompt_ids, response], 1), torch.cat([prompt_mask, response_mask], 1)
    alone = torch.cat([token_logprobs(model, ids[i:i + 1], mask[i:i + 1], R, 0.7) for i in range(3)]) * response_mask
    assert_equal_with_gradients(model, alone, token_logprobs(model, ids, mask, R, 0.7) * response_mask)


def test_sampled_distribution_is_the_one_log_probs_are_computed_from(arch, base):
    # transformers' generate numbers positions its own way; greedy scores of a left-padded batch
    # must equal the log-probs rlhfkit recomputes for the same tokens
    model, tok = load_causal_lm(base)
    ids, mask = encode_prompts(["post: we ordered pizza.", "post: my friend fixed the sink at work."], tok, 64)
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=5,
                             output_scores=True, return_dict_in_generate=True, pad_token_id=tok.pad_token_id,
                             eos_token_id=None)
        response = out.sequences[:, ids.size(1):]
        sampled = torch.stack(out.scores, 1).float().log_softmax(-1).gather(-1, response.unsqueeze(-1)).squeeze(-1)
        full_mask = torch.cat([mask, torch.ones_like(response)], 1)
        torch.testing.assert_close(token_logprobs(model, out.sequences, full_mask, 5, 1.0), sampled,
                                   atol=1e-5, rtol=0)


# ---- Every stage ------------------------------------------------------------------------------------
def test_sft(arch, base, sft_dir):
    AutoModelForCausalLM.from_pretrained(sft_dir / "model")
    assert_trained(base, sft_dir / "model")
    assert [r["step"] for r in log_lines(sft_dir)] == [1, 2, 3, 4]
    model, tok = load_causal_lm(sft_dir)
    assert tok.pad_token_id != tok.eos_token_id and model.config.pad_token_id == tok.pad_token_id
    if arch == "gpt2":   # the pad was added at load, and saved: one more token than the base
        assert tok.pad_token == "<pad>" and len(tok) == load_causal_lm(base)[0].config.vocab_size
        assert len(tok) == len(PreTrainedTokenizerFast.from_pretrained(base)) + 1


def test_sft_twice_with_one_seed_gives_bitwise_equal_weights(arch, base, sft_dir, data):
    torch.manual_seed(12345)             # a global RNG state unlike the first run's: loading must not read it
    again = base.parent / "sft-again"
    sft.run(SFTConfig(model=str(base), data=str(data / "sft.jsonl"), out=str(again), train=FAST))
    first, second = weights(sft_dir / "model"), weights(again / "model")
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def test_rm_reads_the_reward_at_eos_as_transformers_does(arch, base, rm_dir):
    model = AutoModelForSequenceClassification.from_pretrained(rm_dir / "model")
    assert model.config.num_labels == 1
    rm, tok = load_scalar_model(rm_dir)
    # GPT-2's pad was added here as load_causal_lm adds it: the reward model reads the policy's ids
    assert tok.get_vocab() == load_causal_lm(base)[1].get_vocab() and tok.pad_token_id != tok.eos_token_id
    a = [tok.bos_token_id, *tok(" we ordered pizza.", add_special_tokens=False)["input_ids"], tok.eos_token_id]
    b = [tok.bos_token_id, *tok(" i am sad.", add_special_tokens=False)["input_ids"], tok.eos_token_id]
    T = max(len(a), len(b))
    ids = torch.tensor([r + [tok.pad_token_id] * (T - len(r)) for r in (a, b)])      # right-padded, EOS last
    mask = (torch.arange(T) < torch.tensor([[len(a)], [len(b)]])).long()
    with torch.no_grad():
        ours = sequence_rewards(rm, ids, mask)
        theirs = rm(input_ids=ids, attention_mask=mask).logits.squeeze(-1)      # transformers' own pooling
    torch.testing.assert_close(ours + rm.config.reward_offset, theirs, atol=1e-5, rtol=0)
    assert all(math.isfinite(r["loss"]) for r in log_lines(rm_dir))


@pytest.mark.parametrize("loss", ["dpo", "ipo"])
def test_dpo_and_ipo_start_where_the_policy_is_its_reference(arch, sft_dir, data, loss):
    out = sft_dir.parent / loss
    preference.run_dpo(DPOConfig(model=str(sft_dir), data=str(data / "comparisons.jsonl"), out=str(out), loss=loss,
                                 beta=0.5, train=FAST))
    first = log_lines(out)[0]["loss"]
    assert first == pytest.approx(math.log(2) if loss == "dpo" else 1.0, abs=1e-4)   # IPO: (0 - 1/(2 beta))^2
    assert_trained(sft_dir / "model", out / "model")


def test_slic(arch, sft_dir, data):
    out = sft_dir.parent / "slic"
    preference.run_slic(SLiCConfig(model=str(sft_dir), data=str(data / "comparisons.jsonl"), out=str(out),
                                   delta=1000.0, reg_weight=0.5, train=FAST))
    for r in log_lines(out):   # hinge always active at this delta: loss = hinge + 0.5 NLL
        assert r["loss"] == pytest.approx(r["hinge"] + 0.5 * r["reg_nll"], rel=1e-5)
    assert_trained(sft_dir / "model", out / "model")


def test_rsft(arch, sft_dir, rm_dir, data):
    out = sft_dir.parent / "rsft"
    rejection.run_rsft(RSFTConfig(policy=str(sft_dir), reward_model=str(rm_dir), n=3, rounds=1,
                                  prompts=str(data / "prompts.jsonl"), prompts_per_round=4, out=str(out),
                                  sample=SAMPLE, train=FAST))
    kept = [json.loads(line) for line in (out / "round1" / "selected.jsonl").read_text().splitlines()]
    assert len(kept) == 4 and all(math.isfinite(k["score"]) for k in kept)
    assert_trained(sft_dir / "model", out / "model")


def test_rwsft(arch, sft_dir, rm_dir, data):
    out = sft_dir.parent / "rwsft"
    result = rejection.run_rwsft(RWSFTConfig(policy=str(sft_dir), reward_model=str(rm_dir), n=2,
                                             demonstrations=str(data / "sft.jsonl"),
                                             prompts=str(data / "prompts.jsonl"), n_prompts=2, out=str(out),
                                             sample=SAMPLE, train=FAST))
    assert result["samples"] == 4 and result["demonstrations"] == 6 and 1.0 <= result["max_weight"] <= 2.0
    assert_trained(sft_dir / "model", out / "model")


def test_bon_answers_with_the_best_scored_candidate(arch, sft_dir, rm_dir, data):
    out = sft_dir.parent / "bon"
    best_of_n.run(BestOfNConfig(policy=str(sft_dir), reward_model=str(rm_dir), n=3, eos_trick=False,
                                prompts=str(data / "prompts.jsonl"), out=str(out), sample=SAMPLE))
    records = [json.loads(line) for line in (out / "completions.jsonl").read_text().splitlines()]
    assert len(records) == 4
    for r in records:
        assert all(math.isfinite(s) for s in r["scores"])
        assert r["completion"] == r["candidates"][r["scores"].index(max(r["scores"]))]
        assert r["kl_to_sft"] == pytest.approx(math.log(3) - 2 / 3)


@pytest.mark.parametrize("algo", ["ppo", "rloo", "grpo"])
def test_rl(arch, sft_dir, rm_dir, data, algo):
    out = sft_dir.parent / algo
    rl.run(RLConfig(algo=algo, policy=str(sft_dir), reward_model=str(rm_dir), prompts=str(data / "prompts.jsonl"),
                    out=str(out), sample=SAMPLE,
                    rl=RLAlgoConfig(steps=2, prompts_per_step=4 if algo == "ppo" else 2, k=2, epochs=1,
                                    minibatch_size=4, lr=1e-3)))
    log = log_lines(out)
    assert [r["step"] for r in log] == [1, 2]
    assert log[0]["kl"] == pytest.approx(0.0, abs=1e-5)     # the first rollouts come from the reference itself
    assert all(math.isfinite(v) for r in log for v in r.values())
    AutoModelForCausalLM.from_pretrained(out / "model")
    assert_trained(sft_dir / "model", out / "model")
    if algo == "ppo":   # the value model started from the reward model and trained with the policy
        AutoModelForSequenceClassification.from_pretrained(out / "value")
        assert_trained(rm_dir / "model", out / "value")


# ---- Kill and resume: a checkpoint reads back into its own architecture ----------------------------
def _same_weights(a, b) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-5, atol=1e-6, msg=k)


def test_sft_killed_and_resumed_equals_an_uninterrupted_run(arch, base, data, tmp_path, kill_at_step):
    # checkpoints are written by save_pretrained, whose names differ from the module's for some
    # architectures (GPT-NeoX saves its head as `embed_out`): resume must read them back exactly
    cfg = lambda out: SFTConfig(model=str(base), data=str(data / "sft.jsonl"), out=str(out),  # noqa: E731
                                train=TrainConfig(**(vars(FAST) | {"checkpoint_every": 1})))
    sft.run(cfg(tmp_path / "full"))
    kill_at_step(lambda: sft.run(cfg(tmp_path / "cut")), 3)
    sft.run(cfg(tmp_path / "cut"))
    _same_weights(tmp_path / "full" / "model", tmp_path / "cut" / "model")


def test_ppo_resumes_policy_and_value_model(arch, sft_dir, rm_dir, data, tmp_path):
    # GPT-NeoX saves under names unlike its modules' and GPT-2 grows a pad: the two that could break
    # reading an RL checkpoint back (Llama's RL resume is in tests/train/test_rl.py)
    if arch not in ("gpt_neox", "gpt2"):
        pytest.skip("RL checkpoints are read back like the SFT ones tested above for this architecture")
    def cfg(out, steps):
        return RLConfig(algo="ppo", policy=str(sft_dir), reward_model=str(rm_dir), prompts=str(data / "prompts.jsonl"),
                        out=str(out), sample=SAMPLE, rl=RLAlgoConfig(steps=steps, prompts_per_step=4, epochs=1,
                                                                     minibatch_size=4, lr=1e-3, checkpoint_every=1))
    rl.run(cfg(tmp_path / "full", 2))
    with pytest.raises(KeyboardInterrupt):
        rl.run(cfg(tmp_path / "cut", 2), on_step=lambda *a: (_ for _ in ()).throw(KeyboardInterrupt)
               if a[0] == 2 else {})
    rl.run(cfg(tmp_path / "cut", 2))
    _same_weights(tmp_path / "full" / "model", tmp_path / "cut" / "model")
    _same_weights(tmp_path / "full" / "value", tmp_path / "cut" / "value")
