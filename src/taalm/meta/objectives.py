"""The outer objective O(θ') of meta-training on the task's answer tokens (SPEC 2.3).

``answer_nll`` is the mean answer NLL after the update; ``change3`` and ``change2`` score the
change against θ0's answer loss (the release's variants). :mod:`taalm.meta.gradient`
differentiates O back to the token weights w.
"""

from __future__ import annotations

import torch

from ..core.config import OBJECTIVES
from ..core.errors import ConfigError


def outer_objective(name: str, task_losses: torch.Tensor, answer_mask: torch.Tensor,
                    task_losses0: torch.Tensor | None = None) -> torch.Tensor:
    """Outer loss per pair ``[P]`` from the task's per-token losses at θ' (and at θ0).

    answer_nll: mean answer-token NLL (the release's ``phi_loss`` with the label mask);
    change3: Σ (ℓ' − ℓ⁰)³ / |answer|; change2: Σ sign(Δ) Δ² / |answer|.
    """
    a = answer_mask.to(task_losses.dtype)
    n = a.sum(1).clamp_min(1)
    if name == "answer_nll":
        return (a * task_losses).sum(1) / n
    if task_losses0 is None:
        raise ValueError(f"objective {name} needs the task losses at θ0")
    d = task_losses - task_losses0
    if name == "change3":
        return (a * d ** 3).sum(1) / n
    if name == "change2":
        return (a * torch.sign(d) * d ** 2).sum(1) / n
    raise ConfigError(f"unknown meta objective '{name}' (use {', '.join(OBJECTIVES)})")
