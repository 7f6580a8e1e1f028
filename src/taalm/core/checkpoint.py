"""The one checkpointer of taalm: the CKL learner (``checkpoints/epoch-N/``) and meta-training
(``checkpoints/update-N/``) both save and resume through :class:`Checkpointer`.

A checkpoint folder holds the trained tensors (safetensors), the optimizer's per-parameter state
and its param groups (``optimizer.safetensors``: tensors keyed ``<param name>::<state key>``, the
groups' hyperparameters as JSON metadata, so a learning-rate schedule survives a resume) and
``state.json`` (counters, history), written last by :func:`taalm.core.runfolder.commit_checkpoint`,
which also moves the ``latest.json`` pointer and keeps the newest two. Loading verifies a whole
checkpoint (names, shapes, finite values, optimizer state) before anything is copied into the
model, and falls back to the previous checkpoint when the newest is damaged. No pickle.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import torch

from .files import load_tensors, save_tensors
from .runfolder import checkpoint_state, commit_checkpoint, newest_usable_checkpoint

_GROUPS_KEY = "param_groups"


def save_optimizer_state(path: Path, optimizer, names: list[str]) -> None:
    """An optimizer's per-parameter state and param groups as safetensors (``names`` in the
    optimizer's parameter order)."""
    sd = optimizer.state_dict()
    tensors = {}
    for idx, st in sd["state"].items():
        for key, value in st.items():
            tensors[f"{names[idx]}::{key}"] = value if torch.is_tensor(value) else torch.tensor(value)
    groups = [{k: v for k, v in g.items() if k != "params"} for g in sd["param_groups"]]
    save_tensors(path, tensors, metadata={_GROUPS_KEY: json.dumps(groups)})


def optimizer_state_from_file(optimizer, path: Path, names: list[str]) -> dict:
    """The ``state_dict`` that :func:`save_optimizer_state` wrote (checked: every key names a
    known parameter; the param groups' hyperparameters restored when the file has them)."""
    from safetensors import safe_open

    tensors = load_tensors(path)
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    sd = optimizer.state_dict()
    sd["state"] = {}
    for key, value in tensors.items():
        pname, _, skey = key.partition("::")
        if pname not in names or not skey:
            raise ValueError(f"optimizer state for unknown parameter {pname!r}")
        sd["state"].setdefault(names.index(pname), {})[skey] = value
    if _GROUPS_KEY in meta:
        saved = json.loads(meta[_GROUPS_KEY])
        if len(saved) != len(sd["param_groups"]):
            raise ValueError(f"{len(saved)} optimizer param groups saved, {len(sd['param_groups'])} expected")
        for group, hyper in zip(sd["param_groups"], saved):
            group.update({k: tuple(v) if isinstance(v, list) else v for k, v in hyper.items()})
    return sd


class Checkpointer:
    """Checkpoints ``root/<prefix>-<index>/`` of named trainable tensors plus an optimizer.

    ``tensor_file``: where the tensors live inside a checkpoint folder; ``write_tensors(folder)``
    (optional) writes them there in another form (φ writes its loadable folder), else
    ``save_tensors`` writes ``params`` to ``tensor_file``.
    """

    def __init__(self, root: Path, prefix: str, width: int, tensor_file: str = "trainable.safetensors",
                 write_tensors: Callable[[Path], None] | None = None):
        self.root, self.prefix, self.width = Path(root), prefix, width
        self.tensor_file, self.write_tensors = tensor_file, write_tensors

    def save(self, index: int, params: dict[str, torch.Tensor], optimizer, state: dict) -> Path:
        folder = self.root / f"{self.prefix}-{index:0{self.width}d}"
        if self.write_tensors is not None:
            self.write_tensors(folder)
        else:
            save_tensors(folder / self.tensor_file, params)
        save_optimizer_state(folder / "optimizer.safetensors", optimizer, list(params))
        commit_checkpoint(self.root, folder, state, f"{self.prefix}-*")
        return folder

    def _read(self, folder: Path, latest: dict | None, params: dict, optimizer):
        """(state, tensors, optimizer state_dict) of one checkpoint, fully verified; loads nothing."""
        state = checkpoint_state(folder, latest)
        saved = load_tensors(folder / self.tensor_file)
        if set(saved) != set(params):
            raise ValueError(f"does not match this model/config ({len(saved)} saved tensors, {len(params)} trainable)")
        for n, p in params.items():
            if tuple(saved[n].shape) != tuple(p.shape):
                raise ValueError(f"tensor {n} has shape {tuple(saved[n].shape)}, expected {tuple(p.shape)}")
            if not torch.isfinite(saved[n]).all():
                raise ValueError(f"tensor {n} holds NaN/Inf")
        return state, saved, optimizer_state_from_file(optimizer, folder / "optimizer.safetensors", list(params))

    def load_newest(self, params: dict[str, torch.Tensor], optimizer, log: Callable[[str], None] = print,
                    none_yet: str = "none was written yet") -> dict:
        """Load the newest usable checkpoint into ``params`` and ``optimizer``; returns its state."""
        state, saved, opt_sd = newest_usable_checkpoint(
            self.root, f"{self.prefix}-*", lambda f, latest: self._read(f, latest, params, optimizer), log, none_yet)
        from .sharding import is_sharded, shard_like, shard_optimizer_state

        with torch.no_grad():  # whole tensors in the file; an FSDP-sharded parameter takes its shard
            for n, p in params.items():
                p.copy_(shard_like(p, saved[n]) if is_sharded(p) else saved[n])
        if any(is_sharded(p) for p in params.values()):
            opt_sd = shard_optimizer_state(opt_sd, list(params.values()))
        optimizer.load_state_dict(opt_sd)
        return state

    def any_written(self) -> bool:
        """Whether a checkpoint was ever completed (``latest.json``, or a folder with its
        ``state.json``, written last): a run killed before or while writing its first one has
        none, and is resumed by starting it again."""
        return (self.root / "latest.json").exists() or any(
            (d / "state.json").exists() for d in self.root.glob(f"{self.prefix}-*"))

    def resume_state(self, params: dict[str, torch.Tensor], optimizer, log: Callable[[str], None] = print,
                     none_yet: str = "none was written yet") -> dict | None:
        """:meth:`load_newest`, or None (start from the beginning, said in the log) when the run
        stopped before writing any checkpoint."""
        if not self.any_written():
            log(f"{self.root.parent}: the run stopped before its first checkpoint ({none_yet}); "
                f"starting it again from the beginning with the same, verified inputs and configuration")
            return None
        return self.load_newest(params, optimizer, log, none_yet)

    def latest_index(self) -> int | None:
        """The index ``latest.json`` points to (None before the first checkpoint)."""
        try:
            latest = json.loads((self.root / "latest.json").read_text())
            return int(latest.get("epoch", latest.get("update")))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None
