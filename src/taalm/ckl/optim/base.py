"""Optimizers of θ, registered by name.

An :class:`OptimizerPart` builds a ``torch.optim.Optimizer`` over θ's named trainable parameters
from the ``train`` section. Its state (and param groups) go into every checkpoint through
:mod:`taalm.core.checkpoint`, so a resumed run continues exactly.

Add one with a file in ``taalm/ckl/optim/`` (imported by its ``__init__``)::

    @OPTIMIZERS.register("mine")
    class Mine(OptimizerPart):
        def build(self, params): ...
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from typing import ClassVar

import torch

from ...core.registry import Registry

if TYPE_CHECKING:  # the schema imports every part: parts never import it at run time
    from ..config import TrainConfig

OPTIMIZERS: Registry["OptimizerPart"] = Registry("optimizer", "train.optimizer")


class OptimizerPart:
    name: ClassVar[str] = ""

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg

    def build(self, params: dict[str, torch.nn.Parameter]) -> torch.optim.Optimizer:
        """The optimizer over ``params`` (name -> parameter, in a fixed order)."""
        raise NotImplementedError
