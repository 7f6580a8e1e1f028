"""Benchmarks and their data: the benchmark runner and registry, LAMA-ckl, tailoring unit files to
a base model, building φ-training pools. Layer 7."""
