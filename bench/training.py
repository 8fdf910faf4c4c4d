"""Training throughput as a share of this CPU's measured matmul peak.

The peak is measured here, in the same process: the best of --repeats timed square matmuls
(--peak_size, default 2048) in bfloat16 and in float32. Training is rlhfkit's language-modelling
step (`train.loop.lm_step`: forward, loss on every token, backward) plus an AdamW step with
gradient clipping, with the attention `fit` uses (`models/attention.py`: in bf16, the matmul form
for sequences of up to 192 tokens), on a randomly initialised Llama (default: the 14M-parameter shape of
bench/generation.py) with batches of --batch sequences of --seq_len tokens, in bfloat16 autocast
and in float32. Model FLOPs per step are counted as 6 x (non-embedding parameters + the output
layer) x tokens + 12 x layers x hidden x seq_len x tokens (attention scores and values), the usual
accounting (Kaplan et al. 2020; Chowdhery et al. 2022's MFU); the share is achieved FLOP/s over
the same dtype's measured peak.

    python bench/training.py            # markdown table
    python bench/training.py --json
    python bench/training.py --hidden 192 --layers 4 --intermediate 512 --batch 32 --seq_len 128 --attention sdpa
"""
from __future__ import annotations

import argparse
import os


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq_len", type=int, default=256)
    ap.add_argument("--hidden", type=int, default=384)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--intermediate", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=6, help="timed steps (after 2 untimed)")
    ap.add_argument("--peak_size", type=int, default=2048)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--attention", choices=("rlhfkit", "sdpa"), default="rlhfkit",
                    help="rlhfkit: the attention `fit` uses (models/attention.py); sdpa: transformers' default")
    ap.add_argument("--json", action="store_true")
    return ap.parse_args()


ARGS = parse()
os.environ.update(OMP_NUM_THREADS=str(ARGS.threads), MKL_NUM_THREADS=str(ARGS.threads))

import json  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

from rlhfkit.data.collate import Example  # noqa: E402
from rlhfkit.models.attention import use_for_training  # noqa: E402
from rlhfkit.train.loop import lm_step  # noqa: E402


def matmul_peak(dtype: torch.dtype) -> float:
    """FLOP/s of the best of `repeats` n x n x n matmuls."""
    n = ARGS.peak_size
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    a @ b
    best = float("inf")
    for _ in range(ARGS.repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best


def model_flops_per_token(model: LlamaForCausalLM) -> float:
    config = model.config
    embed = model.get_input_embeddings().weight.numel()
    dense = sum(p.numel() for p in model.parameters()) - embed + model.lm_head.weight.numel()  # tied head counts once more
    return 6 * dense + 12 * config.num_hidden_layers * config.hidden_size * ARGS.seq_len


def training_flops(dtype: str) -> tuple[float, float]:
    """(model FLOP/s, tokens/s) of rlhfkit's LM step + AdamW on the benchmark model."""
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=1024, hidden_size=ARGS.hidden, intermediate_size=ARGS.intermediate,
                         num_hidden_layers=ARGS.layers, num_attention_heads=6, num_key_value_heads=6,
                         max_position_embeddings=max(512, ARGS.seq_len), tie_word_embeddings=True,
                         bos_token_id=1, eos_token_id=2, pad_token_id=0)
    model = LlamaForCausalLM(config).train()
    if ARGS.attention == "rlhfkit":
        use_for_training(model, dtype)    # the attention `fit` gives a bf16 run
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bfloat16")
    examples = [Example(input_ids=ids, labels=ids) for ids in torch.randint(3, 1024, (ARGS.batch, ARGS.seq_len)).tolist()]
    seconds = []
    for step in range(ARGS.steps + 2):
        start = time.perf_counter()
        loss, _ = lm_step(model, examples, 0, autocast)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        seconds.append(time.perf_counter() - start)
    per_step = sum(seconds[2:]) / ARGS.steps
    tokens = ARGS.batch * ARGS.seq_len
    return model_flops_per_token(model) * tokens / per_step, tokens / per_step


def main() -> None:
    torch.set_num_threads(ARGS.threads)
    rows = []
    for name, dtype in (("bfloat16", torch.bfloat16), ("float32", torch.float32)):
        peak = matmul_peak(dtype)
        achieved, tokens = training_flops(name)
        rows.append({"dtype": name, "peak_gflops": round(peak / 1e9, 1), "train_gflops": round(achieved / 1e9, 1),
                     "tokens_per_s": round(tokens), "share_of_peak": round(achieved / peak, 3)})
    if ARGS.json:
        print(json.dumps({"settings": vars(ARGS), "rows": rows}, indent=1))
        return
    print("| dtype | matmul peak GFLOP/s | training GFLOP/s | tokens/s | share of peak |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['dtype']} | {r['peak_gflops']} | {r['train_gflops']} | {r['tokens_per_s']} | {r['share_of_peak']:.2f} |")


if __name__ == "__main__":
    main()
