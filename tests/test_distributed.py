"""Under torchrun: two processes (gloo, on the CPU) train what one process trains with the same global
batch and seed, and k micro-batches train what one batch k times their size does. Final weights
agree within TOLERANCE (the sums run in another order; nothing else differs)."""
import subprocess
import sys

import pytest
from safetensors.torch import load_file

from test_cli import ENV, TINY_TASK, rlhfkit

TOLERANCE = 1e-5      # largest absolute weight difference allowed; weights are of order 1


def torchrun(*args, processes: int = 2) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                           str(processes), "-m", "rlhfkit", *map(str, args)], capture_output=True, text=True,
                          env=ENV, timeout=600)
    if proc.returncode != 0:
        raise AssertionError(f"torchrun rlhfkit {' '.join(map(str, args))} failed:\n{proc.stderr[-3000:]}")
    return proc


def weights(run_dir):
    return load_file(run_dir / "model" / "model.safetensors")


def largest_difference(a: dict, b: dict) -> float:
    """Over the tensors both hold (a reward model's backbone against the LM it started from)."""
    return max((a[k] - b[k]).abs().max().item() for k in a.keys() & b.keys())


@pytest.fixture(scope="module")
def tldr_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("data")
    rlhfkit("data", "tldr", "--out", out, *TINY_TASK)
    return out


def stage_args(stage: str, model, data) -> list:
    if stage == "sft":
        return ["sft", "--model", model, *TINY_TASK]
    return [stage, "--model", model, "--data", data / "rankings.jsonl"]


@pytest.mark.parametrize("stage", ["sft", "rm", "dpo"])
def test_two_processes_and_micro_batches_train_as_one_process(stage, tiny_model_dir, tldr_data, tmp_path):
    args = [*stage_args(stage, tiny_model_dir, tldr_data), "--train.batch_size", "8", "--train.lr", "3e-3"]
    rlhfkit(*args, "--out", tmp_path / "one")
    proc = torchrun(*args, "--out", tmp_path / "two")
    rlhfkit(*args, "--train.grad_accum", "3", "--out", tmp_path / "accum")
    one, two, accum = weights(tmp_path / "one"), weights(tmp_path / "two"), weights(tmp_path / "accum")
    assert one.keys() == two.keys() == accum.keys()
    assert largest_difference(one, two) <= TOLERANCE and largest_difference(one, accum) <= TOLERANCE
    assert largest_difference(one, weights(tiny_model_dir.parent)) > 100 * TOLERANCE    # it did train
    # one process wrote: one log line per step, one result printed
    one_log = (tmp_path / "one" / "log.jsonl").read_text().splitlines()
    assert len((tmp_path / "two" / "log.jsonl").read_text().splitlines()) == len(one_log)
    assert proc.stdout.count('"out":') == 1
