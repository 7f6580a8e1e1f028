"""Benchmarks and their data: the benchmark runner and registry, LAMA-ckl, tailoring unit files to
a base model, building φ-training pools. Layer 7.

Importing the package registers the shipped benchmarks (each registers itself in its own
module), so the registry never imports a benchmark: no import runs in a circle."""

from . import lama_ckl  # noqa: F401  (registers lama-ckl)
