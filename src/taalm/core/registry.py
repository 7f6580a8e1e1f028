"""Named registries: how every pluggable part of taalm is found by name.

One :class:`Registry` per kind of part (token weighting, θ form, optimizer, data stream,
benchmark). A part registers itself with a decorator in the file that defines it::

    @WEIGHTINGS.register("mine")
    class Mine(WeightingMethod): ...

and is looked up with ``registry.get(name)``; an unknown name is a :class:`ConfigError` that
lists what is available.

A part with settings registers its own config dataclass with it, peft-style::

    @dataclass
    class MineConfig:
        strength: float = option(0.5, "how strongly ...")

    @WEIGHTINGS.register("mine", config=MineConfig)
    class Mine(WeightingMethod): ...

and the configuration schema gets a section for it (``method.mine.strength``): the schema of
``learn`` is built from the registries (:mod:`taalm.ckl.config`), so a new part is one new file.
Parts that read the same settings share a section (``section=``: QLoRA reads ``theta.lora``).
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
        self._configs: dict[str, type] = {}  # config section name -> the parts' config dataclass
        self._frozen_by = ""  # the schema built from these configs (a later config would be missing from it)

    def register(self, name: str, config: type | None = None, section: str | None = None
                 ) -> Callable[[type[T]], type[T]]:
        """Decorator: register a part under ``name``; ``config`` (a dataclass) is its settings,
        in the config section ``section`` (default: ``name``)."""
        key = section or name
        if config is not None and self._frozen_by and key not in self._configs:
            raise ValueError(f"{self.kind} '{name}' brings a config after {self._frozen_by} was built from this "
                             f"registry: import the module that registers it before taalm.ckl.config")
        if config is not None and self._configs.get(key, config) is not config:
            raise ValueError(f"{self.kind} section '{key}' already has the config {self._configs[key].__name__}")

        def deco(cls: type[T]) -> type[T]:
            if name in self._parts:
                raise ValueError(f"{self.kind} '{name}' is already registered")
            setattr(cls, "name", name)  # every part carries its registered name (T is any class or function)
            setattr(cls, "config_section", key if config is not None else None)
            self._parts[name] = cls
            if config is not None:
                self._configs[key] = config
            return cls

        return deco

    def configs(self) -> dict[str, type]:
        """Config section name -> the config dataclass registered for it (in registration order)."""
        return dict(self._configs)

    def freeze_configs(self, schema: str) -> None:
        """``schema`` was built from :meth:`configs`: refuse configs registered from now on."""
        self._frozen_by = self._frozen_by or schema

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


def import_submodules(package: str, path) -> None:
    """Import every module of a part folder, so that each file registers itself: a new part is
    one new file, with no import line to add (``import_submodules(__name__, __path__)``)."""
    import importlib
    import pkgutil

    for module in pkgutil.iter_modules(path):
        importlib.import_module(f"{package}.{module.name}")


def _first_sentence(doc: str) -> str:
    """The first sentence of a docstring's first paragraph, its lines joined (never cut mid-sentence)."""
    import re

    para = " ".join(line.strip() for line in doc.strip().split("\n\n")[0].splitlines())
    m = re.match(r"(.+?[.!?:])(\s+[A-Z(]|$)", para)
    return m.group(1) if m else para
