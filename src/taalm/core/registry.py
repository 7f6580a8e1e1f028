"""Named registries: how every pluggable part of taalm is found by name.

One :class:`Registry` per kind of part (token weighting, θ form, optimizer, data stream,
benchmark). A part registers itself with a decorator in the file that defines it::

    @WEIGHTINGS.register("mine")
    class Mine(WeightingMethod): ...

and is looked up with ``registry.get(name)``; an unknown name is a :class:`ConfigError` that
lists what is available.
"""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

from .errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> class for one kind of part; ``kind`` names it in messages ("θ form", ...)."""

    def __init__(self, kind: str, key: str):
        self.kind = kind
        self.key = key  # the config key that selects a part of this kind, for messages
        self._parts: dict[str, type[T]] = {}

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        def deco(cls: type[T]) -> type[T]:
            if name in self._parts:
                raise ValueError(f"{self.kind} '{name}' is already registered")
            setattr(cls, "name", name)  # every part carries its registered name (T is any class or function)
            self._parts[name] = cls
            return cls

        return deco

    def names(self) -> list[str]:
        return sorted(self._parts)

    def __contains__(self, name: str) -> bool:
        return name in self._parts

    def get(self, name: str) -> type[T]:
        if name not in self._parts:
            raise ConfigError(f"unknown {self.kind} '{name}' (available: {', '.join(self.names())})", self.key)
        return self._parts[name]

    def describe(self) -> dict[str, str]:
        """name -> the first sentence of the part's docstring (its first paragraph, lines joined)."""
        return {n: _first_sentence(self._parts[n].__doc__ or "") for n in self.names()}


def _first_sentence(doc: str) -> str:
    """The first sentence of a docstring's first paragraph, its lines joined (never cut mid-sentence)."""
    import re

    para = " ".join(line.strip() for line in doc.strip().split("\n\n")[0].splitlines())
    m = re.match(r"(.+?[.!?:])(\s+[A-Z(]|$)", para)
    return m.group(1) if m else para
