"""The inner optimizer of meta-training as pure functions: out of place and differentiable.

θ' = θ_k (1 − lr·λ) − U(g) with U the update of a registered inner optimizer, one file per
optimizer in this folder: ``adamw`` and ``sgd`` (equations in :mod:`taalm.meta.gradient`).
:func:`optim_step` takes one step; :func:`update_derivative` gives U'(g) elementwise, which the
``directional`` engine needs. Tested against ``torch.optim.AdamW`` and ``torch.optim.SGD`` in
float64. At v̂ = 0 (an entry whose gradient has always been 0) the derivative of √v̂ is taken as
0 (:func:`~taalm.meta.inner_optim.adamw.safe_sqrt`), so no NaN appears.

Add an optimizer with a file here that registers an :class:`InnerOptimizer` subclass with
``@INNER_OPTIMIZERS.register("name")`` (``config=ItsConfig`` for settings of its own: the section
``inner.name.*``): every file of this folder is imported, and ``inner.optimizer=name`` selects it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from .adamw import AdamW, safe_sqrt
from .base import INNER_OPTIMIZERS, InnerOptimizer, build_inner_optimizer
from .sgd import Sgd

if TYPE_CHECKING:
    from ..config import InnerConfig

__all__ = ["INNER_OPTIMIZERS", "InnerOptimizer", "build_inner_optimizer", "AdamW", "Sgd", "safe_sqrt",
           "init_state", "optim_step", "update_derivative", "step_and_derivative"]


def init_state(params: dict, moments: bool = True) -> dict:
    """Optimizer state: step count and (AdamW) zero moments; SGD needs no moments."""
    if not moments:
        return {"t": 0, "m": {}, "v": {}}
    return {"t": 0, "m": {n: torch.zeros_like(p) for n, p in params.items()},
            "v": {n: torch.zeros_like(p) for n, p in params.items()}}


def optim_step(opt: InnerConfig, params: dict, grads: dict, state: dict) -> tuple[dict, dict]:
    """One step of ``opt`` (the inner section) out of place: returns (new params, new state).

    Same arithmetic as ``torch.optim.AdamW`` / ``torch.optim.SGD`` (decoupled weight decay for
    AdamW, L2-free SGD with the same decoupled decay); differentiable when the inputs carry a
    graph. Tested against torch.optim in float64.
    """
    return build_inner_optimizer(opt).step(params, grads, state)


def update_derivative(opt: InnerConfig, grads: dict, state: dict) -> dict:
    """U'(g): elementwise derivative of the step U with respect to g, the state before the step
    held fixed (see the module docstring)."""
    return build_inner_optimizer(opt).derivatives(grads, state)


def step_and_derivative(opt: InnerConfig, p: torch.Tensor, g: torch.Tensor, state: dict, name: str):
    """θ' and U'(g) for one tensor, without keeping the new optimizer state (the directional
    engine needs nothing else; same arithmetic as :func:`optim_step` / :func:`update_derivative`)."""
    one = {"t": state["t"], "m": {name: state["m"].get(name)}, "v": {name: state["v"].get(name)}}
    new, _ = optim_step(opt, {name: p}, {name: g}, one)
    return new[name], update_derivative(opt, {name: g}, one)[name]


from ...core.registry import import_submodules  # noqa: E402

import_submodules(__name__, __path__)  # any other file in this folder registers its optimizer too
