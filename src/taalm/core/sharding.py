"""FSDP2 sharding of a full θ (``train.fsdp=true`` under ``torchrun``): the one place that knows DTensors.

Data parallelism (:mod:`taalm.core.distributed`) replicates θ on every rank. When θ itself does
not fit on one device, ``torch.distributed.fsdp.fully_shard`` (FSDP2) splits every parameter,
gradient and optimizer state along dim 0 over the ranks: each decoder layer (the model's
``_no_split_modules``) is its own unit, gathered for its forward and backward and freed after,
and the root holds the rest (embeddings, tied LM head, final norm).

How the learner uses it, and why:

* **Same calls on every rank.** FSDP gathers a layer's weights inside its forward, a collective
  every rank must join, so each rank runs the same number of forwards per step (a rank short of a
  micro-batch runs a copy of one with weight 0) and evaluates the same probes.
* **Summed, not averaged, gradients.** The learner normalises the loss over the sequences of the
  global step itself, so FSDP's reduce-scatter divides by 1 (:func:`shard_model`), the same sum
  that the replicated path's ``all_reduce`` gives. Gradients are reduced once per step (the other
  micro-batches accumulate unsharded, ``set_requires_gradient_sync``).
* **Full tensors in files.** Checkpoints and the saved model hold ordinary full tensors (gathered
  on every rank, written by rank 0), so they load without FSDP and resume on any number of ranks:
  :func:`full_tensors`, :func:`full_optimizer_state` and :func:`shard_like` convert both ways.

Not supported, refused before anything runs: FSDP for meta-training (a sharded θ inside φ's
meta-gradient: FSDP2's double backward needs ``set_reshard_after_backward(False)``,
pytorch/pytorch#172543, and forward-mode JVPs through FSDP2 fail, #182641), and FSDP for the
adapter θ forms (LoRA, K-Adapter: what trains is small, so data parallelism is the tool).
"""

from __future__ import annotations

import types


def is_sharded(t) -> bool:
    """Whether ``t`` is a DTensor (a parameter or state FSDP sharded)."""
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:  # a torch built without distributed support shards nothing
        return False
    return isinstance(t, DTensor)


def shard_model(model) -> list[str]:
    """Apply FSDP2 to ``model`` in place: each of its ``_no_split_modules`` blocks (the decoder
    layers of a transformers model) is one unit, the root another; gradients are summed over the
    ranks (divide factor 1). Returns the sharded blocks' class names."""
    from torch.distributed.fsdp import FSDPModule, fully_shard

    block_names = set(getattr(model, "_no_split_modules", None) or [])
    blocks = [m for m in model.modules() if type(m).__name__ in block_names]
    names = sorted({type(b).__name__ for b in blocks})  # before fully_shard renames the classes (FSDP<name>)
    for block in blocks:
        fully_shard(block)
    fully_shard(model)
    for m in model.modules():
        if isinstance(m, FSDPModule):
            m.set_gradient_divide_factor(1.0)
    return names


def set_gradient_sync(model, sync: bool) -> None:
    """Reduce-scatter the gradients in this backward (``sync``) or let them accumulate unsharded."""
    from torch.distributed.fsdp import FSDPModule

    if isinstance(model, FSDPModule):
        model.set_requires_gradient_sync(sync)


def full_tensor(t):
    """The whole tensor of a DTensor (a collective: every rank calls it), else ``t``."""
    return t.full_tensor() if is_sharded(t) else t


def full_tensors(tensors: dict) -> dict:
    """``{name: full tensor}`` of possibly sharded ``tensors`` (a collective), detached, on the CPU."""
    return {name: full_tensor(t.detach()).cpu() for name, t in tensors.items()}


def full_optimizer_state(optimizer):
    """An object whose ``state_dict()`` is ``optimizer``'s with every sharded state tensor
    gathered whole (a collective, so every rank calls it; rank 0 writes the result)."""
    sd = optimizer.state_dict()
    sd["state"] = {idx: {k: full_tensor(v).cpu() if is_sharded(v) else v for k, v in st.items()}
                   for idx, st in sd["state"].items()}
    return types.SimpleNamespace(state_dict=lambda: sd)


def shard_like(param, full):
    """``full`` (a whole tensor read from a file, the same on every rank) laid out like
    ``param``: a DTensor with its mesh and placements when ``param`` is sharded, else itself."""
    if not is_sharded(param) or tuple(full.shape) != tuple(param.shape):
        return full
    from torch.distributed.tensor import distribute_tensor

    return distribute_tensor(full.to(device=param.device, dtype=param.dtype), param.device_mesh, param.placements)


def shard_optimizer_state(sd: dict, params: list) -> dict:
    """An optimizer ``state_dict`` of whole tensors (from a checkpoint) laid out like ``params``
    (the optimizer's parameters in order): state tensors of a parameter's shape become DTensors."""
    sd["state"] = {idx: {k: shard_like(params[idx], v) if hasattr(v, "shape") else v for k, v in st.items()}
                   for idx, st in sd["state"].items()}
    return sd


def full_model_state(model) -> dict:
    """The model's whole ``state_dict`` (a tied weight once), gathered on every rank to the CPU
    (a collective: every rank calls it, in the same order)."""
    params = dict(model.named_parameters(remove_duplicate=False))
    unique = {name for name, _ in model.named_parameters()}  # a tied weight under its first name
    state = {}
    for name, t in model.state_dict().items():
        if name in params and name not in unique:
            continue
        state[name] = full_tensor(t.detach()).cpu()
    return state


__all__ = ["is_sharded", "shard_model", "set_gradient_sync", "full_tensor", "full_tensors",
           "full_optimizer_state", "shard_like", "shard_optimizer_state", "full_model_state"]
