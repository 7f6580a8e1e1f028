"""Every figure taalm draws (PNG, written atomically): one module, one matplotlib set-up.

matplotlib is imported inside :func:`pyplot` (Agg backend), so importing this module costs
nothing and nothing here needs a display.
"""

from __future__ import annotations

from pathlib import Path


def pyplot():
    """``matplotlib.pyplot`` on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path: str | Path, dpi: int = 110) -> None:
    """Write a matplotlib figure as PNG atomically (temp file + rename) and close it."""
    import io

    plt = pyplot()
    from ..core.files import atomic_write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())



def binomial_se(p: float, n: int) -> float:
    """The binomial standard error sqrt(p(1-p)/n) of an accuracy over n probes (0 when n is 0)."""
    return (max(p * (1 - p), 0.0) / n) ** 0.5 if n else 0.0


def _epoch_axis(ax, epochs: list[int]) -> None:
    """Integer epoch ticks only; with just the before/after points, label them so."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if len(set(epochs)) == 2:
        lo, hi = sorted(set(epochs))
        ax.set_xticks([lo, hi], [f"before ({lo})", f"after ({hi})"])


def plot_history(curves: dict[str, list[dict]], path: str | Path, title: str = "Probe accuracy") -> None:
    """Accuracy (± binomial SE, a band) and answer NLL against epoch, one line per run.

    A run evaluated only before and after training is drawn as two points joined by a dashed
    line, with the two ticks labelled: no epoch ticks between them pretend to be measurements."""
    plt = pyplot()

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    epochs: list[int] = []
    for i, (name, hist) in enumerate(curves.items()):
        ep = [r["epoch"] for r in hist]
        epochs += ep
        acc = [r["accuracy"] for r in hist]
        st = series_style(i)
        style = dict(marker=st["marker"], ls=st["ls"], mfc="none")
        line, = ax1.plot(ep, acc, label=name, **style)
        se = [binomial_se(a, r.get("n", 0)) for a, r in zip(acc, hist)]
        ax1.fill_between(ep, [a - e for a, e in zip(acc, se)], [a + e for a, e in zip(acc, se)],
                         facecolor=line.get_color(), edgecolor=line.get_color(), alpha=0.18, lw=0, hatch=st["hatch"])
        ax2.plot(ep, [r["nll"] for r in hist], label=name, **style)
    ax1.set(xlabel="epoch", ylabel="answer-token accuracy", title=f"{title} (band: ± binomial SE)", ylim=(-0.02, 1.02))
    ax2.set(xlabel="epoch", ylabel="answer NLL", title="Answer NLL")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        _epoch_axis(ax, epochs)
    ax2.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8, frameon=False)  # outside the data
    fig.tight_layout()
    save_png(fig, path, dpi=110)


_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
_LINES = ("-", "--", ":", "-.")
_HATCHES = ("", "//", "\\\\", "..", "xx", "++", "--", "oo")


def series_style(i: int) -> dict:
    """Marker, line style and band hatch of the ``i``-th series: every series of a figure looks
    different, so two identical curves stay visible as two (their markers and dashes differ)."""
    return {"marker": _MARKERS[i % len(_MARKERS)], "ls": _LINES[i % len(_LINES)], "hatch": _HATCHES[i % len(_HATCHES)]}


def plot_curves(curves: dict[str, list[dict]], path: str | Path, title: str = "",
                n: dict[str, tuple[int, int]] | None = None) -> None:
    """Two panels, To-Learn accuracy and NF accuracy against epoch, one line per method; with
    ``n[method] = (n_to_learn, n_nf)`` each line gets a ± binomial SE band."""
    plt = pyplot()

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.9))
    for i, (name, curve) in enumerate(curves.items()):
        ep = [r["epoch"] for r in curve]
        st = series_style(i)
        for ax, key, k in ((ax1, "to_learn_accuracy", 0), (ax2, "nf_accuracy", 1)):
            acc = [r[key] if r[key] is not None else float("nan") for r in curve]
            line, = ax.plot(ep, acc, marker=st["marker"], ls=st["ls"], ms=4, mfc="none", label=name)
            if n and name in n:
                se = [binomial_se(a, n[name][k]) if a == a else 0.0 for a in acc]
                ax.fill_between(ep, [a - e for a, e in zip(acc, se)], [a + e for a, e in zip(acc, se)],
                                facecolor=line.get_color(), edgecolor=line.get_color(), alpha=0.15, lw=0,
                                hatch=st["hatch"])
    band = " (band: ± binomial SE)" if n else ""
    ax1.set(xlabel="epoch", ylabel="accuracy", title=f"To-Learn (acquisition){band}")
    ax2.set(xlabel="epoch", ylabel="accuracy", title=f"Not-To-Forget (retention){band}")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        _epoch_axis(ax, [r["epoch"] for c in curves.values() for r in c])
    ax2.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_png(fig, path, dpi=110)


def plot_score_grid(hists: dict[str, dict], rows: list[str], cols: list[str], path: str | Path, title: str) -> None:
    """Histograms of unit scores (``hists[f"{row}.{col}"]``: bin_edges, bin_counts, n, mean, exact_0,
    exact_1), one panel per file (rows) and probe format (columns)."""
    plt = pyplot()


    fig, axes = plt.subplots(len(rows), len(cols), figsize=(9, 7.5), squeeze=False)
    for i, src in enumerate(rows):
        for j, fmt in enumerate(cols):
            ax = axes[i][j]
            h = hists.get(f"{src}.{fmt}")
            if h and h["n"]:
                edges = h["bin_edges"]
                ax.bar(edges[:-1], h["bin_counts"], width=edges[1] - edges[0], align="edge",
                       color="#4c72b0", edgecolor="white")
                ax.text(0.98, 0.95, f"n={h['n']}  mean={h['mean']:.3f}\n=0: {h['exact_0']}  =1: {h['exact_1']}",
                        transform=ax.transAxes, ha="right", va="top", fontsize=8)
            ax.set_xlim(0, 1)
            ax.set_title(f"{src} — {fmt.removeprefix('task_')}", fontsize=9)
            if i == len(rows) - 1:
                ax.set_xlabel("unit score (object-token accuracy)")
            if j == 0:
                ax.set_ylabel("units")
            ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_png(fig, path, dpi=100)


def plot_score_histograms(scores: dict[str, list[float]], path: Path, title: str, threshold: float) -> None:
    """One histogram of probe scores per probe format, with the keep threshold."""
    plt = pyplot()


    fig, axes = plt.subplots(1, len(scores), figsize=(9, 3.2), squeeze=False)
    for ax, (fmt, vals) in zip(axes[0], scores.items()):
        ax.hist(vals, bins=10, range=(0, 1), color="#4c72b0", edgecolor="white")
        ax.axvline(threshold, color="#c44e52", ls="--", lw=1)
        ax.set_title(f"{fmt.removeprefix('task_')} (n={len(vals)})", fontsize=9)
        ax.set_xlabel("probe score (object-token accuracy)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("facts")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_png(fig, path, dpi=100)


def plot_validation(val_rows: list[dict], log_rows: list[dict], path: Path, references: dict | None = None) -> None:
    """Validation answer accuracy against φ updates, and the training outer loss."""
    plt = pyplot()


    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.4))
    updates = [r["update"] for r in val_rows]
    splits = list(val_rows[0].get("splits", {})) if val_rows else []
    a1.plot(updates, [r["accuracy"] for r in val_rows], marker="o", color="#1c7ed6",
            label="φ (mean of the splits)" if splits else "φ")
    for name, style in zip(splits, (":", "-.", "--")):  # several validation splits: each one too
        a1.plot(updates, [r["splits"][name]["accuracy"] for r in val_rows], ls=style, marker=".", color="#1c7ed6",
                alpha=0.6, label=f"φ on {name}")
    for (name, ref), color in zip((references or {}).items(), ("#868e96", "#2b8a3e")):
        a1.axhline(ref["accuracy"], ls="--", color=color, label=f"{name} weights" + (" (mean)" if splits else ""))
    a1.legend(fontsize=7)
    a1.set(xlabel="φ update", ylabel="held-out answer accuracy", title="Validation")
    if log_rows:
        u = [r["update"] for r in log_rows]
        a2.plot(u, [r["outer"] for r in log_rows], label="answer NLL at θ'", alpha=0.8)
        if any(r.get("outer0") is not None for r in log_rows):  # log_outer0=false leaves it out
            a2.plot(u, [r["outer0"] if r.get("outer0") is not None else float("nan") for r in log_rows],
                    label="at θ0", alpha=0.5)
        a2.set(xlabel="φ update", ylabel="outer loss", title="Training pairs")
        a2.legend()
    for a in (a1, a2):
        a.grid(alpha=0.3)
    fig.tight_layout()
    save_png(fig, path, dpi=110)


#: how a token without loss (a document's first) is drawn in the weight plots: hatched grey
_NO_LOSS_STYLE = dict(facecolor="none", edgecolor="#adb5bd", hatch="///", lw=0)


def _weight_panel(ax, toks, wb, wa, span, lo: float, norm, cmap) -> None:
    """One document of :func:`plot_weights_before_after`: bars (after) and ticks (before) on the
    tokens with a loss; a hatched grey "n/a" column on those without (their weight is unused)."""
    from .weights_data import NO_LOSS_LABEL, shown_weights

    after, before = shown_weights(wa), shown_weights(wb)
    for i in span:
        ax.axvspan(i - 0.5, i + 0.5, color="#2b8a3e", alpha=0.18, lw=0)
    for i in (i for i, v in enumerate(after) if v is None):
        ax.axvspan(i - 0.5, i + 0.5, **_NO_LOSS_STYLE)
        ax.text(i, 0.5, NO_LOSS_LABEL, transform=ax.get_xaxis_transform(), rotation=90, ha="center",
                va="center", fontsize=7, color="#666")
    xa = [i for i, v in enumerate(after) if v is not None]
    wa_ = [max(after[i], lo) for i in xa]
    ax.bar(xa, wa_, color=[cmap(norm(v)) for v in wa_], width=0.8)
    xb = [i for i, v in enumerate(before) if v is not None]
    ax.scatter(xb, [max(before[i], lo) for i in xb], marker="_", s=80, color="black", lw=1.5, zorder=3)
    ax.set_yscale("log")
    ax.set_ylim(lo * 0.8, 1.3)
    ax.set_xlim(-0.6, len(toks) - 0.4)
    ax.set_xticks(range(len(toks)))
    ax.set_xticklabels(toks, rotation=90, fontsize=8)
    for i in span:
        ax.get_xticklabels()[i].set_fontweight("bold")
    ax.set_ylabel("weight", fontsize=10)
    ax.tick_params(axis="y", labelsize=8)


def plot_weights_before_after(items: list[tuple[list[str], list[float], list[float], list[int]]],
                              path: str | Path) -> None:
    """φ's token weights before and after meta-training, one panel per document (``items``:
    tokens, weights before, weights after, answer token indices).

    Bars: the weights after, coloured on one logarithmic colour scale shared by every panel (its
    colour bar on the right); black ticks: the weights before. The y axis is logarithmic too,
    since a trained φ spreads weights over orders of magnitude (only relative weights matter);
    the answer's tokens are shaded green and their labels bold. The legend sits above the panels.
    Weights below 1e-6 (if any) are drawn at 1e-6, the axis floor. A document's first token has
    no loss (nothing predicts it), so its weight is not drawn: a hatched grey "n/a" column marks
    it, and it takes no part in the scales (:func:`taalm.reporting.weights_data.has_loss`)."""
    import matplotlib.colors as mcolors
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    from .weights_data import loss_weights

    plt = pyplot()
    n = len(items)
    allw = [v for _, wb, wa, _ in items for v in loss_weights(wb) + loss_weights(wa)]
    lo = max(min([v for v in allw if v > 0] or [1e-3]), 1e-6)  # weights below 1e-6 are drawn at 1e-6
    norm = mcolors.LogNorm(vmin=lo, vmax=1.0)
    cmap = plt.get_cmap("viridis")
    width = max(10.0, 0.22 * max((len(t) for t, *_ in items), default=10))
    fig, axes = plt.subplots(n, 1, figsize=(width, 2.4 * n + 1.0), squeeze=False, layout="constrained")
    for ax, (toks, wb, wa, span) in zip(axes[:, 0], items):
        _weight_panel(ax, toks, wb, wa, span, lo, norm, cmap)
    axes[-1, 0].set_xlabel("token (the document's, in order)", fontsize=10)
    fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=axes[:, 0].tolist(), pad=0.01,
                 aspect=30, label="weight after (log scale)")
    handles = [Patch(color=cmap(0.6), label="after meta-training"),
               Line2D([], [], color="black", marker="_", ls="", ms=10, mew=1.5, label="before"),
               Patch(color="#2b8a3e", alpha=0.3, label="the answer's tokens"),
               Patch(**{**_NO_LOSS_STYLE, "lw": 1}, label="n/a: first token, no loss")]
    fig.legend(handles=handles, loc="outside upper center", ncol=4, fontsize=9, frameon=False,
               title="φ's token weights on held-out documents", title_fontsize=11)
    save_png(fig, path, dpi=110)


def plot_stream_matrices(mats: dict[str, list[list[float]]], periods: list[str], path: str | Path,
                         title: str = "") -> None:
    """One heatmap per method of acc[i][j]: row i = after period i (0 = θ0), column j = period j's
    probes; every cell annotated. The diagonal below the first row is learning; a column read
    downwards from its diagonal cell shows forgetting."""
    plt = pyplot()

    n = len(mats)
    P = len(periods)
    fig, axes = plt.subplots(1, n, figsize=(1.5 + (0.8 * P + 1.1) * n, 0.6 * P + 2.0), squeeze=False,
                             layout="constrained")
    vmax = max([max(max(r) for r in m) for m in mats.values()] + [0.05])
    im = None
    for ax, (name, R) in zip(axes[0], mats.items()):
        im = ax.imshow(R, vmin=0.0, vmax=vmax, cmap="viridis", aspect="auto")
        for i, row in enumerate(R):
            for j, v in enumerate(row):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if v < 0.6 * vmax else "black", fontweight="bold" if i == j + 1 else None)
        ax.set_xticks(range(P), periods, fontsize=7, rotation=30 if max(map(len, periods)) > 4 else 0)
        ax.set_yticks(range(P + 1), ["θ0"] + [f"after {p}" for p in periods], fontsize=7)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("probes of period", fontsize=8)
    fig.colorbar(im, ax=list(axes[0]), fraction=0.03, pad=0.02, label="accuracy")
    if title:
        import textwrap

        fig.suptitle("\n".join(textwrap.wrap(title, 60 + 25 * n)), fontsize=9)
    save_png(fig, path, dpi=110)


def plot_stream_curves(results: dict[str, dict], path: str | Path, title: str = "") -> None:
    """Three panels against the period just learned: period 1's accuracy (what is kept of the first
    period), the mean over the periods seen so far, and the NF accuracy (0 = θ0)."""
    plt = pyplot()

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for k, (name, r) in enumerate(results.items()):
        R = r["sets"][r["primary"]]["accuracy"]
        x = list(range(len(R)))
        st = dict(marker=series_style(k)["marker"], ls=series_style(k)["ls"], ms=4, mfc="none", label=name)
        axes[0].plot(x, [row[0] for row in R], **st)
        axes[1].plot(x[1:], r["metrics"]["seen_acc"], **st)
        nf = next(iter(r.get("nf", {}).values()), None)
        other = [k for k in r["sets"] if k != r["primary"]]
        if nf:
            axes[2].plot([q["after_period"] for q in nf], [q["accuracy"] for q in nf], **st)
        elif other:  # no NF set: the other probe set (TemporalWiki's UNCHANGED), mean over all periods
            M = r["sets"][other[0]]["accuracy"]
            axes[2].plot(x, [sum(row) / len(row) for row in M], **st)
    third = "Not-To-Forget"
    if results and not any(r.get("nf") for r in results.values()):
        r0 = next(iter(results.values()))
        third = next((f"{k} (mean over all periods)" for k in r0["sets"] if k != r0["primary"]), "")
    for ax, t in zip(axes, ("period 1's probes", "mean over the periods seen so far", third)):
        ax.set(xlabel="after period (0 = θ0)", ylabel="accuracy", title=t)
        ax.grid(alpha=0.3)
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[1].legend(loc="best", fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_png(fig, path, dpi=110)
