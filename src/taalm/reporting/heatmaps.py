"""Token-weight heatmaps: one self-contained HTML file, or plain text for a terminal.

The heatmap is a single self-contained HTML file (no scripts, no external assets): each token is
a span whose background goes from white (weight 0) to deep orange (weight 1), with the exact
weight in its tooltip. ``render_plain`` gives the same information in a plain terminal.
"""

from __future__ import annotations

import html
from pathlib import Path

from ..core.files import atomic_write_text


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
