"""``lama-ckl-stream``: the tailored LAMA-ckl To-Learn units learned in P periods.

The first ``stream.n_units`` To-Learn units (the same units as ``taalm bench lama-ckl`` at that
size) are shuffled with ``stream.seed`` and cut into ``stream.periods`` near-equal periods (each
period keeps file order). Period i learns its units' evidence documents for ``train.epochs``
epochs; its probes are the units' probes (``data.probe_field``). The Not-To-Forget set is
``not_to_forget_<format>.jsonl`` beside them. Runs offline on the output of ``taalm data tailor``
(``--data DIR``) or on two unit files, as ``taalm bench lama-ckl`` (``--to-learn FILE --nf FILE``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from ...core.errors import ConfigError, InputError
from .base import (STREAM_BENCHMARKS, Period, StreamBenchmark, StreamConfig, StreamData, StreamOptions,
                   require_data_folder, sha256_file, stream_option)

_COMMON = ["train.lr=0.001", "stream.n_nf=0"]


@dataclass
class LamaCklStreamOptions(StreamOptions):
    """lama-ckl-stream's options (``stream.*``)."""

    to_learn: str = stream_option("", "To-Learn LAMA-ckl units (instead of --data; with --nf)", path=True,
                                  flag="--to-learn")
    nf: str = stream_option("", "Not-To-Forget LAMA-ckl units (instead of --data; with --to-learn)", path=True,
                            flag="--nf")
    periods: int = stream_option(4, "how many periods the To-Learn units are split into")
    n_units: int = stream_option(0, "To-Learn units used (the first N of the file; 0 = all)")
    n_nf: int = stream_option(0, "Not-To-Forget units (the first N; 0 = all)")

    def _rules(self, r) -> None:  # taalm.core.config.Rules: checked by load_config (and `taalm config`)
        r.at_least("periods", 1)
        for key in ("n_units", "n_nf"):
            r.at_least(key, 0)


@STREAM_BENCHMARKS.register("lama-ckl-stream", config=LamaCklStreamOptions)
class LamaCklStream(StreamBenchmark):
    """The tailored LAMA-ckl To-Learn units split into P periods, learned one after another."""

    sizes = {
        "smoke": ("2 periods of 2 units, 2 epochs each (seconds with a tiny model; CI)",
                  _COMMON + ["stream.periods=2", "stream.n_units=4", "train.epochs=2", "train.batch_size=2",
                             "train.max_length=128", "eval.batch_size=8"]),
        # SmolLM2-135M on the 2-core CPU: the lama-ckl `cpu` units and train settings; 4 x 50 units,
        # 6 epochs per period = 6 passes over the 200 units in all (lama-ckl cpu: 12), about
        # 14-25 min per method from lama-ckl cpu's measured 135-250 s per pass.
        "cpu": ("SmolLM2 on a 2-core CPU: 200 units in 4 periods of 50, 6 epochs each, batch 8, lr 1e-3",
                _COMMON + ["stream.periods=4", "stream.n_units=200", "train.epochs=6", "train.batch_size=8",
                           "train.max_length=256", "train.group_by_length=8", "eval.batch_size=32"]),
    }

    def files(self, cfg: StreamConfig) -> tuple[Path, Path]:
        """The (To-Learn, Not-To-Forget) unit files: ``stream.to_learn`` and ``stream.nf``, or
        those of the ``stream.data`` folder."""
        from ..lama_ckl import lama_ckl_files

        o = cfg.stream
        if o.to_learn or o.nf:
            if o.data:
                raise ConfigError("give either --data DIR or --to-learn FILE --nf FILE, not both", "stream.data")
            if not (o.to_learn and o.nf):
                raise ConfigError("give both unit files: --to-learn FILE --nf FILE (or --data DIR)",
                                  "stream.nf" if o.to_learn else "stream.to_learn")
            return Path(o.to_learn), Path(o.nf)
        fmt = cfg.data.probe_field.removeprefix("task_")
        if fmt not in ("descriptive", "schematic"):
            raise ConfigError("data.probe_field must be task_descriptive or task_schematic for LAMA-ckl units",
                              "data.probe_field")
        return lama_ckl_files(require_data_folder(cfg, "a `taalm data tailor` output folder, or --to-learn FILE --nf FILE"), fmt)

    def load(self, cfg: StreamConfig) -> StreamData:
        from ...data import read_documents, read_probes
        from ..lama_ckl import check_lama_units

        to_learn, nf_file = self.files(cfg)
        field_ = cfg.data.probe_field
        for path in (to_learn, nf_file):
            check_lama_units(path, field_)
        docs, probes = read_documents(to_learn), read_probes(to_learn, field_)
        if len(docs) != len(probes) or any(d.id != p.id for d, p in zip(docs, probes)):
            raise InputError("To-Learn rows must be LAMA-ckl units: documents and probes do not pair up", to_learn)
        nf = read_probes(nf_file, field_)
        o = cfg.stream
        n = len(docs) if o.n_units == 0 else min(o.n_units, len(docs))
        P = o.periods
        if not 1 <= P <= n:
            raise ConfigError(f"stream.periods must be between 1 and the {n} units used, got {P}", "stream.periods")
        notes = [f"note: To-Learn file has {len(docs)} units (< {o.n_units} asked): using all of them"] \
            if o.n_units > len(docs) else []
        order = list(range(n))
        random.Random(f"{o.seed}:periods").shuffle(order)
        periods = []
        for i in range(P):
            idx = sorted(order[i * n // P:(i + 1) * n // P])
            periods.append(Period(f"p{i + 1}", [docs[k] for k in idx], {"to_learn": [probes[k] for k in idx]}))
        nf = nf[:o.n_nf] if o.n_nf else nf
        info = {"to_learn": {"path": str(to_learn.resolve()), "sha256": sha256_file(to_learn), "n": n,
                             "periods": [[d.id for d in p.documents] for p in periods]},
                "not_to_forget": {"path": str(nf_file.resolve()), "sha256": sha256_file(nf_file), "n": len(nf)},
                "probe_field": field_}
        return StreamData(periods, "to_learn", {"nf": nf}, info, notes)

    def prepare_methods(self, methods: list[str], cfg: StreamConfig) -> None:
        from ..methods import set_replay_pool

        to_learn, nf_file = self.files(cfg)
        set_replay_pool(methods, cfg, to_learn, nf_file)
