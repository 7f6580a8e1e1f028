"""Stream benchmarks (``taalm bench stream NAME``): θ learns period after period; after each,
every period's probes and the Not-To-Forget set are scored (acc[i][j], forgetting, BWT).

A new stream is one file here that registers a :class:`~taalm.bench.stream.base.StreamBenchmark`
(its size presets and its ``load``) with its own options, a subclass of
:class:`~taalm.bench.stream.base.StreamOptions`::

    @STREAM_BENCHMARKS.register("mine", config=MineOptions)
    class Mine(StreamBenchmark): ...

plus its test: every file of this folder is imported (no line to add); its options are the
``stream.*`` keys of that stream (a field's ``flag`` makes it a flag of ``taalm bench stream``)."""

from .base import (STREAM_BENCHMARKS, Period, StreamBenchmark, StreamConfig, StreamData, StreamOptions,
                   all_streams_config, stream_config_class, stream_flags, stream_option)
from .metrics import perplexity, stream_metrics
from .runner import matrices, resolve_stream_config, run_stream

__all__ = ["STREAM_BENCHMARKS", "Period", "StreamBenchmark", "StreamConfig", "StreamData", "StreamOptions",
           "stream_option", "stream_config_class", "stream_flags", "all_streams_config", "AllStreamsConfig",
           "stream_metrics", "perplexity", "run_stream", "resolve_stream_config", "matrices"]

from ...core.registry import import_submodules  # noqa: E402

import_submodules(__name__, __path__)  # every stream file registers itself


def __getattr__(name: str):
    if name == "AllStreamsConfig":  # `taalm config --for bench-stream`: every registered stream's options
        return all_streams_config()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
