#!/usr/bin/env python3
"""Copy the finished methods of a LAMA-ckl bench folder (possibly still running) into a results
folder: each finished method's ``result.json`` and ``curve.jsonl``, ``bench.json``, and a
``summary.json`` in the shape `taalm bench lama-ckl` writes at the end, built from the finished
methods' own results (nothing recomputed) and saying which methods it holds.

    python benchmarks/lama_ckl_collect.py runs/lama_rules benchmarks/results/lama_ckl_cpu_smollm2_rules \
        --methods dft,stm,eaft,asft

Run it again when more methods have finished: it rewrites the results folder from the source.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path


def collect(src: Path, dst: Path, expected: list[str] | None = None) -> dict:
    bench = json.loads((src / "bench.json").read_text())
    methods = {}
    dst.mkdir(parents=True, exist_ok=True)
    for mdir in sorted(p for p in src.iterdir() if p.is_dir() and (p / "result.json").is_file()):
        r = json.loads((mdir / "result.json").read_text())
        methods[mdir.name] = {"summary": r["summary"], "wall_s": r["wall_s"]}
        (dst / mdir.name).mkdir(exist_ok=True)
        for name in ("result.json", "curve.jsonl"):
            if (mdir / name).is_file():
                shutil.copy2(mdir / name, dst / mdir.name / name)
    shutil.copy2(src / "bench.json", dst / "bench.json")
    asked = expected or []
    summary = {"benchmark": "lama-ckl", "size": bench.get("size"), "model": (bench.get("config") or {}).get("model", {}).get("name"),
               "epochs": ((bench.get("config") or {}).get("train") or {}).get("epochs"), "methods": methods,
               "finished": sorted(methods), "not_finished": [m for m in asked if m not in methods]}
    (dst / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src", type=Path, help="a `taalm bench lama-ckl` output folder")
    ap.add_argument("dst", type=Path, help="the results folder to (re)write")
    ap.add_argument("--methods", default="", help="the methods the run was asked for (to list the unfinished)")
    a = ap.parse_args(argv)
    s = collect(a.src, a.dst, [m for m in a.methods.split(",") if m])
    for name, m in s["methods"].items():
        r = m["summary"]
        print(f"{name}: Top Acc {r['top_acc']:.3f} (epoch {r['epoch']}), NF {r['nf_acc']:.3f}, Total {r['total']:.3f}")
    print(f"not finished: {', '.join(s['not_finished']) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
