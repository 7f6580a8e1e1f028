"""Stream benchmarks (``taalm bench stream NAME``): θ learns period after period; after each,
every period's probes and the Not-To-Forget set are scored (acc[i][j], forgetting, BWT).

A new stream is one file here that registers a :class:`~taalm.bench.stream.base.StreamBenchmark`
(its size presets and its ``load``), imported below, plus its test."""

from .base import STREAMS, Period, StreamBenchmark, StreamConfig, StreamData, StreamOptions
from . import lama_ckl_stream, temporalwiki  # noqa: F401  (register the streams)
from .metrics import perplexity, stream_metrics
from .runner import matrices, resolve_stream_config, run_stream

__all__ = ["STREAMS", "Period", "StreamBenchmark", "StreamConfig", "StreamData", "StreamOptions",
           "stream_metrics", "perplexity", "run_stream", "resolve_stream_config", "matrices"]
