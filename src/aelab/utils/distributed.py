"""Several processes training one model: the process group that ``torchrun`` asks for.

``torchrun`` (``python -m torch.distributed.run``) starts one process per device and tells each
its place through the environment: ``WORLD_SIZE`` processes in all, this one's ``RANK`` among them
and its ``LOCAL_RANK`` on its own machine. :func:`init_from_env` joins the group when there is
more than one process (gloo between CPU processes, NCCL between CUDA GPUs, one GPU per process);
the trainer then wraps its model in ``DistributedDataParallel`` (Li et al. 2020, "PyTorch
Distributed: Experiences on Accelerating Data Parallel Training").

Everything here also works without a group, as process 0 of 1, so the library calls these
helpers unconditionally. Nothing happens at import.
"""

from __future__ import annotations

import builtins
import os
from collections.abc import Callable
from typing import Any, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


def env_world_size() -> int:
    """The number of processes ``torchrun`` started (1 when it did not start this one)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def world() -> int:
    """Processes training together (1 without a process group)."""
    return dist.get_world_size() if is_initialized() else 1


def rank() -> int:
    """This process's place among them (0 without a process group)."""
    return dist.get_rank() if is_initialized() else 0


def is_main() -> bool:
    """Whether this process writes files and shows progress: rank 0."""
    return rank() == 0


def local_device(device: torch.device) -> torch.device:
    """The GPU of this process when several share a machine (``cuda:LOCAL_RANK``)."""
    if device.type == "cuda" and is_initialized():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def init_from_env(device: torch.device) -> torch.device:
    """Join ``torchrun``'s process group when it started more than one process.

    Parameters
    ----------
    device : torch.device
        The resolved training device: ``cpu`` joins with gloo, ``cuda`` with NCCL and takes GPU
        ``LOCAL_RANK`` of this machine.

    Returns
    -------
    torch.device
        The device this process trains on.
    """
    if env_world_size() <= 1 or is_initialized():
        return local_device(device)
    if device.type == "cuda":
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if local_rank >= torch.cuda.device_count():
            raise ValueError(
                f"LOCAL_RANK={local_rank} has no GPU: this machine has "
                f"{torch.cuda.device_count()}; start at most that many processes per node"
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
    elif device.type == "cpu":
        dist.init_process_group("gloo")
    else:
        raise ValueError(
            f"device={device.type!r} cannot train in several processes; allowed: cpu (gloo), "
            "cuda (nccl)"
        )
    return device


def cleanup() -> None:
    """Leave the process group (nothing without one)."""
    if is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait until every process gets here (e.g. until rank 0 has written a checkpoint)."""
    if is_initialized():
        dist.barrier()


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum ``t`` over the processes, in place (on its device: no host synchronisation)."""
    if is_initialized():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def shard(batch: torch.Tensor, world: int, rank: int) -> tuple[torch.Tensor, float, int]:
    """This process's part of a global batch, the weight of its mean loss, and its size.

    ``DistributedDataParallel`` averages the gradients of the processes. Weighting the mean loss
    of a part of ``n`` of the batch's ``N`` samples by ``n * world / N`` makes that average the
    gradient of the mean loss over the whole batch, however unevenly it splits::

        sum_r (n_r * world / N) * grad(mean_r) / world  =  sum_r n_r * grad(mean_r) / N

    A process left without samples (a batch smaller than ``world``) still has to take part in
    the gradient all-reduce: it gets one sample with weight 0, and size 0 for the epoch's loss.
    """
    part = batch.tensor_split(world)[rank]
    if len(part) == 0:
        return batch[:1], 0.0, 0
    return part, len(part) * world / len(batch), len(part)


def broadcast(obj: T) -> T:
    """Rank 0's ``obj`` (a small picklable value) on every process."""
    if not is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def agree(fn: Callable[[], T], *, main_first: bool = True) -> T:
    """Call ``fn`` on every process; an exception on any of them is raised on all of them.

    Validation before anything is written goes through here, so that a bad argument stops every
    process with the same message instead of leaving the others waiting in a collective. With
    ``main_first``, rank 0 calls ``fn`` before the others (it may fill a cache they then read)
    and the others do not call it at all when it fails there.
    """
    if not is_initialized():
        return fn()
    result: Any = None
    failure: tuple[int, BaseException] | None = None
    if main_first:
        if is_main():
            result, failure = _call(fn)
        first = broadcast(_describe(failure))
        if first is not None:
            _raise(first, failure)
    if not (main_first and is_main()):
        result, failure = _call(fn)
    failures = [None] * world()
    dist.all_gather_object(failures, _describe(failure))
    first = next((f for f in failures if f is not None), None)
    if first is not None:
        _raise(first, failure)
    return result


def _call(fn: Callable[[], T]) -> tuple[T | None, tuple[int, BaseException] | None]:
    try:
        return fn(), None
    except Exception as e:
        return None, (rank(), e)


def _describe(failure: tuple[int, BaseException] | None) -> tuple[int, str, str] | None:
    if failure is None:
        return None
    r, e = failure
    return r, type(e).__name__, str(e)


def _raise(first: tuple[int, str, str], local: tuple[int, BaseException] | None) -> None:
    r, name, message = first
    if local is not None and local[0] == r:
        raise local[1]
    cls = getattr(builtins, name, None)
    if isinstance(cls, type) and issubclass(cls, (ValueError, TypeError, OSError, ArithmeticError)):
        raise cls(message)  # a user error: the same line on every process
    raise RuntimeError(f"rank {r} failed: {name}: {message}")
