"""The paper's Table 1 (baselines) and Table 6 (TAALM combined with each) from LAMA-ckl bench folders.

Reads what ``taalm bench lama-ckl`` wrote (each method's ``result.json`` and ``curve.jsonl``);
nothing is recomputed or retyped. Each row names a folder and a method (``TABLE1``, ``TABLE6``);
a row whose folder lacks the method is listed as "not run". Wall times carry the torch threads the
run had (two runs side by side on the 2-core machine get one each). Table 1 carries the paper's numbers (SPEC §2.6: Llama-2-7B +
QLoRA, 500 units, 30 epochs) beside ours; the paper gives no numbers for the oracle and salient
controls, and its Table 6 values are not in the SPEC, so Table 6 compares each combination with
its base method measured here.

    python benchmarks/lama_ckl_tables.py --out benchmarks/results/lama_ckl_tables_cpu_smollm2 \\
        --results benchmarks/results/lama_ckl_cpu_smollm2 --rho1-finetuned benchmarks/results/lama_ckl_cpu_smollm2_rho1ft \\
        --combinations benchmarks/results/lama_ckl_cpu_smollm2_combos

Writes ``table1.md``, ``table6.md``, ``tables.json`` and ``table1_curves.png`` (To-Learn and NF
accuracy per epoch, one line per Table 1 row) into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# SPEC §2.6 (the paper's Table 1): Top Acc, Epoch, NF Acc, Total
PAPER = {
    "finetune": (0.115, 16, 0.817, 0.932),
    "kadapter": (0.126, 30, 0.998, 1.124),
    "mixreview": (0.080, 25, 0.799, 0.879),
    "recadam": (0.100, 24, 0.793, 0.893),
    "rho1": (0.141, 18, 0.822, 0.963),
    "taalm": (0.429, 4, 0.898, 1.327),
}

# label, folder key ("main" or "rho1ft"), method folder, paper row
TABLE1 = [
    ("Finetune", "main", "finetune", "finetune"),
    ("K-Adapter", "main", "kadapter", "kadapter"),
    ("Mix-review", "main", "mixreview", "mixreview"),
    ("RecAdam", "main", "recadam", "recadam"),
    ("RHO-1 (reference θ0)", "main", "rho1", "rho1"),
    ("RHO-1 (reference θ0 fine-tuned {reference_epochs} epochs)", "rho1ft", "rho1", "rho1"),
    ("TAALM", "main", "taalm", "taalm"),
    ("TAALM, the previous φ (T-REx only; Table 6's combinations ran with it)", "main", "taalm_phi2", None),
    ("oracle (needs the answers)", "main", "oracle", None),
    ("salient (rule, no φ)", "main", "salient", None),
]

# base method, its TAALM combination
TABLE6 = [("finetune", "taalm"), ("kadapter", "taalm+kadapter"), ("mixreview", "taalm+mixreview"),
          ("recadam", "taalm+recadam")]


def load_row(folder: Path | None, method: str) -> dict | None:
    path = folder / method / "result.json" if folder else None
    if path is None or not path.is_file():
        return None
    r = json.loads(path.read_text())
    curve = [json.loads(line) for line in (folder / method / "curve.jsonl").read_text().splitlines() if line.strip()]
    method_cfg = r.get("config", {}).get("method", {})
    return {"summary": r["summary"], "wall_s": r["wall_s"], "curve": curve, "source": str(path),
            "threads": r.get("environment", {}).get("torch_threads"), "sessions": r.get("sessions", 1),
            "reference_epochs": method_cfg.get("rho1", {}).get("reference_epochs")}


def _wall(row: dict) -> str:
    """Wall time as ``m:ss min`` (``h:mm:ss`` past an hour) and the torch threads it ran with:
    rows run two at a time on the 2-core machine had one thread each, so their wall times are
    longer than the same work alone with two. A resumed run says how many sessions it took; its
    threads are those of the last one."""
    sec = int(round(row["wall_s"]))
    h, rest = divmod(sec, 3600)
    m, s = divmod(rest, 60)
    t = f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d} min"
    notes = [f"{row['threads']} thr"] if row.get("threads") else []
    if row["sessions"] > 1:  # resumed: the threads are the last session's
        notes.append(f"{row['sessions']} sessions")
    return f"{t} ({', '.join(notes)})" if notes else t


def _fmt(row: dict | None) -> list[str]:
    if row is None:
        return ["not run"] + [""] * 4
    s = row["summary"]
    return [f"{s['top_acc']:.3f}", str(s["epoch"]), f"{s['nf_acc']:.3f}", f"{s['total']:.3f}", _wall(row)]


def table1(folders: dict[str, Path | None]) -> tuple[str, list[dict], dict[str, list[dict]]]:
    """The Markdown table, its rows for ``tables.json``, and each run row's curve by label."""
    lines = ["| method | Top Acc | Epoch | NF Acc | Total | wall time | paper Top Acc | paper Epoch | paper NF Acc "
             "| paper Total |", "|---|---|---|---|---|---|---|---|---|---|"]
    rows, curves = [], {}
    for label, where, method, paper in TABLE1:
        row = load_row(folders.get(where), method)
        label = label.format(reference_epochs=row["reference_epochs"] if row else "N")
        p = PAPER.get(paper) if paper else None
        pcells = [f"{p[0]:.3f}", str(p[1]), f"{p[2]:.3f}", f"{p[3]:.3f}"] if p else ["—"] * 4
        lines.append("| " + " | ".join([label, *_fmt(row), *pcells]) + " |")
        rows.append({"label": label, "method": method, "ours": row and {k: row[k] for k in ("summary", "wall_s", "source")},
                     "paper": dict(zip(("top_acc", "epoch", "nf_acc", "total"), p)) if p else None})
        if row:
            curves[label] = row["curve"]
    return "\n".join(lines) + "\n", rows, curves


def table6(folder: Path | None, combos: Path | None = None, taalm: str = "taalm") -> tuple[str, list[dict]]:
    """Each base method (from ``folder``) beside it with TAALM's weights (from ``combos``, else ``folder``).
    ``taalm``: the method folder paired with fine-tuning (the φ the combinations ran with)."""
    lines = ["| base method | Top Acc | NF Acc | Total | wall time | + TAALM weights | Top Acc | NF Acc | Total "
             "| wall time | Δ Top Acc | Δ NF Acc | Δ Total |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    rows = []
    for base, combo in TABLE6:
        combo = taalm if combo == "taalm" else combo
        a = load_row(folder, base)
        b = load_row(combos, combo) or load_row(folder, combo)

        def three(r):
            return ([f"{r['summary'][k]:.3f}" for k in ("top_acc", "nf_acc", "total")] + [_wall(r)] if r
                    else ["not run", "", "", ""])

        cells = [base, *three(a), combo, *three(b)]
        delta = ([f"{b['summary'][k] - a['summary'][k]:+.3f}" for k in ("top_acc", "nf_acc", "total")]
                 if a and b else ["", "", ""])
        lines.append("| " + " | ".join(cells + delta) + " |")
        rows.append({"base": base, "combination": combo,
                     "base_summary": a and a["summary"], "combination_summary": b and b["summary"],
                     "base_wall_s": a and a["wall_s"], "combination_wall_s": b and b["wall_s"]})
    return "\n".join(lines) + "\n", rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", type=Path, required=True, help="the bench folder of most rows")
    ap.add_argument("--rho1-finetuned", type=Path, help="the bench folder of rho1 with reference=finetuned")
    ap.add_argument("--combinations", type=Path,
                    help="the bench folder of Table 6's taalm+X rows (default: --results)")
    ap.add_argument("--table6-taalm", default="taalm", metavar="METHOD",
                    help="the method folder paired with finetune in Table 6: the φ the combinations ran with "
                         "(e.g. taalm_phi2 when they ran with an earlier φ)")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    t1, rows1, curves = table1({"main": a.results, "rho1ft": a.rho1_finetuned})
    t6, rows6 = table6(a.results, a.combinations, a.table6_taalm)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "table1.md").write_text(t1)
    (a.out / "table6.md").write_text(t6)
    (a.out / "tables.json").write_text(json.dumps({"table1": rows1, "table6": rows6}, indent=2) + "\n")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from taalm.reporting.plots import plot_curves

    plot_curves(curves, a.out / "table1_curves.png", title="LAMA-ckl (cpu size): Table 1 methods on SmolLM2-135M")
    print(t1)
    print(t6)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
