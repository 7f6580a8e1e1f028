"""Learning-rate schedules, as pure functions of the step (θ's CKL steps and φ's updates).

A schedule is a factor of the configured lr at step ``t`` (1-based: the step about to be taken)
out of ``total``; with ``warmup`` steps ``W`` and the decayed schedules' last factor ``f``:

    warm-up:  factor_t = t / W                                   for t ≤ W
    then      s = (t − W − 1) / (total − W − 1)  clipped to [0, 1]
    constant: factor_t = 1
    linear:   factor_t = 1 − (1 − f) · s
    cosine:   factor_t = f + (1 − f) · (1 + cos(π·s)) / 2

so the first step after warm-up takes the full lr and the last takes ``f · lr``. Being a function
of the step alone, a resumed run (which restores the step counter) continues the schedule
exactly; nothing else needs saving.
"""

from __future__ import annotations

import math

LR_SCHEDULES = ("constant", "cosine", "linear")


def lr_factor(step: int, total: int, schedule: str = "constant", warmup: int = 0, final: float = 0.1) -> float:
    """The factor of the base lr at ``step`` (1-based) of ``total`` (formulas above)."""
    if schedule not in LR_SCHEDULES:
        raise ValueError(f"unknown lr schedule '{schedule}' (use {', '.join(LR_SCHEDULES)})")
    if warmup > 0 and step <= warmup:
        return step / warmup
    if schedule == "constant" or total - warmup <= 1:
        return 1.0
    s = min(max((step - warmup - 1) / (total - warmup - 1), 0.0), 1.0)
    if schedule == "cosine":
        return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * s))
    return 1 - (1 - final) * s
