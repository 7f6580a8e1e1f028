"""The "kept" probe set: what the base model already knew, measured before and after it learns.

Continual knowledge learning is judged on two sides (SPEC §4, LAMA-ckl): new facts *learned*
(To-Learn accuracy) and old knowledge *kept* (NF accuracy, "not to forget"); their sum is the
paper's Total Knowledge. A user's own run has no NF set, so every run measures one: by default
the built-in general facts (``keep_data/general_facts.jsonl``: capitals, languages, authors,
planets, ... written by us) that the base model already answers, selected for that model at the
start of the run (one teacher-forced pass over 269 short sentences, a few seconds on a CPU), so
"kept" starts at 1.0 and falls as learning overwrites what the model knew. A user may give their
own probe file instead (``data.kept=PATH``), or turn it off (``data.kept=none``).

Selection keeps a probe when the base model predicts every answer token (exact match), at most
:data:`KEEP_LIMIT`, spread over the kinds of fact (the id's prefix) in the file's order.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from ..data import Probe, read_probes
from .probes import evaluate_probes

KEEP_LIMIT = 100  # probes in the built-in kept set (evaluation cost per epoch stays small)
KEEP_CHOICES = ("builtin", "none")  # data.kept: these words, or a probe file's path


def general_facts_file() -> Path:
    return Path(str(resources.files("taalm") / "keep_data" / "general_facts.jsonl"))


def general_facts() -> list[Probe]:
    """The built-in candidates (269 general-knowledge sentences)."""
    return read_probes(general_facts_file())


def select_known(model, tokenizer, probes: list[Probe], limit: int = KEEP_LIMIT,
                 batch_size: int = 32) -> list[Probe]:
    """The probes ``model`` answers exactly (every answer token its argmax), at most ``limit``,
    taken round-robin over the kinds of fact (the id's part before the first '-') so that no kind
    fills the set."""
    scores = evaluate_probes(model, tokenizer, probes, batch_size).per_probe
    known = [p for p, s in zip(probes, scores) if s.exact == 1.0]
    kinds: dict[str, list[Probe]] = {}
    for p in known:
        kinds.setdefault(p.id.split("-")[0], []).append(p)
    chosen: list[Probe] = []
    queues = list(kinds.values())
    while len(chosen) < limit and any(queues):
        for q in queues:
            if q and len(chosen) < limit:
                chosen.append(q.pop(0))
    return chosen


def outcome(row: dict, before: dict | None = None) -> dict:
    """CKL's two sides of one evaluation row (a learner history row): ``learned`` (the run's
    probes: accuracy, and ``learned_exact`` match), ``kept`` (the kept set, with ``kept_exact``
    and ``kept_before`` from ``before``), and ``total`` = learned + kept (the paper's Total
    Knowledge); ``val`` where a validation set was scored. Keys only for what the row holds."""
    out: dict = {"epoch": row.get("epoch")}
    if "accuracy" in row:
        out.update(learned=row["accuracy"], learned_exact=row.get("exact"))
    if isinstance(row.get("kept"), dict):
        out.update(kept=row["kept"]["accuracy"], kept_exact=row["kept"].get("exact"))
        if before is not None and isinstance(before.get("kept"), dict):
            out["kept_before"] = before["kept"]["accuracy"]
    if "learned" in out and "kept" in out:
        out["total"] = out["learned"] + out["kept"]
    if isinstance(row.get("val"), dict):
        out["val"] = row["val"]["accuracy"]
    return out


def keep_probes(spec: str, model, tokenizer, probe_field: str = "task_descriptive") -> list[Probe]:
    """The kept set ``data.kept`` names for ``model``: ``builtin`` (the general facts it
    answers), ``none`` (an empty list) or a probe file's path (read as ``--probes`` is)."""
    if spec == "none":
        return []
    if spec == "builtin":
        return select_known(model, tokenizer, general_facts())
    return read_probes(spec, probe_field)


__all__ = ["KEEP_LIMIT", "KEEP_CHOICES", "general_facts", "general_facts_file", "select_known", "keep_probes",
           "outcome"]
