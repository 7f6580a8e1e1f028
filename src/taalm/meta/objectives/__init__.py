"""The outer objectives of meta-training, one file per objective; importing this package
registers them all.

``answer_nll`` (the mean answer NLL after the update), ``change3`` and ``change2`` (the change
against θ0's answer loss: the release's variants). Add one with a file here that registers an
:class:`OuterObjective` subclass with ``@OBJECTIVES.register("name")`` (``config=ItsConfig`` for
settings, which become the section ``name.*`` of ``train-attention``'s configuration): every
file of this folder is imported (no line to add), and ``objective=name`` selects it.
"""

from .answer_nll import AnswerNll
from .base import OBJECTIVES, OuterObjective, build_objective
from .change2 import Change2
from .change3 import Change3

__all__ = ["OBJECTIVES", "OuterObjective", "build_objective", "AnswerNll", "Change2", "Change3"]

from ...core.registry import import_submodules  # noqa: E402

import_submodules(__name__, __path__)  # any other file in this folder registers its objective too
