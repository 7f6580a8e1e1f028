"""The inner optimizer of meta-training as pure functions: out of place and differentiable.

θ' = θ_k (1 − lr·λ) − U(g) with U the SGD or AdamW update (equations in
:mod:`taalm.meta.gradient`). :func:`optim_step` takes one step; :func:`update_derivative` gives
U'(g) elementwise, which the ``directional`` engine needs. Tested against ``torch.optim.AdamW``
and ``torch.optim.SGD`` in float64. At v̂ = 0 (an entry whose gradient has always been 0) the
derivative of √v̂ is taken as 0 (:func:`_safe_sqrt`), so no NaN appears.
"""

from __future__ import annotations

import torch

from ..core.config import InnerConfig


def _safe_sqrt(x: torch.Tensor) -> torch.Tensor:
    """√x with derivative 0 (instead of ∞·0 = NaN) where x = 0."""
    pos = x > 0
    return torch.where(pos, torch.sqrt(torch.where(pos, x, torch.ones_like(x))), torch.zeros_like(x))


def init_state(params: dict, moments: bool = True) -> dict:
    """Optimizer state: step count and (AdamW) zero moments; SGD needs no moments."""
    if not moments:
        return {"t": 0, "m": {}, "v": {}}
    return {"t": 0, "m": {n: torch.zeros_like(p) for n, p in params.items()},
            "v": {n: torch.zeros_like(p) for n, p in params.items()}}


def optim_step(opt: InnerConfig, params: dict, grads: dict, state: dict) -> tuple[dict, dict]:
    """One step of ``opt`` out of place: returns (new params, new state).

    Same arithmetic as ``torch.optim.AdamW`` / ``torch.optim.SGD`` (decoupled weight decay for
    AdamW, L2-free SGD with the same decoupled decay); differentiable when the inputs carry a
    graph. Tested against torch.optim in float64.
    """
    lr, wd = opt.lr, opt.weight_decay
    new, t = {}, state["t"] + 1
    ms, vs = {}, {}
    b1, b2 = tuple(opt.betas)
    for n, p in params.items():
        g = grads[n]
        q = p * (1 - lr * wd) if wd else p
        if opt.optimizer == "sgd":
            new[n] = q - lr * g
            continue
        m = b1 * state["m"][n] + (1 - b1) * g
        v = b2 * state["v"][n] + (1 - b2) * g * g
        bc1, bc2 = 1 - b1 ** t, 1 - b2 ** t
        new[n] = q - (lr / bc1) * m / (_safe_sqrt(v / bc2) + opt.eps)
        ms[n], vs[n] = m, v
    return new, ({"t": t, "m": ms, "v": vs} if opt.optimizer == "adamw" else {**state, "t": t})


def update_derivative(opt: InnerConfig, grads: dict, state: dict) -> dict:
    """U'(g): elementwise derivative of the step U with respect to g, the state before the step
    held fixed (see the module docstring)."""
    if opt.optimizer == "sgd":
        return {n: torch.full_like(g, opt.lr) for n, g in grads.items()}
    b1, b2 = tuple(opt.betas)
    t = state["t"] + 1
    bc1, bc2 = 1 - b1 ** t, 1 - b2 ** t
    out = {}
    for n, g in grads.items():
        m = b1 * state["m"][n] + (1 - b1) * g
        v = b2 * state["v"][n] + (1 - b2) * g * g
        s = _safe_sqrt(v / bc2)
        D = s + opt.eps
        ds = torch.where(s > 0, (1 - b2) * g / (bc2 * torch.where(s > 0, s, torch.ones_like(s))),
                         torch.zeros_like(s))
        out[n] = (opt.lr / bc1) * ((1 - b1) / D - m * ds / (D * D))
    return out


def step_and_derivative(opt: InnerConfig, p: torch.Tensor, g: torch.Tensor, state: dict, name: str):
    """θ' and U'(g) for one tensor, without keeping the new optimizer state (the directional
    engine needs nothing else; same arithmetic as :func:`optim_step` / :func:`update_derivative`)."""
    one = {"t": state["t"], "m": {name: state["m"].get(name)}, "v": {name: state["v"].get(name)}}
    new, _ = optim_step(opt, {name: p}, {name: g}, one)
    return new[name], update_derivative(opt, {name: g}, one)[name]
