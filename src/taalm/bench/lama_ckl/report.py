"""LAMA-ckl's folder summary: ``summary.json``, ``results.md`` (the table), ``curves.jsonl`` and
``curves.png`` from every method's ``result.json``."""

from __future__ import annotations

from ..folders import fmt_time
from .config import probe_format_of


def write_summary(b, results: dict[str, dict]) -> dict:
    """Write the folder's summary files (``b``: the run's :class:`~.protocol.LamaCkl`); return the summary."""
    from ...core.files import atomic_write_json, atomic_write_text, write_jsonl
    from ...reporting.plots import plot_curves

    cfg, data, out, size = b.cfg, b.data, b.out, b.size
    summary = {
        "benchmark": "lama-ckl", "size": size, "probe_format": probe_format_of(cfg),
        "model": b.label, "epochs": cfg.train.epochs,
        "n_to_learn": len(data.documents), "n_nf": len(data.nf_probes),
        "methods": {n: {"summary": r["summary"], "wall_s": r["wall_s"]} for n, r in results.items()},
    }
    write_jsonl(out / "curves.jsonl", [{"method": n, **row} for n, r in results.items() for row in r["curve"]])
    plot_curves({n: r["curve"] for n, r in results.items()}, out / "curves.png",
                f"LAMA-ckl ({size}): {b.label}, {len(data.documents)} To-Learn / "
                f"{len(data.nf_probes)} NF, {cfg.data.probe_field}",
                n={name: (len(data.documents), len(data.nf_probes)) for name in results})
    table = format_results(summary)
    atomic_write_text(out / "results.md",
                      f"# LAMA-ckl ({size})\n\nmodel `{b.label}`, {len(data.documents)} To-Learn "
                      f"units, {len(data.nf_probes)} NF units, probes `{cfg.data.probe_field}`, "
                      f"{cfg.train.epochs} epochs (Epoch 0 = before training). Top Acc = max To-Learn "
                      f"accuracy, Epoch = first epoch reaching it, NF Acc = NF accuracy at that epoch, "
                      f"Total = Top Acc + NF Acc.\n\n{table}\n")
    atomic_write_json(out / "summary.json", summary)
    summary["table"] = table
    return summary


def format_results(summary: dict) -> str:
    """The Markdown table of ``summary.json``."""
    lines = ["| method | Top Acc | Epoch | NF Acc | Total | wall time |", "|---|---|---|---|---|---|"]
    for name, r in summary["methods"].items():
        s = r["summary"]
        lines.append(f"| {name} | {s['top_acc']:.3f} | {s['epoch']} | {s['nf_acc']:.3f} | "
                     f"{s['total']:.3f} | {fmt_time(r['wall_s'])} |")
    return "\n".join(lines)


__all__ = ["write_summary", "format_results"]
