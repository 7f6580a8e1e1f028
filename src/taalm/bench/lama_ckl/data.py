"""LAMA-ckl's inputs: two unit files (To-Learn, Not-To-Forget), checked, subset and fingerprinted."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from ...core.errors import ConfigError, InputError
from ..folders import sha256_file
from .config import PROBE_FORMATS, LamaCklConfig, probe_format_of

def lama_ckl_files(data_dir: str | Path, probe_format: str = "descriptive") -> tuple[Path, Path]:
    """``(to_learn.jsonl, not_to_forget_<format>.jsonl)`` of a folder written by ``taalm data tailor``."""
    if probe_format not in PROBE_FORMATS:
        raise ConfigError(f"unknown probe format '{probe_format}' (use {' or '.join(PROBE_FORMATS)})")
    d = Path(data_dir)
    if not d.is_dir():
        raise InputError("not a folder (expected the output of `taalm data tailor`)", d)
    files = (d / "to_learn.jsonl", d / f"not_to_forget_{probe_format}.jsonl")
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise InputError(f"missing {', '.join(missing)} (expected the output of `taalm data tailor`)", d)
    return files


@dataclass
class LamaCklData:
    documents: list  # To-Learn documents (evidence, answer = object)
    probes: list  # To-Learn probes (same units, same order)
    nf_probes: list
    info: dict  # paths, fingerprints, counts, selected ids
    notes: list[str] = field(default_factory=list)  # said once everything is validated


LAMA_UNIT_FIELDS = ("evidence", "object", "uuid")


def load_lama_ckl(to_learn: str | Path, not_to_forget: str | Path, cfg: LamaCklConfig) -> LamaCklData:
    """Read and subset both files; every problem names file, line and field."""
    from ...data import read_documents, read_probes

    to_learn, not_to_forget = Path(to_learn), Path(not_to_forget)
    field_ = cfg.data.probe_field
    for path in (to_learn, not_to_forget):
        check_lama_units(path, field_)
    docs = read_documents(to_learn)
    probes = read_probes(to_learn, field_)
    if len(docs) != len(probes) or any(d.id != p.id for d, p in zip(docs, probes)):
        raise InputError("To-Learn rows must be LAMA-ckl units (evidence, object, "
                         f"{field_}, uuid): documents and probes do not pair up", to_learn)
    nf = read_probes(not_to_forget, field_)
    notes = []
    other = "schematic" if probe_format_of(cfg) == "descriptive" else "descriptive"
    if other in not_to_forget.name:
        notes.append(f"warning: probe format is {probe_format_of(cfg)} but the NF file is {not_to_forget.name}")
    b = cfg.bench
    ti = _subset(len(docs), b.n_to_learn, b.subset, b.seed, "to_learn")
    ni = _subset(len(nf), b.n_nf, b.subset, b.seed, "nf")
    for want, have, name in ((b.n_to_learn, len(docs), "To-Learn"), (b.n_nf, len(nf), "NF")):
        if want > have:
            notes.append(f"note: {name} file has {have} units (< {want} asked): using all of them")
    docs, probes, nf = [docs[i] for i in ti], [probes[i] for i in ti], [nf[i] for i in ni]
    info = {
        "to_learn": {"path": str(to_learn.resolve()), "sha256": sha256_file(to_learn), "n": len(docs),
                     "ids": [d.id for d in docs]},
        "not_to_forget": {"path": str(not_to_forget.resolve()), "sha256": sha256_file(not_to_forget),
                          "n": len(nf), "ids": [p.id for p in nf]},
        "probe_field": field_,
        "subset": b.subset,
    }
    return LamaCklData(docs, probes, nf, info, notes)


def check_lama_units(path: Path, probe_field: str) -> None:
    """The first row of ``path`` must be a LAMA-ckl unit; say so plainly when it is not."""
    from ...data import jsonl_rows

    rows = jsonl_rows(path)  # names file and line for missing files, bad JSON, arrays
    line, row = rows[0]
    missing = [f for f in LAMA_UNIT_FIELDS + (probe_field,) if f not in row]
    if missing:
        raise InputError(f"not LAMA-ckl units (a unit has {', '.join(LAMA_UNIT_FIELDS + (probe_field,))}; "
                         f"this row lacks {', '.join(missing)})", path, line)


def _subset(n_total: int, n: int, how: str, seed: int, stream: str) -> list[int]:
    if n <= 0 or n >= n_total:
        return list(range(n_total))
    if how == "first":
        return list(range(n))
    return sorted(random.Random(f"{seed}:{stream}").sample(range(n_total), n))  # file order kept


__all__ = ["lama_ckl_files", "LamaCklData", "LAMA_UNIT_FIELDS", "load_lama_ckl", "check_lama_units"]
