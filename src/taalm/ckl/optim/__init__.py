"""Optimizers of θ, one file per optimizer; importing this package registers them (``adamw``, ``recadam``)."""

from .adamw import AdamW
from .base import OPTIMIZERS, OptimizerPart
from .recadam import RecAdam, RecAdamOptimizer

__all__ = ["OPTIMIZERS", "OptimizerPart", "AdamW", "RecAdam", "RecAdamOptimizer"]
