"""Human-facing output: before/after tables, accuracy curves (PNG), token-weight heatmaps.

The heatmap is a single self-contained HTML file (no scripts, no external assets): each token is
a span whose background goes from white (weight 0) to deep orange (weight 1), with the exact
weight in its tooltip. ``render_plain`` gives the same information in a plain terminal.
"""

from __future__ import annotations

import html
from pathlib import Path

from ..core.files import atomic_write_text


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


def plot_history(curves: dict[str, list[dict]], path: str | Path, title: str = "Probe accuracy") -> None:
    """Accuracy (and answer NLL) against epoch, one line per method; written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4))
    for name, hist in curves.items():
        ep = [r["epoch"] for r in hist]
        ax1.plot(ep, [r["accuracy"] for r in hist], marker="o", label=name)
        ax2.plot(ep, [r["nll"] for r in hist], marker="o", label=name)
    ax1.set(xlabel="epoch", ylabel="answer-token accuracy", title=title, ylim=(-0.02, 1.02))
    ax2.set(xlabel="epoch", ylabel="answer NLL", title="Answer NLL")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    save_png(fig, path, dpi=110)


def save_png(fig, path: str | Path, dpi: int = 110) -> None:
    """Write a matplotlib figure as PNG atomically (temp file + rename) and close it."""
    import io

    import matplotlib.pyplot as plt

    from ..core.files import atomic_write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def _token_texts(text: str, offsets: list[tuple[int, int]]) -> list[str]:
    """The text of each token (from character offsets), including the gaps between tokens."""
    out, prev = [], 0
    for s, e in offsets:
        s = max(s, prev)
        out.append(text[prev:e] if e >= s else "")
        prev = max(prev, e)
    if out and prev < len(text):
        out[-1] += text[prev:]
    return out


def _color(w: float) -> str:
    w = min(max(float(w), 0.0), 1.0)
    # white -> orange (255,140,0): readable text on every shade
    r, g, b = 255, int(255 - 115 * w), int(255 - 255 * w)
    return f"rgb({r},{g},{b})"


def heatmap_html(items: list[tuple[str, list[tuple[int, int]], list[float], str]],
                 title: str = "Token weights") -> str:
    """HTML for a list of (text, offsets, weights, label) documents."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>",
        "body{font-family:system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em;color:#222}",
        ".doc{font-family:ui-monospace,monospace;white-space:pre-wrap;line-height:1.9;"
        "border:1px solid #ddd;padding:.6em;border-radius:6px;margin:.3em 0 1.4em}",
        ".t{border-radius:3px}.legend span{display:inline-block;min-width:3.2em;margin-right:2px;text-align:center;border:1px solid #ddd;border-radius:3px}",
        "h2{font-size:1em;margin-bottom:.2em;color:#555}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        "<p class='legend'>weight: " + "".join(
            f"<span style='background:{_color(v / 4)}'>{v / 4:.2f}</span>" for v in range(5)) +
        " &nbsp;(hover a token for its exact weight)</p>",
    ]
    for text, offsets, weights, label in items:
        parts.append(f"<h2>{html.escape(label)}</h2><div class='doc'>")
        mean = sum(weights) / max(len(weights), 1)
        for tok, w in zip(_token_texts(text, offsets), weights):
            parts.append(f"<span class='t' title='{float(w):.4f}' style='background:{_color(w)}'>"
                         f"{html.escape(tok)}</span>")
        parts.append(f"</div><p style='margin-top:-1em;color:#777'>mean weight {mean:.3f}, "
                     f"{len(weights)} tokens</p>")
    parts.append("</body></html>")
    return "".join(parts)


def write_heatmap(path: str | Path, items, title: str = "Token weights") -> None:
    atomic_write_text(path, heatmap_html(items, title))


def render_plain(text: str, offsets: list[tuple[int, int]], weights: list[float], label: str = "",
                 width: int = 100) -> str:
    """Terminal rendering without colours: one row per token with its weight and a bar."""
    lines = [f"== {label}" if label else "=="]
    for i, (tok, w) in enumerate(zip(_token_texts(text, offsets), weights)):
        bar = "█" * int(round(float(w) * 20))
        lines.append(f"{i:>5} {float(w):6.3f} {bar:<20} {tok!r}"[:width])
    return "\n".join(lines)
