"""``sgd``: the inner SGD step, U(g) = lr·g."""

from __future__ import annotations

import torch

from .base import INNER_OPTIMIZERS, InnerOptimizer


@INNER_OPTIMIZERS.register("sgd")
class Sgd(InnerOptimizer):
    """SGD without momentum: U(g) = lr·g, U'(g) = lr (decoupled weight decay as AdamW's)."""

    def update(self, g, m, v, t):
        return self.cfg.lr * g, None, None

    def derivative(self, g, m, v, t):
        return torch.full_like(g, self.cfg.lr)
