"""The runtime layer: the one module that knows processes, ranks and devices.

`torchrun --nproc_per_node N -m rlhfkit <stage> ...` starts N processes; each reads its rank from
the environment torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK) and joins one process group (gloo
on CPU, NCCL for CUDA tensors). A plain `rlhfkit <stage>` is world size 1: no process group,
and every function here is the single-process case. Trainers never read a rank: they ask this
module for their share of a global batch (`shard`), to add numbers up over the processes
(`sum_over`, `gather`), to wrap a model so its gradients are synchronised (`wrap`), and whether
they are the process that writes files (`is_main`). Files are written by the main process only
(the writers check `is_main` and skip elsewhere); the others meet it at `barrier`s. When one
process fails, torchrun stops the rest.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


@dataclass(frozen=True)
class Runtime:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


_current: Runtime | None = None


def current() -> Runtime:
    """This process's place, read once from torchrun's environment; joins the process group then."""
    global _current
    if _current is None:
        _current = _start()
    return _current


def _start() -> Runtime:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    runtime = Runtime(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))
    if world > 1 and not dist.is_initialized():
        # one group for both kinds of tensor: gloo carries CPU tensors, NCCL CUDA ones
        dist.init_process_group(backend="cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo")
    return runtime


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
    """Every process's `obj` (picklable), in rank order, on every process."""
    if current().world_size == 1:
        return [obj]
    out: list[Any] = [None] * current().world_size
    dist.all_gather_object(out, obj)
    return out


def from_main(obj: T) -> T:
    """The main process's `obj` (picklable), on every process."""
    if current().world_size == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if current().world_size > 1:
        dist.barrier()


def wrap(module: torch.nn.Module) -> torch.nn.Module:
    """`module` ready for synchronised gradients: as is at world size 1, else in DDP (every process
    holds the weights, gradients averaged; rank 0's weights are every process's start)."""
    if current().world_size == 1:
        return module
    # find_unused_parameters: a read-out may leave a head out of the step (the verdict one skips `score`)
    return torch.nn.parallel.DistributedDataParallel(module, find_unused_parameters=True)


@contextlib.contextmanager
def no_sync(module: torch.nn.Module):
    """Inside it, a backward pass accumulates gradients without synchronising them (all but the last
    micro-batch of a step)."""
    if isinstance(module, torch.nn.parallel.DistributedDataParallel):
        with module.no_sync():
            yield
    else:
        yield


def unwrap(module: torch.nn.Module) -> torch.nn.Module:
    return module.module if isinstance(module, torch.nn.parallel.DistributedDataParallel) else module
