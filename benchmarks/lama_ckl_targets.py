"""Check a finished LAMA-ckl benchmark folder against the targets for Train-Attention (issue 9).

Targets (TAALM = method ``taalm``; deployable = every method but ``taalm`` and ``oracle`` that
needs no answer: finetune, rho1, random, salient, and any earlier φ run as ``taalm_*``):
  1. TAALM's Top Acc >= 2 x finetune's
  2. TAALM's Top Acc >= 0.6 x oracle's
  3. TAALM's Top Acc > salient's
  4. TAALM's NF Acc (at its top epoch) >= finetune's
  5. TAALM's Total Knowledge > every deployable method's
  6. TAALM reaches its top in at most half as many epochs as finetune
Methods a target needs but the folder lacks make that target "not run" (never met).

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


def _target(name: str, need: list[str], m: dict, fn) -> dict:
    if any(k not in m for k in need):
        return {"target": name, "taalm": None, "reference": None, "met": False,
                "note": f"not run: the folder lacks {[k for k in need if k not in m]}"}
    taalm, ref, met = fn()
    return {"target": name, "taalm": taalm, "reference": ref, "met": bool(met)}


def check(summary: dict) -> dict:
    m = {k: v["summary"] for k, v in summary["methods"].items()}
    if "taalm" not in m:
        raise SystemExit("summary.json lacks the method taalm")
    t = m["taalm"]
    deployable = {k: v["total"] for k, v in m.items() if k not in ("taalm", "oracle")}
    targets = [
        _target("taalm Top Acc >= 2 x finetune Top Acc", ["finetune"], m,
                lambda: (t["top_acc"], 2 * m["finetune"]["top_acc"], t["top_acc"] >= 2 * m["finetune"]["top_acc"])),
        _target("taalm Top Acc >= 0.6 x oracle Top Acc", ["oracle"], m,
                lambda: (t["top_acc"], 0.6 * m["oracle"]["top_acc"], t["top_acc"] >= 0.6 * m["oracle"]["top_acc"])),
        _target("taalm Top Acc > salient Top Acc", ["salient"], m,
                lambda: (t["top_acc"], m["salient"]["top_acc"], t["top_acc"] > m["salient"]["top_acc"])),
        _target("taalm NF Acc >= finetune NF Acc", ["finetune"], m,
                lambda: (t["nf_acc"], m["finetune"]["nf_acc"], t["nf_acc"] >= m["finetune"]["nf_acc"])),
        _target("taalm Total > every deployable Total (finetune, rho1, random, salient, ...)",
                ["finetune", "rho1", "random", "salient"], m,
                lambda: (t["total"], deployable, all(t["total"] > v for v in deployable.values()))),
        _target("taalm Epoch <= finetune Epoch / 2", ["finetune"], m,
                lambda: (t["epoch"], m["finetune"]["epoch"] / 2, t["epoch"] <= m["finetune"]["epoch"] / 2)),
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
