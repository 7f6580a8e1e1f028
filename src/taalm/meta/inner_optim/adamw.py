"""``adamw``: the inner AdamW step, U(g) = lr·m̂/(√v̂ + ε), and its derivative U'(g)."""

from __future__ import annotations

import torch

from .base import INNER_OPTIMIZERS, InnerOptimizer


def safe_sqrt(x: torch.Tensor) -> torch.Tensor:
    """√x with derivative 0 (instead of ∞·0 = NaN) where x = 0."""
    pos = x > 0
    return torch.where(pos, torch.sqrt(torch.where(pos, x, torch.ones_like(x))), torch.zeros_like(x))


@INNER_OPTIMIZERS.register("adamw")
class AdamW(InnerOptimizer):
    """AdamW (inner.betas, inner.eps): the arithmetic of torch.optim.AdamW, out of place.

    m = β1 m_k + (1−β1) g, v = β2 v_k + (1−β2) g², U(g) = lr/bc1 · m/(√(v/bc2) + ε), bc_j = 1 − β_j^t.
    At v̂ = 0 (an entry whose gradient has always been 0) the derivative of √v̂ is taken as 0.
    """

    moments = True

    def update(self, g, m, v, t):
        b1, b2 = tuple(self.cfg.betas)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        bc1, bc2 = 1 - b1 ** t, 1 - b2 ** t
        return (self.cfg.lr / bc1) * m / (safe_sqrt(v / bc2) + self.cfg.eps), m, v

    def derivative(self, g, m, v, t):
        b1, b2 = tuple(self.cfg.betas)
        bc1, bc2 = 1 - b1 ** t, 1 - b2 ** t
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        s = safe_sqrt(v / bc2)
        D = s + self.cfg.eps
        ds = torch.where(s > 0, (1 - b2) * g / (bc2 * torch.where(s > 0, s, torch.ones_like(s))),
                         torch.zeros_like(s))
        return (self.cfg.lr / bc1) * ((1 - b1) / D - m * ds / (D * D))
