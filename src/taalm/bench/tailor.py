"""Kept only for the ``from ..tailor import model_fingerprint`` of ``bench/lama_ckl/protocol.py``
and ``bench/stream/runner.py`` (left untouched by the move of the data tools). The data tools
live in :mod:`taalm.tools` now: import ``taalm.tools.tailor``."""

from ..tools.tailor import model_fingerprint

__all__ = ["model_fingerprint"]
