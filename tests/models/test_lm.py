from types import SimpleNamespace

import pytest
import torch
from tokenizers import Tokenizer
from transformers import (AutoTokenizer, BloomConfig, GPT2Config, LlamaConfig, PhiConfig, PhiForCausalLM,
                          PreTrainedTokenizerFast)

from rlhfkit.models.lm import ModelError, context_length, load_causal_lm, repeated_rows, save_atomic, save_model


def test_a_tokenizer_that_does_not_match_is_refused(tiny_model_dir, tmp_path, tiny_tokenizer):
    import shutil
    from rlhfkit.models.tokenizer import train_tokenizer
    from rlhfkit.train.pretrain import corpus
    bad = tmp_path / "bad"
    shutil.copytree(tiny_model_dir, bad)
    train_tokenizer(corpus(0, "pretrain", 300), 900).save_pretrained(bad)
    with pytest.raises(ModelError, match="tokenizer has .* tokens but the model embeds only"):
        load_causal_lm(bad)


def test_not_a_model_directory(tmp_path):
    with pytest.raises(ModelError, match="not a Hugging Face model directory"):
        load_causal_lm(tmp_path)


def test_atomic_save_leaves_the_old_directory_when_the_write_fails(tmp_path):
    target = tmp_path / "ckpt"
    save_atomic(target, lambda d: (d / "a").write_text("old"))

    def broken(d):
        (d / "a").write_text("new")
        raise RuntimeError("killed mid-write")
    with pytest.raises(RuntimeError):
        save_atomic(target, broken)
    assert (target / "a").read_text() == "old"


def test_a_stage_directory_loads_its_model(tiny_model_dir):
    model, tok = load_causal_lm(tiny_model_dir.parent)   # the fixture saved into <dir>/model
    assert model.config.vocab_size >= len(tok)


# ---- A pad of its own, added the same way every time --------------------------------------------
def without_pad(tokenizer) -> PreTrainedTokenizerFast:
    """The fixture's tokenizer with no pad at all, as GPT-2's and many hub tokenizers are (its
    `<pad>` renamed, so adding `<pad>` grows the vocabulary)."""
    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str().replace('"<pad>"', '"<|unused|>"'))
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>")


@pytest.fixture(scope="module")
def padless_dir(tmp_path_factory, tiny_tokenizer):
    """A tiny Phi (its output layer untied and biased) whose tokenizer has no pad."""
    tok = without_pad(tiny_tokenizer)
    torch.manual_seed(0)
    model = PhiForCausalLM(PhiConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                     num_attention_heads=2, bos_token_id=tok.bos_token_id,
                                     eos_token_id=tok.eos_token_id))
    torch.nn.init.normal_(model.lm_head.bias)       # zeros at init: a mean of zeros would prove nothing
    path = tmp_path_factory.mktemp("padless") / "model"
    save_model(path, model, tok)
    return path


def test_a_missing_pad_is_added_as_the_mean_row_whatever_the_seed(padless_dir):
    torch.manual_seed(0)
    a, tok = load_causal_lm(padless_dir)
    torch.manual_seed(1)
    b, _ = load_causal_lm(padless_dir)
    n = len(tok) - 1
    assert tok.pad_token == "<pad>" and tok.pad_token_id == n and a.config.pad_token_id == n
    assert a.generation_config.pad_token_id == n
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), name
    emb, out = a.get_input_embeddings(), a.get_output_embeddings()
    assert emb.weight.shape[0] == out.weight.shape[0] == n + 1
    assert torch.equal(emb.weight[n], emb.weight[:n].mean(0)) and torch.equal(out.weight[n], out.weight[:n].mean(0))
    assert out.bias[n] == out.bias[:n].mean()


def test_adding_a_pad_leaves_the_callers_random_draws_alone(padless_dir):
    torch.manual_seed(0)
    load_causal_lm(padless_dir)
    after_load = torch.rand(4)
    torch.manual_seed(0)
    assert torch.equal(after_load, torch.rand(4))


def test_a_pad_that_is_eos_is_replaced_by_a_distinct_one(padless_dir, tmp_path):
    import shutil
    shutil.copytree(padless_dir, tmp_path / "m")
    tok = AutoTokenizer.from_pretrained(padless_dir)
    tok.pad_token = tok.eos_token                     # the usual workaround, which hides EOS from the loss
    tok.save_pretrained(tmp_path / "m")
    _, tok = load_causal_lm(tmp_path / "m")
    assert tok.pad_token == "<pad>" and tok.pad_token_id != tok.eos_token_id


def test_a_distinct_pad_is_kept(tiny_model_dir):
    model, tok = load_causal_lm(tiny_model_dir)
    assert tok.pad_token_id == 0 and model.get_input_embeddings().num_embeddings == len(tok)


@pytest.mark.parametrize(("config", "expected"), [
    (LlamaConfig(max_position_embeddings=320), 320),
    (GPT2Config(n_positions=77), 77),              # GPT-2's own name for it
    (BloomConfig(), 2048),                         # ALiBi: no limit of its own
])
def test_context_length_reads_each_architectures_name_for_it(config, expected):
    assert context_length(SimpleNamespace(config=config)) == expected


def test_disable_dropout_makes_training_mode_passes_equal():
    from transformers import GPT2Config, GPT2LMHeadModel

    from rlhfkit.models.lm import disable_dropout
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=50, n_embd=16, n_layer=2, n_head=2, n_positions=32)).train()
    ids = torch.randint(0, 50, (2, 12))
    assert not torch.equal(model(ids).logits, model(ids).logits)      # GPT-2's default dropout 0.1
    disable_dropout(model)
    assert torch.equal(model(ids).logits, model(ids).logits)


def test_a_packed_forward_gives_each_real_token_what_the_padded_batch_gives():
    """Rollouts are left-padded prompts and right-padded answers; run with the padding squeezed out,
    every real token's logits are the padded batch's (to float rounding), and the rows get shorter."""
    from rlhfkit.models.lm import packed_forward, position_inputs
    model, _ = load_causal_lm("models/tldr-base")
    torch.manual_seed(0)
    ids = torch.randint(3, 900, (3, 12))
    mask = torch.ones_like(ids)
    mask[0, :4] = 0                  # left padding
    mask[1, 9:] = 0                  # right padding
    mask[2, :2] = 0
    mask[2, 10:] = 0                 # both
    widths = []

    def forward(i, m):
        widths.append(i.size(1))
        return model(input_ids=i, attention_mask=m, **position_inputs(model, m)).logits
    with torch.no_grad():
        padded = model(input_ids=ids, attention_mask=mask, **position_inputs(model, mask)).logits
        packed = packed_forward(forward, ids, mask)
    real = mask.bool()
    assert widths == [9] and packed.shape == padded.shape
    torch.testing.assert_close(packed[real], padded[real], atol=1e-4, rtol=1e-4)
    # padding columns hold the real token before them, never another row's
    torch.testing.assert_close(packed[1, 10], packed[1, 8])


def test_response_logits_read_from_packed_rows_equal_the_padded_batchs():
    """Only the LM head's last positions are computed, from packed rows: the logits of each response
    token are those of a full forward over the padded batch."""
    from rlhfkit.models.lm import position_inputs
    from rlhfkit.rollout.generate import response_logits
    model, _ = load_causal_lm("models/tldr-base")
    torch.manual_seed(1)
    ids = torch.randint(3, 900, (3, 14))
    mask = torch.ones_like(ids)
    mask[0, :5] = 0                  # prompts left-padded (the first 8 columns) ...
    mask[1, :2] = 0
    mask[1, 11:] = 0                 # ... answers right-padded (the last 6)
    mask[2, 12:] = 0
    with torch.no_grad():
        full = model(input_ids=ids, attention_mask=mask, **position_inputs(model, mask)).logits[:, -7:-1] / 0.7
        got = response_logits(model, ids, mask, 6, 0.7)
    answer = mask[:, -6:].bool()
    torch.testing.assert_close(got[answer], full[answer], atol=1e-4, rtol=1e-4)


def test_the_lm_loss_reads_only_the_scored_positions():
    from rlhfkit.algorithms.sft import sft_loss
    from rlhfkit.data.collate import Example, pad_batch, scored_positions
    from rlhfkit.train.loop import lm_step
    model, _ = load_causal_lm("models/tldr-base")
    examples = [Example([1, 5, 6, 7, 8, 9], [-100, -100, -100, 7, 8, 9]),
                Example([1, 5, 6, 7], [-100, -100, 6, 7])]
    batch = pad_batch(examples, 0)
    assert scored_positions(batch["labels"]) == 5          # from the position before the first label (column 2)
    with torch.no_grad():
        loss, _ = lm_step(model, examples, 0, torch.autocast("cpu", enabled=False))
        full = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        expected, _ = sft_loss(full, batch["labels"], batch["weights"])
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_repeated_rows_are_runs_of_equal_ids_and_mask():
    ids = torch.tensor([[0, 5], [0, 5], [6, 7], [0, 5], [0, 5], [0, 5], [9, 5]])
    mask = torch.tensor([[0, 1], [0, 1], [1, 1], [0, 1], [0, 1], [1, 1], [1, 1]])   # row 5: same ids, other padding
    assert repeated_rows(ids, mask) == [2, 1, 2, 1, 1]
    assert repeated_rows(ids[:1], mask[:1]) == [1]
