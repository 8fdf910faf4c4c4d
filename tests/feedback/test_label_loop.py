"""The whole human-feedback loop without a person: sample -> campaign -> a real server -> the
simulated labelers answer over HTTP -> export -> `rlhfkit rm` trains on it."""
import json
import os
import re
import subprocess
import sys

import httpx
import pytest

from rlhfkit.tasks.tldr.judge import gold_score
from rlhfkit.tasks.tldr.world import facts_by_prompt

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
TINY_TASK = ["--task.n_train", "64", "--task.n_valid", "16", "--task.n_test", "16"]


def rlhfkit(*args):
    proc = subprocess.run([sys.executable, "-m", "rlhfkit.cli", *map(str, args)], capture_output=True, text=True,
                          env=ENV, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_sample_label_export_train(tiny_model_dir, tmp_path, server_for):
    db = f"sqlite:///{tmp_path / 'labels.db'}"
    rlhfkit("label", "sample", "--policy", tiny_model_dir, "--n_prompts", "6", "--k", "3",
            "--sample.max_new_tokens", "12", "--out", tmp_path / "rollouts.jsonl", *TINY_TASK)
    created = json.loads(rlhfkit("label", "campaign", "create", "--from", tmp_path / "rollouts.jsonl", "--overlap",
                                 "2", "--invite", "sim1,sim2", "--db", db))
    assert created["items"] == 6 and set(created["invites"]) == {"sim1", "sim2"}
    server = server_for(db, "--gold", *TINY_TASK)
    tokens = ",".join(created["invites"].values())
    done = json.loads(rlhfkit("label", "simulate", "--url", server.url, "--tokens", tokens, *TINY_TASK))
    assert sorted(done["answered"].values()) == [6, 6]
    stats = httpx.get(f"{server.url}/admin/campaigns/1/stats", headers={"Authorization": "Bearer adm"}).json()
    assert stats["answers"] == 12 and stats["agreement"] is not None
    gold = stats["agreement_with"]["gold judge"]
    server.stop()
    out = json.loads(rlhfkit("label", "export", "--campaign", "1", "--db", db, "--out", tmp_path / "cmp.jsonl"))
    assert out["records"] == 12
    # the page's agreement with the gold judge is the share of exported ordered pairs the judge orders
    # alike (pairs it scores equal left out); an untrained model's answers differ too little for the
    # noisy labelers' share to be reliably above one half, so the figure is recomputed, not bounded
    facts = facts_by_prompt(0, 64, 16, 16)
    same = [float(gold_score(hi, facts[r["prompt"]]) > gold_score(lo, facts[r["prompt"]]))
            for r in map(json.loads, (tmp_path / "cmp.jsonl").read_text().splitlines())
            for i, hi in enumerate(r["completions"]) for lo in r["completions"][i + 1:]
            if gold_score(hi, facts[r["prompt"]]) != gold_score(lo, facts[r["prompt"]])]
    assert gold["pairs"] == len(same) > 0 and gold["agreement"] == pytest.approx(sum(same) / len(same)), gold
    rlhfkit("rm", "--model", tiny_model_dir, "--data", tmp_path / "cmp.jsonl", "--out", tmp_path / "rm",
            "--train.batch_size", "4")
    assert (tmp_path / "rm" / "model" / "model.safetensors").is_file()
    assert re.fullmatch(r"[A-Za-z0-9_-]+", created["invites"]["sim1"].rsplit("/", 1)[1])
