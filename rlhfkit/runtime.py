"""The runtime layer: the one module that knows processes, ranks and devices.

`torchrun --nproc_per_node N -m rlhfkit <stage> ...` starts N processes; each reads its rank from
the environment torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK) and joins one process group (gloo
on CPU, NCCL for CUDA tensors). A plain `rlhfkit <stage>` is world size 1: no process group,
and every function here is the single-process case. `--device cuda` (`use_device`) puts each
process on its own GPU (LOCAL_RANK) by making it torch's default device: models load there and
every tensor the code makes is made there, so the CPU and the GPU run the same code.

Trainers never read a rank: they ask this module for their share of a global batch (`shard`), to
add numbers up over the processes (`sum_over`, `gather`), to wrap a model so its gradients are
synchronised (`wrap`: DDP, or FSDP2 with `--fsdp`), for whole weights and optimizer state where
they are sharded (`full_state_dict`, `gathered`, `optimizer_state`), and whether they are the
process that writes files (`is_main`). Files are written by the main process only
(the writers check `is_main` and skip elsewhere); the others meet it at `barrier`s. When one
process fails, torchrun stops the rest.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


DEVICES = ("cpu", "cuda")


@dataclass(frozen=True)
class Runtime:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"          # "cpu" or "cuda:<local rank>"

    @property
    def is_main(self) -> bool:
        return self.rank == 0


_current: Runtime | None = None
_device_kind = "cpu"
_fsdp = False


def use_device(kind: str) -> None:
    """Compute on `kind` ("cpu" or "cuda"), chosen before the runtime starts (`current`)."""
    global _device_kind
    if kind not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {kind!r}")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: torch sees no CUDA GPU on this machine (a CPU build of torch, or no driver)")
    if _current is not None and _current.device.split(":")[0] != kind:
        raise ValueError(f"this process already computes on {_current.device}")
    _device_kind = kind


def current() -> Runtime:
    """This process's place, read once from torchrun's environment; joins the process group then."""
    global _current
    if _current is None:
        _current = _start()
    return _current


def use_fsdp(on: bool) -> None:
    """Shard the trained models' weights, gradients and optimizer state over the processes (FSDP2)
    instead of replicating them (DDP); chosen before the runtime starts."""
    global _fsdp
    _fsdp = on


def sharded() -> bool:
    """Whether trained models are sharded over processes here (FSDP2 with more than one process)."""
    return _fsdp and current().world_size > 1


def _start() -> Runtime:
    world, local_rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("LOCAL_RANK", "0"))
    device = f"cuda:{local_rank}" if _device_kind == "cuda" else "cpu"
    runtime = Runtime(int(os.environ.get("RANK", "0")), world, local_rank, device)
    if _device_kind == "cuda":
        torch.cuda.set_device(local_rank)
        torch.set_default_device(device)
    if world > 1 and not dist.is_initialized():
        # one group for both kinds of tensor: gloo carries CPU tensors, NCCL CUDA ones
        dist.init_process_group(backend="cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo")
    return runtime


def autocast(dtype: str) -> torch.autocast:
    """Autocast to bfloat16 on this process's device when `dtype` is "bfloat16", else off."""
    return torch.autocast(current().device.split(":")[0], dtype=torch.bfloat16, enabled=dtype == "bfloat16")


def memory_stats() -> dict[str, float]:
    """Peak GPU memory allocated so far (GiB), where the process computes on a GPU."""
    return {"gpu_peak_gib": torch.cuda.max_memory_allocated() / 2**30} if current().device != "cpu" else {}


def device_rng_state() -> dict:
    """The GPU's random state, where the process computes on one (tensors made there draw from it)."""
    return {"cuda": torch.cuda.get_rng_state()} if current().device != "cpu" else {}


def set_device_rng_state(state: dict) -> None:
    if current().device != "cpu" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"].cpu())


def shutdown() -> None:
    """Leave the process group (at the end of a command)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def is_main() -> bool:
    return current().is_main


def shard(items: list[T]) -> list[T]:
    """This process's contiguous share of a global batch (every process holds the same batch). An item
    is whole on one process, so a prompt's group of answers never straddles two."""
    rt = current()
    n = len(items)
    return items[rt.rank * n // rt.world_size:(rt.rank + 1) * n // rt.world_size]


def sum_over(values: list[float]) -> list[float]:
    """Each value summed over the processes (float64)."""
    if current().world_size == 1:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t)
    return t.tolist()


def gather(obj: T) -> list[T]:
    """Every process's `obj` (picklable), in rank order, on every process (its tensors on this
    process's device)."""
    if current().world_size == 1:
        return [obj]
    out: list[Any] = [None] * current().world_size
    dist.all_gather_object(out, _moved(obj, "cpu"))
    return [_moved(x, current().device) for x in out]


def from_main(obj: T) -> T:
    """The main process's `obj` (picklable), on every process (its tensors on this process's device)."""
    if current().world_size == 1:
        return obj
    box = [_moved(obj, "cpu")]
    dist.broadcast_object_list(box, src=0)
    return _moved(box[0], current().device)


def _moved(obj: Any, device: str) -> Any:
    """`obj` with every tensor in it (in dicts, lists, tuples, dataclasses) on `device`: a pickled CUDA
    tensor would otherwise arrive on the GPU it left, another process's."""
    if current().device == "cpu":
        return obj
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: _moved(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_moved(v, device) for v in obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.replace(obj, **{f.name: _moved(getattr(obj, f.name), device)
                                           for f in dataclasses.fields(obj) if f.init})
    return obj


def barrier() -> None:
    if current().world_size > 1:
        dist.barrier()


def wrap(module: torch.nn.Module) -> torch.nn.Module:
    """`module` ready for synchronised gradients: as is at world size 1; with FSDP2 (`use_fsdp`) the
    same module, each trained model in it sharded (`_fully_shard`); else in DDP (every process holds
    the weights, gradients averaged; rank 0's weights are every process's start)."""
    if current().world_size == 1:
        return module
    if _fsdp:
        for model in _models_in(module):
            _fully_shard(model)
        return module
    # find_unused_parameters: a read-out may leave a head out of the step (the verdict one skips `score`)
    on_gpu = {"device_ids": [current().local_rank]} if current().device != "cpu" else {}
    return torch.nn.parallel.DistributedDataParallel(module, find_unused_parameters=True, **on_gpu)


def _models_in(module: torch.nn.Module) -> list[torch.nn.Module]:
    """The models a step module holds (its children with parameters), or the module itself."""
    children = [c for c in module.children() if any(True for _ in c.parameters())]
    return children or [module]


def _fully_shard(model: torch.nn.Module) -> None:
    """FSDP2 on `model`'s transformer blocks (each element of any ModuleList its own unit: the bulk of
    the weights). The rest (embeddings, final norm, heads) stays whole in every process, its
    gradients averaged over the processes as DDP would (`_average_when_synced`): the code calls a
    model's backbone and heads separately (a value head on the backbone's hidden states), which a
    sharded root unit would not see."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor import DTensor
    if getattr(model, "_rlhfkit_sharded", False):      # wrapped again (a second fit of one model)
        return
    mesh = init_device_mesh(current().device.split(":")[0], (current().world_size,))
    for blocks in [m for m in model.modules() if isinstance(m, torch.nn.ModuleList)]:
        for block in blocks:
            # each block is its own root, and a root keeps its gathered weights unless told not to
            fully_shard(block, mesh=mesh, reshard_after_forward=True)
    for p in model.parameters():
        if not isinstance(p, DTensor):          # not in a block
            p.register_post_accumulate_grad_hook(_average_when_synced)
    model._rlhfkit_sharded = True


_gradient_sync = True      # off inside `no_sync` (micro-batches before a step's last)


def _average_when_synced(p: torch.nn.Parameter) -> None:
    if _gradient_sync:
        dist.all_reduce(p.grad, op=dist.ReduceOp.AVG)


def full(t: torch.Tensor) -> torch.Tensor:
    """The whole tensor of a sharded one (every process must call it), else `t`."""
    from torch.distributed.tensor import DTensor
    return t.full_tensor() if isinstance(t, DTensor) else t


def full_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor] | None:
    """A sharded model's weights as whole CPU tensors on every process (a collective: every process
    calls it); None for a model that is not sharded (its own state_dict is whole)."""
    if not sharded():
        return None
    # a parameter two names share (tied embeddings) is kept once, under its first name, as saving does
    tied = {k for k, _ in model.named_parameters(remove_duplicate=False)} - dict(model.named_parameters()).keys()
    return {k: full(v).detach().cpu() for k, v in model.state_dict().items() if k not in tied}


@contextlib.contextmanager
def gathered(model: torch.nn.Module):
    """Inside it, a sharded model's parameters are whole tensors and stay whole through forward
    passes (sampling: an engine copying weights, or one all-gather per block for a whole batch of
    tokens rather than per token); a collective; nothing for other models."""
    from torch.distributed.fsdp import FSDPModule
    if not sharded():
        yield
        return
    units = [m for m in model.modules() if isinstance(m, FSDPModule)]
    for unit in units:
        unit.set_reshard_after_forward(False, recurse=False)
        unit.unshard()
    try:
        yield
    finally:
        for unit in units:
            unit.reshard()
            unit.set_reshard_after_forward(True, recurse=False)


def optimizer_options() -> dict:
    """AdamW's options here: under FSDP2 one parameter at a time (`foreach` cannot mix the sharded
    parameters with the whole ones)."""
    return {"foreach": False} if sharded() else {}


def clip_grad_norm(params: list[torch.nn.Parameter], max_norm: float) -> float:
    """Scale the gradients so their global norm is at most `max_norm`; the norm before (inf or nan
    when a gradient is not finite). Under FSDP2 each shard counts once and a whole gradient once."""
    if not sharded():
        return torch.nn.utils.clip_grad_norm_(params, max_norm).item()
    from torch.distributed.tensor import DTensor
    grads = [p.grad for p in params if p.grad is not None]
    shards = torch.zeros((), dtype=torch.float64)
    for g in grads:
        if isinstance(g, DTensor):
            shards += g.to_local().double().pow(2).sum()
    dist.all_reduce(shards)
    whole = sum((g.double().pow(2).sum() for g in grads if not isinstance(g, DTensor)),
                torch.zeros((), dtype=torch.float64))
    norm = (shards + whole).sqrt().item()
    scale = min(1.0, max_norm / (norm + 1e-6))
    if scale < 1.0:
        for g in grads:
            g.mul_(scale)
    return norm


def optimizer_state(optimizer: torch.optim.Optimizer) -> dict:
    """What a checkpoint keeps of the optimizer: its state_dict, with whole tensors where they are
    sharded (gathered: every process calls it), so it reads back under any number of processes."""
    state = optimizer.state_dict()
    if sharded():
        state["state"] = {i: {k: full(v).cpu() if isinstance(v, torch.Tensor) else v for k, v in entry.items()}
                          for i, entry in state["state"].items()}
    return state


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict) -> None:
    """Restore `optimizer_state`'s output; a sharded parameter's state is cut to this process's shard."""
    optimizer.load_state_dict(state)
    if not sharded():
        return
    from torch.distributed.tensor import DTensor, distribute_tensor
    for p, entry in optimizer.state.items():
        if isinstance(p, DTensor):
            for k, v in entry.items():
                if isinstance(v, torch.Tensor) and not isinstance(v, DTensor) and v.shape == p.shape:
                    entry[k] = distribute_tensor(v, p.device_mesh, p.placements)


@contextlib.contextmanager
def no_sync(module: torch.nn.Module):
    """Inside it, a backward pass accumulates gradients without synchronising them (all but the last
    micro-batch of a step)."""
    if isinstance(module, torch.nn.parallel.DistributedDataParallel):
        with module.no_sync():
            yield
    elif sharded():
        global _gradient_sync
        units = [m for m in module.modules() if hasattr(m, "set_requires_gradient_sync")]
        for unit in units:
            unit.set_requires_gradient_sync(False, recurse=False)
        _gradient_sync = False
        try:
            yield
        finally:
            _gradient_sync = True
            for unit in units:
                unit.set_requires_gradient_sync(True, recurse=False)
    else:
        yield


def unwrap(module: torch.nn.Module) -> torch.nn.Module:
    return module.module if isinstance(module, torch.nn.parallel.DistributedDataParallel) else module
