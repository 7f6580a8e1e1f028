"""Small fixed-width tables for the terminal: history per epoch, before/after."""

from __future__ import annotations


def format_history(history: list[dict], title: str | None = None) -> str:
    """A small fixed-width table: epoch, probe accuracy, answer NLL."""
    lines = [title] if title else []
    lines.append(f"{'epoch':>5}  {'accuracy':>8}  {'answer NLL':>10}")
    for row in history:
        lines.append(f"{row['epoch']:>5}  {row['accuracy']:>8.3f}  {row['nll']:>10.3f}")
    return "\n".join(lines)


def format_before_after(before: dict, after: dict, label: str = "probes") -> str:
    return "\n".join([
        f"{'':<10}{'before':>10}{'after':>10}",
        f"{'accuracy':<10}{before['accuracy']:>10.3f}{after['accuracy']:>10.3f}",
        f"{'NLL':<10}{before['nll']:>10.3f}{after['nll']:>10.3f}",
        f"({label}: {before.get('n', '?')}, evaluated after epoch {after['epoch']})",
    ])
