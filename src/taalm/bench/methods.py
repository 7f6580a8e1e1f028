"""The methods a benchmark runs (``--methods``): each checked before anything runs, its replay
pool settled, and what its configuration does not pin down recorded."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from ..ckl.config import LearnConfig
from ..core.errors import ConfigError, InputError

def with_method_name(cfg: LearnConfig, name: str) -> LearnConfig:
    lc = cfg.learn_config()
    lc.method.name = name
    return lc


def check_methods(methods: Iterable[str], cfg: LearnConfig, documents) -> list[str]:
    from ..ckl.learner import check_documents
    from ..ckl.method import resolve_method, split_method_name
    from ..ckl.weighting import available_methods
    from ..ckl.method import get_method

    methods = [m.strip() for m in methods if m and m.strip()]
    if not methods:
        raise ConfigError(f"no methods given (available: {', '.join(available_methods())})")
    dup = sorted({m for m in methods if methods.count(m) > 1})
    if dup:
        raise ConfigError(f"method listed twice: {', '.join(dup)}")
    for m in methods:  # every part known and compatible, φ checkpoint present, answers found
        lc = split_method_name(with_method_name(cfg, m))  # "kadapter" = finetune+kadapter
        resolve_method(lc)
        check_documents(documents, get_method(lc.method, cfg.train.seed))
    return methods


def set_replay_pool(methods: list[str], cfg: LearnConfig, to_learn: Path, not_to_forget: Path) -> None:
    """Methods whose data stream replays documents (``DataStream.replays``: ``mixreview``) replay
    documents that are in neither the To-Learn nor the NF file: the stream's ``pool`` setting
    (``train.<stream>.pool``), by default the ``phi_pool.jsonl`` that ``taalm data tailor`` wrote
    beside them. Disjointness by uuid is checked (an InputError if they overlap)."""
    from ..ckl.method import split_method_name
    from ..ckl.streams import STREAMS

    streams = {m: STREAMS.get(split_method_name(with_method_name(cfg, m)).train.stream) for m in methods}
    uses = [m for m, s in streams.items() if s.replays]
    for section in sorted({streams[m].config_section for m in uses}):
        _set_pool(uses, getattr(cfg.train, section), f"train.{section}.pool", to_learn, not_to_forget)


def _set_pool(uses: list[str], options, key: str, to_learn: Path, not_to_forget: Path) -> None:
    """One replaying stream's ``pool``: given, or the tailored ``phi_pool.jsonl``; disjoint from
    the evaluation units."""
    pool = Path(options.pool) if options.pool else to_learn.parent / "phi_pool.jsonl"
    if not pool.is_file():
        raise InputError(f"methods {', '.join(uses)} replay documents: no {key} given and no "
                         f"phi_pool.jsonl beside the To-Learn file", pool)
    from ..data import jsonl_rows

    held_out = {str(r.get("uuid")) for f in (to_learn, not_to_forget) for _, r in jsonl_rows(f) if r.get("uuid")}
    overlap = sorted({str(r["uuid"]) for line, r in jsonl_rows(pool) if r.get("uuid")} & held_out)
    if overlap:
        raise InputError(f"{len(overlap)} replay units are To-Learn or Not-To-Forget units (e.g. uuid {overlap[0]}): "
                         "the replay pool must not be the evaluation set", pool)
    options.pool = str(pool)


def method_info(lc: LearnConfig) -> dict:
    """What a method's config does not pin down by itself (its weighting's
    :meth:`~taalm.ckl.weighting.WeightingMethod.provenance`: for ``taalm``, which φ ran)."""
    from ..ckl.method import get_method

    return get_method(lc.method, lc.train.seed).provenance()


__all__ = ["with_method_name", "check_methods", "set_replay_pool", "method_info"]
