"""Checks of what a stream benchmark wrote (``<method>/result.json``, ``scores/row-NN.json``):
pure functions on parsed JSON that say what is wrong, or None. Read by ``taalm report`` and by
the stream runner when it continues a folder."""

from __future__ import annotations

import math


METRIC_KEYS = ("mean_learning", "mean_forgetting", "bwt", "fwt", "final_acc")  # what tables print


def _finite(x, low: float | None = None, high: float | None = None) -> bool:
    ok = isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
    return ok and (low is None or x >= low) and (high is None or x <= high)


def _nll(x) -> bool:
    """A mean NLL as written: a finite number >= 0, or null (it was NaN/Inf: a diverged model)."""
    return x is None or _finite(x, 0.0)


def stream_result_problem(r) -> str | None:
    """What is wrong with a stream ``result.json``'s object (None: nothing): its periods, each
    set's (P+1) x P accuracy matrix (finite, in [0, 1]), the metrics the tables and plots show
    (finite numbers, or null where undefined), its NF rows and its wall time."""
    if not isinstance(r, dict):
        return f"a JSON {type(r).__name__}, not an object"
    periods, sets = r.get("periods"), r.get("sets")
    if not isinstance(periods, list) or not periods or not all(isinstance(p, str) for p in periods):
        return "'periods' is not a non-empty list of names"
    if not isinstance(sets, dict) or r.get("primary") not in sets or not isinstance(sets[r["primary"]], dict):
        return "'sets' does not hold the 'primary' set"
    P = len(periods)
    for name, s in sets.items():
        R = s.get("accuracy") if isinstance(s, dict) else None
        if not (isinstance(R, list) and len(R) == P + 1
                and all(isinstance(row, list) and len(row) == P for row in R)):
            return f"sets.{name}.accuracy is not a {P + 1} x {P} matrix"
        bad = next((f"[{i}][{j}] = {x!r}" for i, row in enumerate(R) for j, x in enumerate(row)
                    if not _finite(x, 0.0, 1.0)), None)
        if bad:
            return f"sets.{name}.accuracy{bad} is not an accuracy (a finite number in [0, 1])"
    m = r.get("metrics")
    if not isinstance(m, dict):
        return "'metrics' is not an object"
    for k in METRIC_KEYS:
        if k not in m:
            return f"metrics.{k} is missing"
        if m[k] is not None and not _finite(m[k], -1.0, 1.0):
            return f"metrics.{k} = {m[k]!r} is not a finite number in [-1, 1]"
    seen = m.get("seen_acc")
    if not isinstance(seen, list) or len(seen) != P or not all(_finite(x, 0.0, 1.0) for x in seen):
        return f"metrics.seen_acc is not {P} accuracies"
    nf = r.get("nf", {})
    if not isinstance(nf, dict) or any(not isinstance(v, list) or not v or not all(
            isinstance(x, dict) and isinstance(x.get("after_period"), int) and _finite(x.get("accuracy"), 0.0, 1.0)
            for x in v) for v in nf.values()):
        return "'nf' is not an object of lists of rows with after_period and an accuracy in [0, 1]"
    if "wall_s" in r and not _finite(r["wall_s"], 0.0):
        return f"wall_s = {r['wall_s']!r} is not a finite number of seconds"
    return None


def score_row_problem(row, i: int, sets: dict[str, int], nf: list[str]) -> str | None:
    """What is wrong with a stream ``scores/row-NN.json`` (None: nothing): row ``i``, with a score
    of each of the ``sets`` (name -> number of periods) per period and of each ``nf`` set."""
    if not isinstance(row, dict) or row.get("after_period") != i:
        return f"not score row {i} (after_period {row.get('after_period') if isinstance(row, dict) else None!r})"
    got = row.get("sets")
    if not isinstance(got, dict) or set(got) != set(sets):
        return f"'sets' holds {sorted(got) if isinstance(got, dict) else got!r}, not {sorted(sets)}"
    for name, P in sets.items():
        cells = got[name]
        if not isinstance(cells, list) or len(cells) != P or not all(
                isinstance(c, dict) and _finite(c.get("accuracy"), 0.0, 1.0) and _nll(c.get("nll"))
                and isinstance(c.get("n"), int) for c in cells):
            return f"sets.{name} is not {P} scores (accuracy in [0, 1], nll, n)"
    nfs = row.get("nf")
    if not isinstance(nfs, dict) or any(not isinstance(nfs.get(k), dict) or not _finite(nfs[k].get("accuracy"), 0.0, 1.0)
                                        or not _nll(nfs[k].get("nll")) for k in nf):
        return f"'nf' does not score {', '.join(nf) or 'the NF sets'}"
    if not _finite(row.get("train_seconds"), 0.0):
        return "'train_seconds' is not a number"
    return None
