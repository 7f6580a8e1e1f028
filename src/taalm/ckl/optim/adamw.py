"""Optimizer ``adamw``: ``torch.optim.AdamW`` with the ``train`` section's lr, betas, weight decay."""

from __future__ import annotations

import torch

from .base import OPTIMIZERS, OptimizerPart


@OPTIMIZERS.register("adamw")
class AdamW(OptimizerPart):
    """torch.optim.AdamW (train.lr, train.betas, train.weight_decay): the paper's optimizer."""

    def build(self, params):
        c = self.cfg
        return torch.optim.AdamW(list(params.values()), lr=c.lr, weight_decay=c.weight_decay, betas=tuple(c.betas))
