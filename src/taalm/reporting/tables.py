"""Small fixed-width tables for the terminal: history per epoch, before/after."""

from __future__ import annotations


def format_history(history: list[dict], title: str | None = None) -> str:
    """A small fixed-width table per evaluation point: epoch, probe accuracy, exact match, answer
    NLL, and the accuracy of the ``kept`` and ``val`` sets where they were measured."""
    extra = [k for k in ("kept", "val") if any(isinstance(r.get(k), dict) for r in history)]
    lines = [title] if title else []
    lines.append(f"{'epoch':>5}  {'accuracy':>8}  {'exact':>6}  {'answer NLL':>10}" + "".join(f"  {k:>6}" for k in extra))
    for row in history:
        cells = "".join(f"  {row[k]['accuracy']:>6.3f}" if isinstance(row.get(k), dict) else f"  {'—':>6}"
                        for k in extra)
        exact = row.get("exact")
        lines.append(f"{row['epoch']:>5}  {row['accuracy']:>8.3f}  {'—' if exact is None else f'{exact:.3f}':>6}  "
                     f"{row['nll']:>10.3f}{cells}")
    return "\n".join(lines)


def format_outcome(result: dict) -> str:
    """One line: learned (accuracy, exact match), kept (of what was known before) and Total at
    the epoch the run kept (:func:`taalm.evaluation.keep.outcome`)."""
    if "learned" not in result:
        return f"kept θ of epoch {result.get('epoch')}"
    parts = [f"learned {result['learned']:.3f} (exact {result['learned_exact']:.3f})"]
    if "kept" in result:
        before = result.get("kept_before")
        parts.append(f"kept {result['kept']:.3f}" + (f" (of {before:.3f} before)" if before is not None else ""))
        parts.append(f"Total {result['total']:.3f}")
    return f"after epoch {result['epoch']}: " + ", ".join(parts)


