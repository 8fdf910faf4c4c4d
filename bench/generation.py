"""Generation benchmark: tokens per second of each engine, by batch size and model size.

Every row of a batch generates exactly --new_tokens tokens (EOS is set to an id no model here can
emit, so no row stops early and both engines do the same work), from prompts of --prompt_len
tokens, by plain temperature sampling at T = 1. Models: the shipped 2M-parameter base LM, and a
randomly initialised 14M-parameter Llama of the same family (hidden 384, 8 layers, MLP 1024).
Each figure is the median of --repeats timed calls after one untimed warm-up call. A second
workload is the demo's own sampling: the built-in world's test prompts on the shipped model at
T = 0.7, rows stopping at EOS, one sample per prompt and four (as the labels stage draws them). Threads are
set before torch is imported (--threads, default 2).

    python bench/generation.py                  # a markdown table and the ratios to HF generate
    python bench/generation.py --json           # the same as JSON

Reading: `ratio` is the engine's tokens/s over HF generate's on the same model and batch; above
1 the engine is that many times faster.
"""
from __future__ import annotations

import argparse
import os
import sys


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", default="1,16,64", help="batch sizes, comma-separated")
    ap.add_argument("--new_tokens", type=int, default=64)
    ap.add_argument("--prompt_len", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--engines", default="hf,rlhfkit,rlhfkit-bf16", help="engines, hf first (the ratios' base); "
                    "rlhfkit-bf16: the own engine in bfloat16")
    ap.add_argument("--json", action="store_true")
    return ap.parse_args()


ARGS = parse()
os.environ.update(OMP_NUM_THREADS=str(ARGS.threads), MKL_NUM_THREADS=str(ARGS.threads), HF_HUB_OFFLINE="1",
                  TOKENIZERS_PARALLELISM="false")

import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

from rlhfkit.engines import Sampling, get_engine  # noqa: E402
from rlhfkit.engines.static_kv import Engine as OwnEngine  # noqa: E402
from rlhfkit.models.lm import count_parameters, load_causal_lm  # noqa: E402
from rlhfkit.rollout.generate import encode_prompts  # noqa: E402
from rlhfkit.tasks.tldr.world import make_split  # noqa: E402


def models() -> dict[str, torch.nn.Module]:
    small, _ = load_causal_lm("models/tldr-base")
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=1024, hidden_size=384, intermediate_size=1024, num_hidden_layers=8,
                         num_attention_heads=6, num_key_value_heads=6, max_position_embeddings=512,
                         tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    return {"2M (shipped)": small, "14M (random)": LlamaForCausalLM(config).eval()}


def engine(name: str):
    """A fresh engine; rlhfkit-bf16 is the own engine with bfloat16 weights (not a config option)."""
    return OwnEngine(dtype="bfloat16") if name == "rlhfkit-bf16" else get_engine(name)


def tokens_per_second(name: str, model, batch: int) -> float:
    runner = engine(name)
    vocab = model.config.vocab_size
    ids = torch.randint(3, vocab, (batch, ARGS.prompt_len))
    mask = torch.ones_like(ids)
    sampling = Sampling(temperature=1.0, max_new_tokens=ARGS.new_tokens, eos_id=vocab + 7, pad_id=0)
    seconds = []
    for i in range(ARGS.repeats + 1):
        torch.manual_seed(i)
        start = time.perf_counter()
        runner.load_weights(model)
        out = runner.generate(ids, mask, sampling)
        seconds.append(time.perf_counter() - start)
        assert int(out.mask.sum()) == batch * ARGS.new_tokens, "a row stopped early: the work differs"
    return batch * ARGS.new_tokens / statistics.median(seconds[1:])


def workload_tokens_per_second(name: str, model, tok, k: int) -> float:
    """The demo's sampling: 256 rows of the built-in world's test prompts (k consecutive samples of
    each, as the labels stage takes 4 and best-of-n 8), batches of 64, T = 0.7, at most 64 new
    tokens, rows stopping at EOS; generated tokens (EOS included) per second, one timed pass."""
    posts = make_split(0, "test", 256 // k)
    prompts = [p.prompt for p in posts for _ in range(k)]
    runner = engine(name)
    runner.load_weights(model)
    sampling = Sampling(temperature=0.7, max_new_tokens=64, eos_id=tok.eos_token_id, pad_id=tok.pad_token_id)
    tokens, start = 0, time.perf_counter()
    for i in range(0, len(prompts), 64):
        ids, mask = encode_prompts(prompts[i:i + 64], tok, 256)
        torch.manual_seed(i)
        tokens += int(runner.generate(ids, mask, sampling).mask.sum())
    return tokens / (time.perf_counter() - start)


def main() -> None:
    torch.set_num_threads(ARGS.threads)
    names = ARGS.engines.split(",")
    rows = []
    shipped, tok = load_causal_lm("models/tldr-base")
    for k in (1, 4):
        workload_tokens_per_second(names[0], shipped, tok, k)          # warm-up
        speed = {name: workload_tokens_per_second(name, shipped, tok, k) for name in names}
        for name in names:
            rows.append({"model": "2M (shipped)", "workload": f"demo sampling, k = {k}", "engine": name,
                         "tokens_per_s": round(speed[name], 1), "ratio": round(speed[name] / speed["hf"], 2)})
    for label, model in models().items():
        params = count_parameters(model)
        for batch in (int(b) for b in ARGS.batches.split(",")):
            speed = {name: tokens_per_second(name, model, batch) for name in names}
            for name in names:
                rows.append({"model": label, "params": params, "workload": f"batch {batch}, fixed length",
                             "batch": batch, "engine": name,
                             "tokens_per_s": round(speed[name], 1), "ratio": round(speed[name] / speed["hf"], 2)})
                if not ARGS.json:
                    print(f"{label} batch {batch} {name}: {speed[name]:.0f} tok/s", file=sys.stderr)
    if ARGS.json:
        print(json.dumps({"settings": vars(ARGS), "rows": rows}, indent=1))
        return
    print("| model | workload | engine | tokens/s | ratio to hf |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['workload']} | {r['engine']} | {r['tokens_per_s']:.0f} | {r['ratio']:.2f} |")


if __name__ == "__main__":
    main()
