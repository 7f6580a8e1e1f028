"""``temporalwiki``: the TemporalWiki stream (Jang et al., EMNLP 2022) as the TAALM paper runs it.

Three monthly periods. Period ``0901-1001`` learns the Wikipedia diff set ``0910`` (passages that
changed between the 2021-09 and 2021-10 snapshots) for one epoch, θ carried over; then
``1001-1101`` with ``1011`` and ``1101-1201`` with ``1112``. After each period, every period's
CHANGED and UNCHANGED probes are scored in the schematic text the paper uses::

    Guess the object. ⏎  subject is S , relation is R , object is O      (⏎ = a newline)

(object-token accuracy, NLL and perplexity = exp of the mean NLL). CHANGED is the primary set.

Inputs (read by path; nothing is fetched):

* ``--data DIR``: the probes, ``DIR/[probes/]<period>_changed.jsonl`` and ``_unchanged.jsonl``
  (JSONL ``{"subject", "relation", "object"}``) or ``.csv`` with the header ``subject,relation,object``;
* ``stream.diffsets=DIR``: the diff sets, one file per month whose name holds its code
  (``wikipedia_0910_gpt2.csv``, ...): the official CSV (a ``text`` column) or JSONL ``{"text"}``.
  Passages are kept with the release's filter: at least ``stream.min_chars`` (50) characters of
  which at least ``stream.min_letters`` (30%) are letters.
"""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass
from pathlib import Path

from ...core.errors import ConfigError, InputError
from .base import (STREAM_BENCHMARKS, Period, StreamBenchmark, StreamConfig, StreamData, StreamOptions,
                   require_data_folder, seeded_subset, sha256_file, stream_option)

PERIODS = (("0901-1001", "0910"), ("1001-1101", "1011"), ("1101-1201", "1112"))  # probes, diff set
SETS = ("changed", "unchanged")
WHERE = ("the TemporalWiki release (github.com/joeljang/temporalwiki, TWiki_Diffsets/"
         "wikipedia_MMDD_gpt2.csv)")


def schematic_text(subject: str, relation: str, obj: str) -> str:
    """The probe text the paper scores (the object is its last words)."""
    return f"Guess the object. \n  subject is {subject} , relation is {relation} , object is {obj}"


def keep_passage(text: str, min_chars: int = 50, min_letters: float = 0.3) -> bool:
    """The release's filter of diff-set passages: long enough and mostly text (not tables/markup)."""
    text = text.strip()
    return len(text) >= min_chars and sum(c.isalpha() for c in text) >= min_letters * len(text)


def _csv_rows(path: Path) -> list[tuple[int, dict]]:
    """``(line, row)`` of a CSV file with a header; a missing file or header names the file. Read
    strictly: a stray quote (one that opens a quoted field which then does not end where a field
    ends) would silently merge the rows up to the next quote; it is an error naming the line where
    that row starts, as is a row with more or fewer fields than the header."""
    from ...data.records import read_lines

    read_lines(path)  # file found, a regular file, UTF-8, not empty: else an InputError naming it
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # Wikipedia passages exceed the 128 KiB default
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh, strict=True)
        header = reader.fieldnames or []  # reads the header line
        rows = []
        while True:
            start = reader.line_num + 1  # a quoted field may span lines: a row's line is where it starts
            try:
                row = next(reader)
            except StopIteration:
                return rows
            except csv.Error as e:
                raise InputError(f"not valid CSV ({e}; a stray quote in this row? it would merge the rows up to "
                                 f"the next quote)", path, start) from None
            if None in row or None in row.values():
                n = len(header) + len(row.get(None) or []) - sum(v is None for v in row.values())  # type: ignore
                raise InputError(f"{n} fields, the header has {len(header)} (a comma outside quotes, or a stray "
                                 f"quote?)", path, start)
            rows.append((start, row))


def _rows(path: Path) -> list[tuple[int, dict]]:
    from ...data import jsonl_rows

    return _csv_rows(path) if path.suffix.lower() == ".csv" else jsonl_rows(path)


def read_triples(path: Path, tag: str) -> list:
    """TemporalWiki probes (JSONL or CSV ``subject,relation,object``) as schematic probes."""
    from ...data.records import make_probe, string_field

    probes = []
    for line, row in _rows(path):
        s, r, o = (string_field(row, k, path, line) for k in ("subject", "relation", "object"))
        probes.append(make_probe(schematic_text(s, r, o), o, id=f"{tag}:{line}", source=f"{path}:{line}"))
    return probes


def read_diffset(path: Path, code: str, min_chars: int, min_letters: float) -> tuple[list, int]:
    """The kept passages of one diff set as documents, and how many rows were read."""
    from ...data import Document

    rows = _rows(path)
    if rows and "text" not in rows[0][1]:
        raise InputError(f"no `text` column (the official diff sets have one; found {', '.join(map(str, rows[0][1]))})",
                         path, rows[0][0])
    docs = []
    for line, row in rows:
        text = row.get("text")
        if text is not None and not isinstance(text, str):
            raise InputError(f"must be a string, got {type(text).__name__}", path, line, "text")
        if text and keep_passage(text, min_chars, min_letters):
            docs.append(Document(text.strip(), id=f"{code}:{line}", source=f"{path}:{line}"))
    return docs, len(rows)


def _find(folder: Path, stem: str, what: str) -> Path:
    """The one ``.jsonl``/``.csv`` file of ``folder`` (or ``folder/probes``) named for ``stem``."""
    hits = sorted(p for d in (folder, folder / "probes") if d.is_dir() for p in d.iterdir()
                  if p.suffix.lower() in (".jsonl", ".csv") and stem in p.stem)
    if not hits:
        raise InputError(f"no {what} file for {stem} (*{stem}*.jsonl or .csv)", folder)
    if len(hits) > 1:
        raise InputError(f"{len(hits)} files match {stem}: {', '.join(p.name for p in hits)}; keep one", folder)
    return hits[0]


@dataclass
class TemporalWikiOptions(StreamOptions):
    """temporalwiki's options (``stream.*``)."""

    diffsets: str = stream_option("", "folder of the monthly Wikipedia diff sets (CSV `text` column or JSONL `text`)",
                                  path=True, flag="--diffsets")
    min_chars: int = stream_option(50, "keep diff-set passages of at least this many characters (the release's filter)")
    min_letters: float = stream_option(0.3, "... and at least this fraction of letters (the release's filter)")
    max_documents: int = stream_option(0, "documents per period (a seeded subset; 0 = all)")
    max_probes: int = stream_option(0, "probes per probe set (a seeded subset; 0 = all)")

    def _rules(self, r) -> None:  # taalm.core.config.Rules: checked by load_config (and `taalm config`)
        for key in ("max_documents", "max_probes", "min_chars"):
            r.at_least(key, 0)
        r.finite("min_letters", 0.0, 1.0)


@STREAM_BENCHMARKS.register("temporalwiki", config=TemporalWikiOptions)
class TemporalWiki(StreamBenchmark):
    """TemporalWiki: three monthly Wikipedia diff sets learned one after another, scored on CHANGED and UNCHANGED facts."""

    sizes = {
        "smoke": ("a few passages and probes per period, 1 epoch (seconds with a tiny model; tests)",
                  ["train.epochs=1", "train.batch_size=2", "train.max_length=128", "stream.max_documents=4",
                   "stream.max_probes=4", "eval.batch_size=8", "train.lr=0.001"]),
        # one epoch per period as the paper; 400 passages and 300 probes per set per period on a 2-core CPU
        "cpu": ("SmolLM2 on a 2-core CPU: 400 passages and 300 probes per set per period, 1 epoch, lr 1e-3",
                ["train.epochs=1", "train.batch_size=8", "train.max_length=256", "stream.max_documents=400",
                 "stream.max_probes=300", "eval.batch_size=32", "train.lr=0.001"]),
        # the paper's protocol: every passage and probe, one epoch per period, its CKL batch and lr
        "paper": ("the paper's protocol: all passages and probes, 1 epoch per period, batch 16 x 4, lr 1e-4",
                  ["train.epochs=1", "train.batch_size=16", "train.grad_accum=4", "train.lr=0.0001",
                   "train.max_length=512", "eval.batch_size=64"]),
    }

    def load(self, cfg: StreamConfig) -> StreamData:
        o = cfg.stream
        folder = require_data_folder(cfg, "the TemporalWiki probes, e.g. ../shared/data/temporalwiki")
        if not folder.is_dir():
            raise InputError("not a folder (expected the TemporalWiki probes)", folder)
        if not o.diffsets:
            raise ConfigError("temporalwiki learns the monthly Wikipedia diff sets, which are not shipped: pass "
                              f"stream.diffsets=DIR holding wikipedia_0910/1011/1112 (.csv `text` or .jsonl) from {WHERE}",
                              "stream.diffsets")
        diff_dir = Path(o.diffsets)
        if not diff_dir.is_dir():
            raise InputError(f"not a folder (expected the diff sets from {WHERE})", diff_dir)
        files = {p: (_find(diff_dir, code, "diff set"), {s: _find(folder, f"{p}_{s}", "probe") for s in SETS})
                 for p, code in PERIODS}  # every file found before any is read
        periods, info, notes = [], {"periods": {}}, []
        for (p, code), (diff, probe_files) in zip(PERIODS, files.values()):
            docs, n_rows = read_diffset(diff, code, o.min_chars, o.min_letters)
            if not docs:
                raise InputError(f"no passage of {o.min_chars}+ characters with {o.min_letters:.0%}+ letters", diff)
            docs = [docs[i] for i in seeded_subset(len(docs), o.max_documents, o.seed, f"docs:{p}")]
            sets = {}
            for s, path in probe_files.items():
                probes = read_triples(path, f"{p}:{s}")
                sets[s] = [probes[i] for i in seeded_subset(len(probes), o.max_probes, o.seed, f"{p}:{s}")]
            periods.append(Period(p, docs, sets))
            info["periods"][p] = {"diffset": {"path": str(diff.resolve()), "sha256": sha256_file(diff),
                                              "rows": n_rows, "documents": len(docs)},
                                  **{s: {"path": str(f.resolve()), "sha256": sha256_file(f), "n": len(sets[s])}
                                     for s, f in probe_files.items()}}
            notes.append(f"{p}: {len(docs)} passages of {diff.name} ({n_rows} rows read; kept: {o.min_chars}+ chars, "
                         f"{o.min_letters:.0%}+ letters), probes {', '.join(f'{len(v)} {k}' for k, v in sets.items())}")
        return StreamData(periods, "changed", {}, info, notes)
