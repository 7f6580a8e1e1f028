"""A stream folder's summary: ``summary.json``, ``results.md`` (the table and each method's
matrix), ``matrix.png`` (heatmaps) and ``curves.png``."""

from __future__ import annotations


def write_stream_summary(s, results: dict[str, dict]) -> dict:
    """Write the folder's summary files from every method's ``result.json``; return the summary."""
    from ...core.files import atomic_write_json, atomic_write_text
    from ...reporting.plots import plot_stream_curves, plot_stream_matrices
    from ...reporting.streams import matrix_table, stream_table

    periods = [p.name for p in s.data.periods]
    summary = {"benchmark": "stream", "stream": s.name, "size": s.size, "model": s.label,
               "periods": periods, "epochs_per_period": s.cfg.train.epochs, "primary": s.data.primary,
               "n_documents": [len(p.documents) for p in s.data.periods],
               "methods": {n: {"metrics": r["metrics"], "nf": r["nf"], "wall_s": r["wall_s"]} for n, r in results.items()}}
    table = stream_table(results)
    title = (f"{s.name} ({s.size}): {s.label}, {len(periods)} periods x {s.cfg.train.epochs} epochs, "
             f"probes {s.data.primary}")
    parts = [f"# Stream {s.name} ({s.size})\n", f"model `{s.label}`; periods {', '.join(periods)} "
             f"({', '.join(str(n) for n in summary['n_documents'])} documents), {s.cfg.train.epochs} epochs "
             f"per period, θ carried over, a fresh optimizer each period. learning = mean of acc[i][i] "
             f"(after learning period i, on its probes); forgetting = mean of acc[i][i] − acc[P][i] "
             f"over i < P; BWT = −forgetting; FWT = mean of acc[i−1][i] − acc[θ0][i]; final acc = "
             f"mean over all periods after the last.\n", table]
    for name, r in results.items():
        parts.append(f"\n## {name}: accuracy on `{r['primary']}` probes\n\n{matrix_table(r)}")
        for other in r["sets"]:
            if other != r["primary"]:
                parts.append(f"\n{name}, `{other}` probes:\n\n{matrix_table(r, other)}")
    atomic_write_text(s.out / "results.md", "\n".join(parts) + "\n")
    plot_stream_matrices({n: r["sets"][r["primary"]]["accuracy"] for n, r in results.items()}, periods,
                         s.out / "matrix.png", title)
    plot_stream_curves(results, s.out / "curves.png", title)
    atomic_write_json(s.out / "summary.json", summary)
    summary["table"] = table
    return summary
