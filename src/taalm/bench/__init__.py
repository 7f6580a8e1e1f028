"""Benchmarks: the benchmark runner and registry, LAMA-ckl, the continual streams. Layer 7 (the
data tools they read from, tailoring and φ-training pools, are :mod:`taalm.tools`).

Importing the package registers the shipped benchmarks (each registers itself in its own
module), so the registry never imports a benchmark: no import runs in a circle."""

from . import lama_ckl  # noqa: F401  (registers lama-ckl)
