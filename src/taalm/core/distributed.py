"""Data parallelism with ``torchrun`` and ``torch.distributed``: the one place that knows ranks.

``torchrun --nproc_per_node N -m taalm learn ...`` starts N processes with ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` in their environment; :func:`init_from_env` joins them into a
process group (NCCL on CUDA, gloo on CPU) and every rank runs the same loop. The learner then
splits each optimizer step's micro-batches over the ranks (rank r takes micro-batches r, r+N, …
of the seeded, length-grouped global order), sums the gradients and the step's counts with
``all_reduce`` and normalises by the sequences of the *global* step, so the update does not
depend on N at a fixed global batch. Evaluation shards the probes the same way and gathers the
scores. Only rank 0 writes the run folder, logs and progress bars; every rank validates inputs
and reads a checkpoint on resume. A checkpoint holds no rank-dependent state, so it resumes on
any N.

A single process (no ``WORLD_SIZE`` > 1 and no initialised group) is rank 0 of 1: every function
here is then a no-op, and nothing else in the library needs to know.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Dist:
    """This process's place among the ranks."""

    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


_LOCAL = [False]  # inside local_only(): this process acts alone


def current() -> Dist:
    """The initialised process group's rank and size (rank 0 of 1 without one, or inside
    :func:`local_only`)."""
    import torch.distributed as dist

    if not _LOCAL[0] and dist.is_available() and dist.is_initialized():
        return Dist(dist.get_rank(), dist.get_world_size())
    return Dist()


def is_main_process() -> bool:
    """Whether this process is rank 0 of the initialised process group (always, without one or
    inside :func:`local_only`): the one that writes, logs and prints."""
    return current().is_main


def launched_as_main() -> bool:
    """Whether ``torchrun`` started this process as rank 0 (or no ``torchrun`` at all): what the
    command line asks before any process group is joined."""
    return os.environ.get("RANK", "0") == "0"


@contextlib.contextmanager
def local_only():
    """Within the block this process computes alone, as rank 0 of 1 (meta-training's validation,
    a full CKL run of its own, runs on rank 0 while the other ranks wait at their next collective)."""
    _LOCAL[0] = True
    try:
        yield
    finally:
        _LOCAL[0] = False


def init_from_env(device_spec: str = "auto") -> Dist:
    """Join the process group ``torchrun`` describes in the environment (once); rank 0 of 1
    when the environment names no group of more than one process."""
    import torch.distributed as dist

    from .devices import distributed_backend, resolve_device

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        device = resolve_device(device_spec)
        if device.index is not None:
            import torch

            torch.cuda.set_device(device)
        # a long timeout: the other ranks wait while rank 0 validates φ (minutes on a big model)
        dist.init_process_group(backend=distributed_backend(device), timeout=datetime.timedelta(hours=2))
    return current()


def all_reduce_sum_(tensor):
    """Sum ``tensor`` over the ranks, in place (nothing in a single process)."""
    import torch.distributed as dist

    if current().enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_reduce_grads_(params) -> None:
    """Sum every parameter's gradient over the ranks (a missing gradient counts as zeros), in one
    flat buffer per dtype. Manual rather than DDP's hooks: a rank may hold fewer micro-batches
    than another at the end of an epoch, and the step's normalisation is global, not a mean."""
    import torch

    if not current().enabled:
        return
    params = list(params)
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    by_dtype: dict = {}
    for p in params:
        by_dtype.setdefault(p.grad.dtype, []).append(p)
    for group in by_dtype.values():
        flat = torch.cat([p.grad.reshape(-1) for p in group])
        all_reduce_sum_(flat)
        offset = 0
        for p in group:
            n = p.grad.numel()
            p.grad.copy_(flat[offset:offset + n].view_as(p.grad))
            offset += n


def all_gather_objects(obj) -> list:
    """Every rank's ``obj``, in rank order (``[obj]`` in a single process)."""
    import torch.distributed as dist

    d = current()
    if not d.enabled:
        return [obj]
    out = [None] * d.world_size
    dist.all_gather_object(out, obj)
    return out


def shard(items: list, d: Dist | None = None) -> list:
    """This rank's share of ``items``: positions rank, rank + N, rank + 2N, …"""
    d = d or current()
    return items[d.rank::d.world_size]


def barrier() -> None:
    import torch.distributed as dist

    if current().enabled:
        dist.barrier()


def shutdown() -> None:
    """Leave the process group cleanly (a barrier, then destroy): a rank that simply exits while
    another still writes can abort in gloo's threads ("terminate called without an active exception")."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
