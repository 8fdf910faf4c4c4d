"""Under torchrun: two processes (gloo, on the CPU) train what one process trains with the same global
batch and seed, whether each holds the whole model (DDP) or a shard of it (--fsdp, FSDP2), and k
micro-batches train what one batch k times their size does. Final weights agree within TOLERANCE
(the sums run in another order; nothing else differs)."""
import json
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from rlhfkit.cli import main
from test_cli import ENV, TINY_TASK

TOLERANCE = 1e-5      # largest absolute weight difference allowed; weights are of order 1


def in_process(*args) -> None:
    """The command as one process: run inside the test's own (no interpreter to start)."""
    assert main([str(a) for a in args]) == 0


def torchrun(*args, processes: int = 2) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                           str(processes), "-m", "rlhfkit", *map(str, args)], capture_output=True, text=True,
                          env=ENV, timeout=600)
    if proc.returncode != 0:
        raise AssertionError(f"torchrun rlhfkit {' '.join(map(str, args))} failed:\n{proc.stderr[-3000:]}")
    return proc


def weights(model_dir):
    return load_file(model_dir / "model.safetensors")


def largest_difference(a: dict, b: dict) -> float:
    """Over the tensors both hold (a reward model's backbone against the LM it started from)."""
    return max((a[k] - b[k]).abs().max().item() for k in a.keys() & b.keys())


@pytest.fixture(scope="module")
def tldr_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("data")
    in_process("data", "tldr", "--out", out, *TINY_TASK)
    return out


@pytest.fixture(scope="module")
def reward_model(tiny_model_dir, tldr_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("rm")
    in_process("rm", "--model", tiny_model_dir, "--data", tldr_data / "rankings.jsonl", "--train.batch_size", "8",
               "--out", out)
    return out


def stage_args(stage: str, model, data) -> list:
    if stage == "sft":
        return ["sft", "--model", model, *TINY_TASK]
    return [stage, "--model", model, "--data", data / "rankings.jsonl"]


@pytest.mark.parametrize("stage", ["sft", "rm", "dpo"])
def test_two_processes_and_micro_batches_train_as_one_process(stage, tiny_model_dir, tldr_data, tmp_path):
    args = [*stage_args(stage, tiny_model_dir, tldr_data), "--train.batch_size", "8", "--train.lr", "3e-3"]
    in_process(*args, "--out", tmp_path / "one")
    proc = torchrun(*args, "--out", tmp_path / "two")
    in_process(*args, "--train.grad_accum", "3", "--out", tmp_path / "accum")
    torchrun(*args, "--fsdp", "--train.grad_accum", "2", "--out", tmp_path / "fsdp")
    one, two, accum, fsdp = (weights(tmp_path / d / "model") for d in ("one", "two", "accum", "fsdp"))
    assert one.keys() == two.keys() == accum.keys() == fsdp.keys()
    for other in (two, accum, fsdp):
        assert largest_difference(one, other) <= TOLERANCE
    assert largest_difference(one, weights(tiny_model_dir)) > 100 * TOLERANCE    # it did train
    # one process wrote: one log line per step, one result printed
    one_log = (tmp_path / "one" / "log.jsonl").read_text().splitlines()
    assert len((tmp_path / "two" / "log.jsonl").read_text().splitlines()) == len(one_log)
    assert proc.stdout.count('"out":') == 1


@pytest.mark.parametrize("algo", ["ppo", "grpo", "ppo-lora", "ppo-fsdp"])
def test_two_processes_run_rl_as_one_process(algo, tiny_model_dir, reward_model, tmp_path):
    """Each process samples the whole batch (one seed), scores its share, trains on its share of every
    minibatch; the policy and the value model end as one process leaves them (PPO through its value
    warm-up, the policy frozen for the first iteration; with LoRA adapters, the reference the policy
    with them off)."""
    own = {"ppo": ["--rl.value_warmup", "1"], "grpo": ["--rl.k", "2"], "ppo-lora": ["--lora.r", "4"],
           "ppo-fsdp": ["--rl.value_warmup", "1", "--rl.checkpoint_every", "1"]}[algo]
    algo, fsdp = algo.removesuffix("-lora").removesuffix("-fsdp"), algo.endswith("-fsdp")
    args = ["rl", "--algo", algo, *own, "--policy", tiny_model_dir, "--reward_model", reward_model,
            "--rl.steps", "3", "--rl.prompts_per_step", "8", "--rl.minibatch_size", "4", "--rl.lr", "1e-3",
            "--sample.max_new_tokens", "12", *TINY_TASK]
    in_process(*args, "--out", tmp_path / "one")
    torchrun(*args, *(["--fsdp"] if fsdp else []), "--out", tmp_path / "two")
    one, two = weights(tmp_path / "one" / "model"), weights(tmp_path / "two" / "model")
    assert largest_difference(one, two) <= TOLERANCE
    assert largest_difference(one, weights(tiny_model_dir)) > 100 * TOLERANCE
    if algo == "ppo":
        assert largest_difference(weights(tmp_path / "one" / "value"), weights(tmp_path / "two" / "value")) <= TOLERANCE
    if "--lora.r" in own:     # the adapters trained, nothing else; the first rollouts' KL to the reference is 0
        assert (tmp_path / "one" / "adapter" / "adapter_model.safetensors").is_file()
        assert (tmp_path / "one" / "value_adapter" / "adapter_model.safetensors").is_file()
        base = weights(tiny_model_dir)
        assert all(torch.equal(one[k], base[k]) for k in ("model.norm.weight", "model.embed_tokens.weight"))
    logs = [(tmp_path / d / "log.jsonl").read_text().splitlines() for d in ("one", "two")]
    if "--lora.r" in own:
        assert abs(json.loads(logs[0][0])["kl"]) < 1e-6
    assert len(logs[0]) == len(logs[1]) == 3
    assert [json.loads(line)["score"] for line in logs[0]] == pytest.approx([json.loads(line)["score"] for line in logs[1]],
                                                                          abs=TOLERANCE)


@pytest.mark.parametrize("layout", ["ddp", "fsdp"])
def test_two_processes_killed_and_started_again_end_as_one_uninterrupted_run(layout, tiny_model_dir, tmp_path):
    """kill -9 of every process after a checkpoint, then the same command: the run resumes at the
    checkpoint's step (data position, optimizer, each process's random state) and ends with the
    weights of a run never stopped. Under --fsdp the checkpoint holds whole weights and optimizer
    state, cut back into shards on resuming."""
    args = ["sft", "--model", tiny_model_dir, "--train.batch_size", "8", "--train.lr", "3e-3", "--train.epochs", "3",
            "--train.checkpoint_every", "2", "--task.n_train", "256", "--task.n_valid", "16", "--task.n_test", "16",
            *(["--fsdp"] if layout == "fsdp" else [])]
    in_process(*args, "--out", tmp_path / "whole")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "rlhfkit",
           *map(str, args), "--out", str(tmp_path / "killed")]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marker = tmp_path / "killed" / "checkpoint" / "job.json"
    deadline = time.time() + 300
    while not marker.is_file() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    # the launcher and both workers (each its own process group): every process naming this run's --out
    subprocess.run(["pkill", "-9", "-f", str(tmp_path / "killed")], check=False)
    proc.wait()
    assert marker.is_file() and not (tmp_path / "killed" / "model").exists()     # stopped mid-run, after a checkpoint
    resumed = torchrun(*args, "--out", tmp_path / "killed")
    assert "resuming from" in resumed.stdout + resumed.stderr
    assert largest_difference(weights(tmp_path / "whole" / "model"), weights(tmp_path / "killed" / "model")) <= TOLERANCE
    steps = [json.loads(line)["step"] for line in (tmp_path / "killed" / "log.jsonl").read_text().splitlines()]
    assert steps == list(range(1, len(steps) + 1))       # each step logged once across the kill


def test_lora_under_fsdp_is_refused_in_one_line(tiny_model_dir, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "rlhfkit", "sft", "--model", str(tiny_model_dir), "--fsdp", "--lora.r", "4",
                           *TINY_TASK, "--out", str(tmp_path / "out")], capture_output=True, text=True, env=ENV,
                          timeout=300)
    assert proc.returncode != 0
    assert "rlhfkit sft: error: --lora.r with --fsdp: not supported yet" in proc.stderr
    assert "[rank0]: Traceback" not in proc.stderr and "[rank1]: Traceback" not in proc.stderr     # the workers' own
    assert not (tmp_path / "out" / "model").exists()
