"""The inner optimizer's interface and registry (SPEC 2.3).

θ' = θ_k (1 − lr·λ) − U(g): an inner optimizer gives the step U(g) of one tensor from its
gradient and its state before the step (moments m, v and the step count t), out of place and
differentiable, and its elementwise derivative U'(g), which the ``directional`` engine needs.
The decoupled weight decay λ is shared (:meth:`InnerOptimizer.step`). One file per optimizer in
this folder registers a subclass with ``@INNER_OPTIMIZERS.register("name")`` (plus
``config=ItsConfig`` for settings of its own: the section ``inner.name.*``), and
``inner.optimizer=name`` selects it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ...core.registry import Registry

if TYPE_CHECKING:
    from ..config import InnerConfig


class InnerOptimizer:
    """One inner optimizer: U(g) and U'(g) per tensor, from the state before the step."""

    name: str  # set by INNER_OPTIMIZERS.register
    config_section: str | None  # set by INNER_OPTIMIZERS.register
    #: its state keeps the moments m and v of every tensor (SGD's keeps only the step count)
    moments: bool = False

    def __init__(self, cfg: InnerConfig):
        self.cfg = cfg  # the inner section: lr, weight_decay, betas, eps (and its own sub-section)

    def update(self, g: torch.Tensor, m: torch.Tensor | None, v: torch.Tensor | None, t: int):
        """(U(g), new m, new v) for one tensor at step ``t`` (1-based) from the moments before
        the step (None where :attr:`moments` is off)."""
        raise NotImplementedError

    def derivative(self, g: torch.Tensor, m: torch.Tensor | None, v: torch.Tensor | None, t: int) -> torch.Tensor:
        """U'(g) elementwise at step ``t``, the state before the step held fixed."""
        raise NotImplementedError

    def step(self, params: dict, grads: dict, state: dict) -> tuple[dict, dict]:
        """One step of every tensor out of place: (new params, new state); decoupled weight decay."""
        lr, wd = self.cfg.lr, self.cfg.weight_decay
        new, t = {}, state["t"] + 1
        ms, vs = {}, {}
        for n, p in params.items():
            q = p * (1 - lr * wd) if wd else p
            u, m, v = self.update(grads[n], state["m"].get(n), state["v"].get(n), t)
            new[n] = q - u
            if self.moments:
                ms[n], vs[n] = m, v
        return new, ({"t": t, "m": ms, "v": vs} if self.moments else {**state, "t": t})

    def derivatives(self, grads: dict, state: dict) -> dict:
        """U'(g) of every tensor (see :meth:`derivative`)."""
        t = state["t"] + 1
        return {n: self.derivative(g, state["m"].get(n), state["v"].get(n), t) for n, g in grads.items()}


#: optimizer name -> its :class:`InnerOptimizer` (the config key ``inner.optimizer`` selects one)
INNER_OPTIMIZERS: Registry[InnerOptimizer] = Registry("inner optimizer", "inner.optimizer")


def build_inner_optimizer(cfg: InnerConfig) -> InnerOptimizer:
    """The optimizer ``cfg.optimizer`` of an inner section, reading that section."""
    return INNER_OPTIMIZERS.get(cfg.optimizer)(cfg)
