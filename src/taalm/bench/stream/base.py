"""What a stream benchmark is: periods of documents and probes, the options, and the registry.

A stream is a list of :class:`Period`. Each period has documents to learn and named probe sets
(``{"to_learn": [...]}``; TemporalWiki: ``{"changed": [...], "unchanged": [...]}``). One set is
the stream's *primary* set: its matrix acc[i][j] gives learning, forgetting and transfer. The
stream's Not-To-Forget sets (``nf``) are scored after every period too. A stream benchmark is one
registered class that turns a data folder and the configuration into a :class:`StreamData`;
the runner (:mod:`taalm.bench.stream.runner`) does the rest, the same for every stream.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields, make_dataclass
from pathlib import Path

from ...ckl.config import LearnConfig
from ...core.errors import ConfigError
from ...core.registry import Registry
from ..folders import sha256_file  # noqa: F401  (the streams' input fingerprints)


@dataclass
class Period:
    name: str  # e.g. "p1" or "0901-1001"
    documents: list  # taalm.data.Document: what θ learns in this period
    probes: dict[str, list]  # set name -> taalm.data.Probe list, scored after every period


@dataclass
class StreamData:
    periods: list[Period]
    primary: str  # the probe set of the matrix (learning, forgetting, BWT, FWT)
    nf: dict[str, list] = field(default_factory=dict)  # Not-To-Forget sets, scored after every period
    info: dict = field(default_factory=dict)  # input paths, sha256, counts, ids: recorded and compared
    notes: list[str] = field(default_factory=list)  # said once everything is validated


def stream_option(default, help: str, *, path: bool = False, flag: str = ""):
    """A stream option: its help; ``path=True``: an input path (not compared on a rerun: its
    files' fingerprints are); ``flag``: a command-line flag of ``taalm bench stream`` that sets
    it (``--diffsets DIR`` = ``stream.diffsets=DIR``), declared here by the stream, not in the CLI."""
    return field(default=default, metadata={"help": help, "path": path, "flag": flag})


@dataclass
class StreamOptions:
    """The stream's settings (``stream.*`` keys).

    These are the options every stream has; a stream adds its own by registering a subclass:
    ``@STREAM_BENCHMARKS.register("name", config=ItsOptions)``."""

    data: str = stream_option("", "the stream's data folder (--data)", path=True, flag="--data")
    seed: int = stream_option(0, "seed of the stream's split into periods and of any subsets")


@dataclass
class StreamConfig(LearnConfig):
    """The learner's configuration (every :class:`LearnConfig` key) plus ``stream.*``: the
    options every stream has (:class:`StreamOptions`); each stream's own schema is
    :func:`stream_config_class`."""

    stream: StreamOptions = field(default_factory=StreamOptions)

    def learn_config(self) -> LearnConfig:
        """The part the learner sees (``method.name`` is set per method)."""
        return LearnConfig(**{f.name: copy.deepcopy(getattr(self, f.name)) for f in fields(LearnConfig)})


class StreamBenchmark:
    """One registered stream: its size presets and how it reads its data.

    ``sizes``: name -> (description, ``key=value`` overrides applied before the user's)."""

    name = ""
    sizes: dict[str, tuple[str, list[str]]] = {}

    def load(self, cfg: StreamConfig) -> StreamData:
        raise NotImplementedError

    def prepare_methods(self, methods: list[str], cfg: StreamConfig) -> None:
        """Settle method options that depend on the data (e.g. a replay pool); default: nothing."""


#: the stream benchmarks (``taalm bench stream NAME``); not the learner's data streams
#: (:data:`taalm.ckl.streams.STREAMS`, ``train.stream``)
STREAM_BENCHMARKS: Registry[StreamBenchmark] = Registry("stream benchmark", "stream")


def stream_options_class(name: str) -> type:
    """The options dataclass of the stream ``name``: the one it registered (a subclass of
    :class:`StreamOptions`), or :class:`StreamOptions` for a stream without options of its own."""
    cls = STREAM_BENCHMARKS.get(name)
    section = getattr(cls, "config_section", None)
    opts = STREAM_BENCHMARKS.configs()[section] if section else StreamOptions
    if not (isinstance(opts, type) and issubclass(opts, StreamOptions)):
        raise TypeError(f"stream benchmark '{name}': its config {opts!r} must subclass StreamOptions")
    return opts


_CONFIG_CLASSES: dict[type, type] = {}


def stream_config_class(name: str) -> type:
    """The schema of the stream ``name``: :class:`StreamConfig` whose ``stream`` section is the
    stream's options (so ``stream.diffsets`` is a key of temporalwiki only)."""
    opts = stream_options_class(name)
    if opts is StreamOptions:
        return StreamConfig
    if opts not in _CONFIG_CLASSES:
        built = make_dataclass(f"StreamConfig[{name}]".replace("[", "_").replace("]", "").replace("-", "_"),
                               [("stream", opts, field(default_factory=opts))], bases=(StreamConfig,))
        built.__module__, built.__doc__ = __name__, StreamConfig.__doc__
        _CONFIG_CLASSES[opts] = built
    return _CONFIG_CLASSES[opts]


def all_streams_config() -> type:
    """Every stream's options in one schema (``taalm config --for bench-stream``): the shared
    keys and each registered stream's own, each stream's rules applied."""
    shared = {f.name for f in fields(StreamOptions)}
    own: dict[str, tuple[type, list[str]]] = {}  # key -> (its options class, the streams that have it)
    rule_fns: list = []
    for name in STREAM_BENCHMARKS.names():
        cls = stream_options_class(name)
        for f in fields(cls):
            if f.name not in shared:
                own.setdefault(f.name, (cls, []))[1].append(name)
        for k in cls.__mro__:
            if (fn := k.__dict__.get("_rules")) is not None and fn not in rule_fns:
                rule_fns.append(fn)
    specs = []
    for key, (cls, streams) in own.items():
        f = next(x for x in fields(cls) if x.name == key)
        meta = {**f.metadata, "help": f"{', '.join(streams)}: {f.metadata.get('help', '')}"}
        specs.append((key, f.type, field(default=f.default, metadata=meta)))

    def _rules(self, r) -> None:
        for fn in rule_fns:
            fn(self, r)

    opts = make_dataclass("AllStreamOptions", specs, bases=(StreamOptions,), namespace={"_rules": _rules})
    opts.__module__, opts.__doc__ = __name__, StreamOptions.__doc__
    built = make_dataclass("AllStreamsConfig", [("stream", opts, field(default_factory=opts))], bases=(StreamConfig,))
    built.__module__, built.__doc__ = __name__, StreamConfig.__doc__
    return built


def stream_flags(name: str) -> dict[str, str]:
    """The command-line flags the stream ``name`` declares: flag -> its ``stream.*`` key."""
    return {f.metadata["flag"]: f"stream.{f.name}" for f in fields(stream_options_class(name))
            if f.metadata.get("flag")}


def input_path_keys(cfg: StreamConfig) -> list[str]:
    """The stream options that are input paths (their files' fingerprints are what is compared)."""
    return [f.name for f in fields(cfg.stream) if f.metadata.get("path")]


def seeded_subset(n_total: int, n: int, seed: int, what: str) -> list[int]:
    """``n`` of ``range(n_total)`` drawn with ``seed`` (file order kept); all when n is 0 or ≥ n_total."""
    import random

    if n <= 0 or n >= n_total:
        return list(range(n_total))
    return sorted(random.Random(f"{seed}:{what}").sample(range(n_total), n))


def require_data_folder(cfg: StreamConfig, what: str) -> Path:
    if not cfg.stream.data:
        raise ConfigError(f"say where the data is: --data DIR ({what})", "stream.data")
    return Path(cfg.stream.data)
