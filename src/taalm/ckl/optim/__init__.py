"""Optimizers of θ, one file per optimizer; importing this package registers them (``adamw``)."""

from .adamw import AdamW
from .base import OPTIMIZERS, OptimizerPart

__all__ = ["OPTIMIZERS", "OptimizerPart", "AdamW"]
