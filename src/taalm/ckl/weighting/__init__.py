"""Token weighting, one file per method; importing this package registers them all.

``finetune``, ``oracle``, ``random``, ``rho1``, ``salient``, ``taalm`` (and
:class:`PrecomputedWeights`, passed as an instance). Add one with a file here that registers a
:class:`WeightingMethod` subclass with ``@WEIGHTINGS.register("name")`` and an import below.
"""

from .base import (WEIGHTINGS, PrepareContext, WeightingMethod, available_methods, describe_methods,
                   document_token_losses, get_method, register_method, weights_for_documents, window_token_losses)
from .finetune import Finetune
from .oracle import Oracle
from .precomputed import PrecomputedWeights
from .random import RandomWeights
from .rho1 import Rho1, select_top_fraction
from .salient import SalientWeights, salient_spans, span_token_mask
from .taalm import TaalmWeights

__all__ = ["WEIGHTINGS", "PrepareContext", "WeightingMethod", "available_methods", "describe_methods", "get_method",
           "register_method", "weights_for_documents", "window_token_losses", "document_token_losses", "Finetune", "Oracle",
           "PrecomputedWeights", "RandomWeights", "Rho1", "select_top_fraction", "SalientWeights", "salient_spans",
           "span_token_mask", "TaalmWeights"]
