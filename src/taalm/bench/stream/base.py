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
from dataclasses import dataclass, field, fields
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


@dataclass
class StreamOptions:
    """The stream's own settings (``stream.*`` keys)."""

    data: str = field(default="", metadata={"help": "the stream's data folder (--data)"})
    periods: int = field(default=4, metadata={"help": "lama-ckl-stream: how many periods the To-Learn units are split into"})
    n_units: int = field(default=0, metadata={"help": "lama-ckl-stream: To-Learn units used (the first N of the file; 0 = all)"})
    n_nf: int = field(default=0, metadata={"help": "Not-To-Forget units (the first N; 0 = all)"})
    seed: int = field(default=0, metadata={"help": "seed of the split into periods and of any subsets"})
    diffsets: str = field(default="", metadata={"help": "temporalwiki: folder of the monthly Wikipedia diff sets (CSV `text` column or JSONL `text`)"})
    min_chars: int = field(default=50, metadata={"help": "temporalwiki: keep diff-set passages of at least this many characters (the release's filter)"})
    min_letters: float = field(default=0.3, metadata={"help": "temporalwiki: ... and at least this fraction of letters (the release's filter)"})
    max_documents: int = field(default=0, metadata={"help": "documents per period (a seeded subset; 0 = all)"})
    max_probes: int = field(default=0, metadata={"help": "probes per probe set (a seeded subset; 0 = all)"})

    def _rules(self, r) -> None:  # taalm.core.config.Rules: checked by load_config (and `taalm config`)
        r.at_least("periods", 1)
        for key in ("n_units", "n_nf", "max_documents", "max_probes", "min_chars"):
            r.at_least(key, 0)
        r.finite("min_letters", 0.0, 1.0)


@dataclass
class StreamConfig(LearnConfig):
    """The learner's configuration (every :class:`LearnConfig` key) plus ``stream.*``."""

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


STREAMS: Registry[StreamBenchmark] = Registry("stream benchmark", "stream")


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
