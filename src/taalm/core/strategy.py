"""How one optimizer step is spread over processes: the learner's loop asks a :class:`Strategy`.

Three strategies, chosen once per run by :func:`strategy_for`:

* :class:`SingleProcess`: one process runs every micro-batch; every verb is a no-op.
* :class:`DataParallel` (``torchrun``, θ replicated): rank r runs micro-batches r, r+N, … of the
  step; the step's counts and the gradients are summed over the ranks (:mod:`taalm.core.distributed`);
  evaluation scores a shard of the probes per rank and gathers the scores.
* :class:`FullyShardedDataParallel` (``train.fsdp=true`` under ``torchrun``, FSDP2 on a full θ,
  :mod:`taalm.core.sharding`): as data parallel, but every rank runs the same number of forwards
  (stand-in micro-batches that add nothing), gradients are reduce-scattered in the step's last
  backward, and files hold whole tensors gathered on every rank.

The verbs are what the learner's step needs and nothing more: :meth:`~Strategy.micro_batches`,
:meth:`~Strategy.backward_context`, :meth:`~Strategy.reduce`, :meth:`~Strategy.full_tensor`,
:meth:`~Strategy.checkpoint_state`, :meth:`~Strategy.full_state` and :meth:`~Strategy.map_items`.
So the step reads as on one device, and a new strategy is a new class here.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable

from . import distributed, sharding
from .errors import ConfigError


@dataclass(frozen=True)
class MicroBatch:
    index: int  # position in the step (seeds dropout: the same masks for any number of ranks)
    windows: list[int]  # window indices
    counts: bool = True  # False: a stand-in that only joins the ranks' collectives (adds nothing)


class Strategy:
    """One process, all micro-batches: the base every strategy refines."""

    name = "single process"
    gathers = False  # whether every rank takes part in gathering tensors for a file

    def setup(self, model) -> str | None:
        """Prepare θ (e.g. shard it); returns a line for the log, or None."""
        return None

    def micro_batches(self, group: list[list[int]]) -> list[MicroBatch]:
        return [MicroBatch(j, mb) for j, mb in enumerate(group)]

    def backward_context(self, model, last: bool):
        """The context of one micro-batch's forward and backward (``last``: the step's last one)."""
        return contextlib.nullcontext()

    def reduce(self, sums: list[float], params, device) -> list[float]:
        """The step's global counts (and, across ranks, its summed gradients)."""
        return sums

    def full_tensor(self, t):
        return t

    def checkpoint_state(self, params: dict, optimizer):
        """(parameters, optimizer) as a checkpoint file holds them: whole tensors."""
        return params, optimizer

    def full_state(self, model) -> dict | None:
        """θ's whole state dict when the saved θ must be gathered first (else None: save as is)."""
        return None

    def map_items(self, fn: Callable[[list[int]], list], n: int) -> list:
        """``fn(indices) -> one result per index`` over items ``0..n-1`` (e.g. probes to score),
        the results in item order; across ranks each computes a share and they are gathered."""
        return fn(list(range(n)))


SingleProcess = Strategy


class DataParallel(Strategy):
    """θ replicated on every rank of ``torchrun``; micro-batches and probes split over the ranks."""

    name = "data parallel"

    def __init__(self, d: distributed.Dist):
        self.d = d

    def micro_batches(self, group):
        return [MicroBatch(j, mb) for j, mb in enumerate(group) if j % self.d.world_size == self.d.rank]

    def reduce(self, sums, params, device):
        import torch

        out = distributed.all_reduce_sum_(torch.tensor(sums, dtype=torch.float64, device=device)).tolist()
        distributed.all_reduce_grads_(params)
        return out

    def map_items(self, fn, n):
        idx = list(range(self.d.rank, n, self.d.world_size))  # positions rank, rank + N, …
        mine = fn(idx) if idx else []
        out = [None] * n
        for part in distributed.all_gather_objects(list(zip(idx, mine))):
            for i, x in part:
                out[i] = x
        return out


class FullyShardedDataParallel(DataParallel):
    """FSDP2 on a full θ: every rank runs the same forwards (each gathers the layers' weights with
    the others), gradients reduce-scatter in the step's last backward, files hold whole tensors."""

    name = "FSDP2"
    gathers = True

    def setup(self, model):
        units = sharding.shard_model(model)
        return f"FSDP2: θ sharded over {self.d.world_size} ranks (units: {', '.join(units) or 'the root only'})"

    def micro_batches(self, group):
        mine = super().micro_batches(group)
        rounds = -(-len(group) // self.d.world_size)
        return mine + [MicroBatch(0, group[0], counts=False)] * (rounds - len(mine))

    @contextlib.contextmanager
    def backward_context(self, model, last):
        sharding.set_gradient_sync(model, last)  # accumulate unsharded; reduce-scatter (sum) in the last
        yield

    def reduce(self, sums, params, device):
        import torch

        return distributed.all_reduce_sum_(torch.tensor(sums, dtype=torch.float64, device=device)).tolist()

    def full_tensor(self, t):
        return sharding.full_tensor(t)

    def checkpoint_state(self, params, optimizer):
        return sharding.full_tensors(params), sharding.full_optimizer_state(optimizer)

    def full_state(self, model):
        return sharding.full_model_state(model)

    def map_items(self, fn, n):
        return fn(list(range(n)))  # every rank runs the same forwards (they gather weights together)


def strategy_for(fsdp: bool) -> Strategy:
    """The strategy of this process: FSDP2 when asked (under torchrun), data parallel under
    torchrun, else a single process."""
    d = distributed.current()
    if fsdp and not d.enabled:
        raise ConfigError("train.fsdp=true shards θ over the ranks of torchrun: start it with "
                          "`torchrun --nproc_per_node N -m taalm ...` (N ≥ 2)", "train.fsdp")
    if fsdp:
        return FullyShardedDataParallel(d)
    return DataParallel(d) if d.enabled else SingleProcess()


__all__ = ["Strategy", "SingleProcess", "DataParallel", "FullyShardedDataParallel", "MicroBatch", "strategy_for"]
