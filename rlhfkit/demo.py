"""`rlhfkit demo`: the built-in experiment, end to end, in one command.

    world -> data (JSONL) -> SFT from the shipped base model -> eval (base, SFT) -> report

Outputs in --out: data/, sft/, results.json, report.md. Everything runs offline on CPU.

    rlhfkit demo --out runs/demo
"""
from __future__ import annotations

import time
from pathlib import Path

from rlhfkit.config import DataTldrConfig, DemoConfig, EvalConfig, SFTConfig, to_dict
from rlhfkit.evaluate import run as evaluate
from rlhfkit.tasks.tldr import export
from rlhfkit.train import sft


def run(cfg: DemoConfig) -> dict:
    out = Path(cfg.out)
    t0 = time.time()
    # ---- 1. The world's data sets, as files a user can inspect
    export.run(DataTldrConfig(out=str(out / "data"), task=cfg.task))
    # ---- 2. SFT on the reference TL;DRs
    sft.run(SFTConfig(model=cfg.base_model, data=str(out / "data" / "sft_train.jsonl"),
                      valid_data=str(out / "data" / "sft_valid.jsonl"), out=str(out / "sft"), task=cfg.task,
                      train=cfg.sft))
    # ---- 3. Evaluation of every policy on the same held-out prompts
    policies = f"base={cfg.base_model},sft={out / 'sft'}"
    results = evaluate.run(EvalConfig(policies=policies, kl_ref=str(out / "sft"), out=str(out),
                                      n_prompts=cfg.n_prompts, task=cfg.task, sample=cfg.eval))
    results["demo"] = {"config": to_dict(cfg), "wall_time_s": round(time.time() - t0, 1)}
    return {"out": str(out), "wall_time_s": results["demo"]["wall_time_s"],
            "methods": {k: v["winrate_vs_reference"] for k, v in results["methods"].items()}}
