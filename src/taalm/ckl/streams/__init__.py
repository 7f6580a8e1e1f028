"""Data streams, one file per stream; importing this package registers them (``plain``, ``mixreview``)."""

from .base import STREAMS, DataStream, length_grouped_order, micro_batches
from .mixreview import MixReview
from .plain import Plain

__all__ = ["STREAMS", "DataStream", "length_grouped_order", "micro_batches", "MixReview", "Plain"]

from ...core.registry import import_submodules  # noqa: E402

import_submodules(__name__, __path__)  # any other file in this folder registers its part too
