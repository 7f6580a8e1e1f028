"""The benchmark registry: ``taalm bench NAME`` finds its runner here by name."""

from __future__ import annotations

from typing import Callable

from ..core.registry import Registry

BENCHMARKS: Registry[Callable] = Registry("benchmark", "benchmark")


def register_benchmark(name: str) -> Callable[[Callable], Callable]:
    """Register a benchmark runner under ``name`` (``@register_benchmark("mine")``)."""
    return BENCHMARKS.register(name)


def available_benchmarks() -> list[str]:
    """The registered benchmarks (the shipped ones register when ``taalm.bench`` is imported,
    which importing this module does first)."""
    return BENCHMARKS.names()


def get_benchmark(name: str) -> Callable:
    return BENCHMARKS.get(name)


__all__ = ["BENCHMARKS", "register_benchmark", "available_benchmarks", "get_benchmark"]
