"""Continual-learning metrics of an accuracy matrix (pure functions; no torch).

``R`` has P+1 rows: row 0 = θ0 before any period, row i = after learning period i (1-based); column
j = period j's probe set (0-based: period j+1). With ``b_j = R[0][j]`` and ``R_ij = R[i][j]``:

* learning (diagonal)      L_j  = R[j+1][j]                      what period j+1 reached when learned
* gain                     G_j  = R[j+1][j] − R[j][j]            what learning period j+1 added
* forgetting               F_j  = R[j+1][j] − R[P][j]   (j < P−1) the drop of the diagonal by the end
* backward transfer        BWT  = mean_{j<P−1} (R[P][j] − R[j+1][j])  = −mean F (Lopez-Paz & Ranzato 2017)
* forward transfer         FWT  = mean_{j≥1} (R[j][j] − b_j)     what earlier periods did for a later one
* final average accuracy   ACC  = mean_j R[P][j]

Perplexity of a set = exp(mean answer NLL).
"""

from __future__ import annotations

import math


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def stream_metrics(R: list[list[float]]) -> dict:
    """The metrics above from a (P+1) × P matrix."""
    P = len(R) - 1
    if P < 1 or any(len(row) != P for row in R):
        raise ValueError(f"expected a (P+1) x P matrix, got {len(R)} rows of lengths {[len(r) for r in R]}")
    learning = [R[j + 1][j] for j in range(P)]
    forgetting = [R[j + 1][j] - R[P][j] for j in range(P - 1)]
    return {
        "learning": learning,
        "gain": [R[j + 1][j] - R[j][j] for j in range(P)],
        "forgetting": forgetting,
        "mean_learning": _mean(learning),
        "mean_forgetting": _mean(forgetting),
        "bwt": _mean([R[P][j] - R[j + 1][j] for j in range(P - 1)]),
        "fwt": _mean([R[j][j] - R[0][j] for j in range(1, P)]),
        "final_acc": _mean(R[P]),
        "seen_acc": [_mean(R[i][:i]) for i in range(1, P + 1)],  # after period i: mean over periods 1..i
    }


def perplexity(nll: float | None) -> float | None:
    """exp(mean NLL); None for a missing value, inf beyond float range."""
    if nll is None:
        return None
    return math.exp(nll) if nll < 700 else math.inf


# the checks of what a stream run wrote live with the code that reads results (reporting, a layer below)
from ...reporting.stream_checks import METRIC_KEYS, score_row_problem, stream_result_problem  # noqa: E402,F401
