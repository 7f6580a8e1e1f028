"""Token weighting, one file per method; importing this package registers them all.

``finetune``, ``oracle``, ``random``, ``rho1``, ``salient``, ``taalm``, the rule-based token
losses ``dft``, ``asft``, ``eaft``, ``stm`` (and
:class:`PrecomputedWeights`, passed as an instance). Add one with a file here that registers a
:class:`WeightingMethod` subclass with ``@WEIGHTINGS.register("name", config=ItsConfig)``: every
file of this folder is imported (no line to add), and ``method.name`` gets a section.
"""

from .base import (WEIGHTINGS, PrepareContext, WeightingMethod, available_methods, describe_methods, dynamic_weights,
                   document_token_losses, build_weighting, register_method, weights_for_documents, window_token_losses)
from .finetune import Finetune
from .oracle import Oracle
from .precomputed import PrecomputedWeights
from .random import RandomWeights
from .rho1 import Rho1, select_top_fraction
from .salient import SalientWeights, salient_spans, span_token_mask
from .taalm import TaalmWeights

__all__ = ["WEIGHTINGS", "PrepareContext", "WeightingMethod", "available_methods", "describe_methods", "build_weighting", "dynamic_weights",
           "register_method", "weights_for_documents", "window_token_losses", "document_token_losses", "Finetune", "Oracle",
           "PrecomputedWeights", "RandomWeights", "Rho1", "select_top_fraction", "SalientWeights", "salient_spans",
           "span_token_mask", "TaalmWeights"]

from ...core.registry import import_submodules  # noqa: E402

import_submodules(__name__, __path__)  # any other file in this folder registers its part too
