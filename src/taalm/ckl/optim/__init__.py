"""Optimizers of θ, one file per optimizer; importing this package registers them (``adamw``, ``recadam``)."""

from .adamw import AdamW
from .base import OPTIMIZERS, OptimizerPart
from .recadam import RecAdam, RecAdamOptimizer

__all__ = ["OPTIMIZERS", "OptimizerPart", "AdamW", "RecAdam", "RecAdamOptimizer"]

from ...core.registry import import_submodules  # noqa: E402

import_submodules(__name__, __path__)  # any other file in this folder registers its part too
