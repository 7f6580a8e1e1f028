"""Token-weight heatmaps: one self-contained HTML file, or plain text for a terminal.

The heatmap is a single self-contained HTML file (no scripts, no external assets): each token is
a span whose background goes from white (weight 0) to deep orange (weight 1), with the exact
weight in its tooltip. The scale is fixed, not fitted to the weights, so one token's colour never
depends on another's weight. ``render_plain`` gives the same information in a plain terminal.

A document's first token has no loss in a causal LM (nothing predicts it), so its weight is
meaningless: both renderings show it as "n/a" (grey, with a tooltip saying why) and the
per-document statistics leave it out (:func:`taalm.reporting.weights_data.has_loss`).
"""

from __future__ import annotations

import html
from pathlib import Path

from ..core.files import atomic_write_text
from .weights_data import NO_LOSS_LABEL, NO_LOSS_NOTE, loss_weights, shown_weights

#: the background of a token without loss: neutral, outside the white-to-orange scale
NO_LOSS_COLOR = "#d0d4d9"


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
    """The background of weight ``w`` on the fixed 0..1 scale (clamped)."""
    w = min(max(float(w), 0.0), 1.0)
    # white -> orange (255,140,0): readable text on every shade
    r, g, b = 255, int(255 - 115 * w), int(255 - 255 * w)
    return f"rgb({r},{g},{b})"


def _token_span(tok: str, w: float | None) -> str:
    """One token's span: coloured by its weight, or grey "n/a" when it has no loss."""
    if w is None:
        return (f"<span class='t na' title='{html.escape(NO_LOSS_NOTE, quote=True)}' "
                f"style='background:{NO_LOSS_COLOR}'>{html.escape(tok)}</span>")
    return f"<span class='t' title='{w:.4f}' style='background:{_color(w)}'>{html.escape(tok)}</span>"


def heatmap_html(items: list[tuple[str, list[tuple[int, int]], list[float], str]],
                 title: str = "Token weights") -> str:
    """HTML for a list of (text, offsets, weights, label) documents; each document's first token
    is shown as "n/a" and its mean weight is over the tokens that have a loss."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>",
        "body{font-family:system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em;color:#222}",
        ".doc{font-family:ui-monospace,monospace;white-space:pre-wrap;line-height:1.9;"
        "border:1px solid #ddd;padding:.6em;border-radius:6px;margin:.3em 0 1.4em}",
        ".t{border-radius:3px}.na{outline:1px dashed #888}"
        ".legend span{display:inline-block;min-width:3.2em;margin-right:2px;text-align:center;border:1px solid #ddd;border-radius:3px}",
        "h2{font-size:1em;margin-bottom:.2em;color:#555}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        "<p class='legend'>weight: " + "".join(
            f"<span style='background:{_color(v / 4)}'>{v / 4:.2f}</span>" for v in range(5)) +
        f" <span class='na' style='background:{NO_LOSS_COLOR}' title='{html.escape(NO_LOSS_NOTE, quote=True)}'>"
        f"{NO_LOSS_LABEL}</span> &nbsp;(hover a token for its exact weight; {html.escape(NO_LOSS_NOTE)})</p>",
    ]
    for text, offsets, weights, label in items:
        parts.append(f"<h2>{html.escape(label)}</h2><div class='doc'>")
        parts += [_token_span(tok, w) for tok, w in zip(_token_texts(text, offsets), shown_weights(weights))]
        scored = loss_weights(weights)
        mean = f"{sum(scored) / len(scored):.3f}" if scored else NO_LOSS_LABEL
        parts.append(f"</div><p style='margin-top:-1em;color:#777'>mean weight {mean} over "
                     f"{len(scored)} of {len(weights)} tokens (those with a loss)</p>")
    parts.append("</body></html>")
    return "".join(parts)


def write_heatmap(path: str | Path, items, title: str = "Token weights") -> None:
    """:func:`heatmap_html` written atomically to ``path``."""
    atomic_write_text(path, heatmap_html(items, title))


def render_plain(text: str, offsets: list[tuple[int, int]], weights: list[float], label: str = "",
                 width: int = 100) -> str:
    """Terminal rendering without colours: one row per token with its weight and a bar; "n/a"
    (no bar) for a token without loss, whose weight is meaningless."""
    from ..core.errors import printable

    lines = [f"== {printable(label, one_line=True)}" if label else "=="]  # an id or path may hold escapes
    for i, (tok, w) in enumerate(zip(_token_texts(text, offsets), shown_weights(weights))):
        if w is None:
            lines.append(f"{i:>5} {NO_LOSS_LABEL:>6} {'(no loss)':<20} {tok!r}"[:width])
            continue
        bar = "█" * int(round(w * 20))
        lines.append(f"{i:>5} {w:6.3f} {bar:<20} {tok!r}"[:width])
    return "\n".join(lines)
