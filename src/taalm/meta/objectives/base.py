"""The outer objective's interface and registry (SPEC 2.3).

An outer objective O(θ') scores θ after the inner update on the task's answer tokens, one value
per pair ``[P]``; :mod:`taalm.meta.gradient` differentiates it back to the token weights w. One
file per objective in this folder registers a subclass of :class:`OuterObjective` with
``@OBJECTIVES.register("name")`` (plus ``config=ItsConfig`` when it has settings: they become
the section ``NAME.*`` of :class:`taalm.meta.config.MetaTrainConfig`), and ``objective=name``
selects it. The meta-gradient asks the objective's properties (:attr:`~OuterObjective.needs_theta0`,
:attr:`~OuterObjective.theta0_value`), never its name.
"""

from __future__ import annotations

from typing import Any

import torch

from ...core.registry import Registry


class OuterObjective:
    """One outer objective O(θ'): a value per pair from the task's per-token losses at θ'."""

    name: str  # set by OBJECTIVES.register
    config_section: str | None  # set by OBJECTIVES.register: the section of its settings, if any
    #: it needs the task's per-token losses at θ0 (``task_losses0``; one more task forward per step)
    needs_theta0: bool = False
    #: its value at θ' = θ0 when known without a forward (0 for the change objectives). None: the
    #: value is θ0's task loss, computed for the log ("outer0", "gain") where ``log_outer0`` is on
    theta0_value: float | None = None

    def __init__(self, settings: Any = None):
        self.settings = settings  # its own config section (None for an objective without settings)

    def token_terms(self, task_losses: torch.Tensor, task_losses0: torch.Tensor | None) -> torch.Tensor:
        """Per-token terms ``[P, Tq]`` whose mean over the answer tokens is O (see :meth:`outer`)."""
        raise NotImplementedError

    def outer(self, task_losses: torch.Tensor, answer_mask: torch.Tensor,
              task_losses0: torch.Tensor | None = None) -> torch.Tensor:
        """O per pair ``[P]``: the mean of :meth:`token_terms` over each pair's answer tokens
        (differentiable in ``task_losses``). Override it for an objective of another form."""
        if self.needs_theta0 and task_losses0 is None:
            raise ValueError(f"objective {self.name} needs the task losses at θ0")
        a = answer_mask.to(task_losses.dtype)
        return (a * self.token_terms(task_losses, task_losses0)).sum(1) / a.sum(1).clamp_min(1)


#: objective name -> its :class:`OuterObjective` (the config key ``objective`` selects one)
OBJECTIVES: Registry[OuterObjective] = Registry("meta objective", "objective")


def build_objective(cfg) -> OuterObjective:
    """The objective ``cfg.objective`` of a :class:`~taalm.meta.config.MetaTrainConfig`, with its
    own settings section (if it has one)."""
    cls = OBJECTIVES.get(cfg.objective)
    return cls(getattr(cfg, cls.config_section) if cls.config_section else None)
