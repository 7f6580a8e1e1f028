"""Optimizer ``recadam``: Adam with an annealed quadratic pull toward θ's starting values
(RecAdam, Chen et al. 2020), every trainable parameter anchored.

With step t (from 1), λ(t) = sigmoid(k·(t − t0)), the Adam step a_t (torch's AdamW arithmetic:
m̂ = m/(1−β1^t), v̂ = v/(1−β2^t), a_t = m̂ / (√v̂ + ε)) and the anchor p0 (the value at the first
step):

    p ← p · (1 − lr·wd)                                   (decoupled weight decay, as AdamW)
    p ← p − lr·λ(t)·a_t − lr·(1 − λ(t))·coef·(p − p0)

Early on (λ ≈ 0) the pull dominates and θ stays near what it knew; as t passes t0 the target loss
takes over. ``coef = 0`` switches the pull off and gives plain AdamW (λ is not applied then).
The public release put the LoRA parameters in a group without the pull, so it reduced to Adam;
here every parameter the optimizer holds is anchored. The anchors live in the optimizer state,
so they go into every checkpoint and a resumed run continues exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...core.config import Rules, option
import math

import torch

from .base import OPTIMIZERS, OptimizerPart


class RecAdamOptimizer(torch.optim.Optimizer):
    """The update of the module docstring; state per parameter: step, exp_avg, exp_avg_sq, anchor."""

    def __init__(self, params, lr: float, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
                 coef: float = 100.0, k: float = 0.5, t0: int = 100):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      coef=coef, k=k, t0=t0))

    @staticmethod
    def anneal(step: int, k: float, t0: int) -> float:
        """λ(t) = sigmoid(k·(t − t0))."""
        return 1.0 / (1.0 + math.exp(-k * (step - t0)))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for g in self.param_groups:
            b1, b2 = g["betas"]
            for p in g["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                if not st:
                    st["step"] = torch.zeros((), dtype=torch.float64)
                    st["exp_avg"] = torch.zeros_like(p)
                    st["exp_avg_sq"] = torch.zeros_like(p)
                    st["anchor"] = p.detach().clone()  # p0: where this parameter started
                st["step"] += 1
                t = int(st["step"])
                st["exp_avg"].mul_(b1).add_(p.grad, alpha=1 - b1)
                st["exp_avg_sq"].mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                denom = (st["exp_avg_sq"] / (1 - b2 ** t)).sqrt_().add_(g["eps"])
                adam = st["exp_avg"] / (1 - b1 ** t) / denom
                p.mul_(1 - g["lr"] * g["weight_decay"])
                if g["coef"] == 0:
                    p.sub_(g["lr"] * adam)
                    continue
                lam = self.anneal(t, g["k"], g["t0"])
                pull = (p - st["anchor"]).mul_(g["coef"] * (1 - lam))
                p.sub_(g["lr"] * (lam * adam + pull))
        return loss


@dataclass
class RecAdamConfig:
    """The ``recadam`` optimizer: Adam with an annealed quadratic pull toward θ's starting values."""

    coef: float = option(100.0, "strength of the pull (lr · coef ≤ 1 keeps the pull from overshooting)")
    k: float = option(0.5, "steepness of λ(t) = sigmoid(k · (t − t0))")
    t0: int = option(100, "the step at which λ = 1/2: the pull fades as t passes t0")

    def _rules(self, r: Rules) -> None:
        r.finite("coef", 0.0)
        r.finite("k", 0.0, low_open=True)
        r.at_least("t0", 0)


@OPTIMIZERS.register("recadam", config=RecAdamConfig)
class RecAdam(OptimizerPart):
    """Adam with an annealed pull toward θ0 on every trainable parameter (train.recadam.coef, k, t0)."""

    def build(self, params):
        c, r = self.cfg, self.cfg.recadam
        return RecAdamOptimizer(list(params.values()), lr=c.lr, betas=tuple(c.betas), weight_decay=c.weight_decay,
                                coef=r.coef, k=r.k, t0=r.t0)
