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



def plot_history(curves: dict[str, list[dict]], path: str | Path, title: str = "Probe accuracy") -> None:
    """Accuracy (and answer NLL) against epoch, one line per method; written atomically as PNG."""
    plt = pyplot()

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




def plot_curves(curves: dict[str, list[dict]], path: str | Path, title: str = "") -> None:
    """Two panels, To-Learn accuracy and NF accuracy against epoch, one line per method."""
    plt = pyplot()


    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    for name, curve in curves.items():
        ep = [r["epoch"] for r in curve]
        ax1.plot(ep, [r["to_learn_accuracy"] for r in curve], marker="o", ms=3, label=name)
        ax2.plot(ep, [r["nf_accuracy"] for r in curve], marker="o", ms=3, label=name)
    ax1.set(xlabel="epoch", ylabel="accuracy", title="To-Learn (acquisition)")
    ax2.set(xlabel="epoch", ylabel="accuracy", title="Not-To-Forget (retention)")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
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
    a1.plot([r["update"] for r in val_rows], [r["accuracy"] for r in val_rows], marker="o", label="φ")
    for (name, ref), color in zip((references or {}).items(), ("#868e96", "#2b8a3e")):
        a1.axhline(ref["accuracy"], ls="--", color=color, label=f"{name} weights")
    a1.legend(fontsize=8)
    a1.set(xlabel="φ update", ylabel="held-out answer accuracy", title="Validation")
    if log_rows:
        u = [r["update"] for r in log_rows]
        a2.plot(u, [r["outer"] for r in log_rows], label="answer NLL at θ'", alpha=0.8)
        a2.plot(u, [r["outer0"] for r in log_rows], label="at θ0", alpha=0.5)
        a2.set(xlabel="φ update", ylabel="outer loss", title="Training pairs")
        a2.legend()
    for a in (a1, a2):
        a.grid(alpha=0.3)
    fig.tight_layout()
    save_png(fig, path, dpi=110)


def plot_weights_before_after(items: list[tuple[list[str], list[float], list[float], list[int]]],
                              path: str | Path) -> None:
    """φ's token weights before (bars) and after (line) meta-training, one panel per document
    (``items``: tokens, weights before, weights after, answer token indices)."""
    plt = pyplot()
    n = len(items)
    fig, axes = plt.subplots(n, 1, figsize=(12, 2.2 * n), squeeze=False)
    for ax, (toks, wb, wa, span) in zip(axes[:, 0], items):
        x = range(len(toks))
        ax.bar(x, [float(v) for v in wb], color="#bbbbbb", label="before")
        ax.plot(x, [float(v) for v in wa], color="#d9480f", marker=".", lw=1, label="after")
        for i in span:
            ax.axvspan(i - 0.5, i + 0.5, color="#2b8a3e", alpha=0.15)
        ax.set_xticks(list(x))
        ax.set_xticklabels(toks, rotation=90, fontsize=6)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("weight")
    axes[0, 0].legend(loc="lower right", fontsize=7)
    axes[0, 0].set_title("φ's token weights on held-out documents (green: the answer's tokens)")
    fig.tight_layout()
    save_png(fig, path, dpi=100)
