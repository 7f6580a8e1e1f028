"""Check a finished LAMA-ckl benchmark folder against the issue's targets for Train-Attention.

Targets (TAALM = method ``taalm``; non-oracle = every method except ``oracle``):
  1. TAALM's Top Acc >= 2 x finetune's
  2. TAALM's Top Acc >= RHO-1's
  3. TAALM's Total Knowledge > every other non-oracle method's
  4. TAALM's NF Acc >= finetune's
  5. TAALM reaches its Top Acc in fewer epochs than finetune

The numbers are read from ``OUT/summary.json`` as `taalm bench lama-ckl` wrote it; nothing is
recomputed. With ``--copy-to DIR`` the folder's light outputs (bench.json, results.md,
summary.json, curves.jsonl, curves.png, each method's result.json and curve.jsonl; not the run
folders with checkpoints) are copied there, and the check is written to ``DIR/targets.json``.

    python benchmarks/lama_ckl_targets.py runs/lama_cpu --copy-to benchmarks/results/lama_ckl_cpu_smollm2
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path


def check(summary: dict) -> dict:
    m = {k: v["summary"] for k, v in summary["methods"].items()}
    missing = [k for k in ("taalm", "finetune", "rho1") if k not in m]
    if missing:
        raise SystemExit(f"summary.json lacks the methods {missing}")
    t, f, r = m["taalm"], m["finetune"], m["rho1"]
    others = {k: v["total"] for k, v in m.items() if k not in ("taalm", "oracle")}
    targets = [
        {"target": "taalm Top Acc >= 2 x finetune Top Acc", "taalm": t["top_acc"],
         "reference": 2 * f["top_acc"], "ratio": t["top_acc"] / f["top_acc"] if f["top_acc"] else None,
         "met": t["top_acc"] >= 2 * f["top_acc"]},
        {"target": "taalm Top Acc >= rho1 Top Acc", "taalm": t["top_acc"], "reference": r["top_acc"],
         "met": t["top_acc"] >= r["top_acc"]},
        {"target": "taalm Total > every non-oracle Total", "taalm": t["total"], "reference": others,
         "met": all(t["total"] > v for v in others.values())},
        {"target": "taalm NF Acc >= finetune NF Acc", "taalm": t["nf_acc"], "reference": f["nf_acc"],
         "met": t["nf_acc"] >= f["nf_acc"]},
        {"target": "taalm Epoch < finetune Epoch", "taalm": t["epoch"], "reference": f["epoch"],
         "met": t["epoch"] < f["epoch"]},
    ]
    return {"size": summary.get("size"), "model": summary.get("model"),
            "probe_format": summary.get("probe_format"), "targets": targets,
            "all_met": all(x["met"] for x in targets)}


def copy_light(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("bench.json", "results.md", "summary.json", "curves.jsonl", "curves.png"):
        if (src / name).is_file():
            shutil.copy2(src / name, dst / name)
    for mdir in sorted(p for p in src.iterdir() if p.is_dir()):
        if (mdir / "result.json").is_file():
            (dst / mdir.name).mkdir(exist_ok=True)
            for name in ("result.json", "curve.jsonl"):
                shutil.copy2(mdir / name, dst / mdir.name / name)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", type=Path, help="a `taalm bench lama-ckl` output folder")
    ap.add_argument("--copy-to", type=Path, help="copy the light outputs here and write targets.json")
    a = ap.parse_args(argv)
    result = check(json.loads((a.folder / "summary.json").read_text()))
    for x in result["targets"]:
        print(f"{'MET ' if x['met'] else 'MISS'}  {x['target']}: taalm {x['taalm']}, reference {x['reference']}")
    if a.copy_to:
        copy_light(a.folder, a.copy_to)
        (a.copy_to / "targets.json").write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {a.copy_to}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
