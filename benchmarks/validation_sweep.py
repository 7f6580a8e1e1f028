#!/usr/bin/env python3
"""Choose settings on our own invented-fact validation set, never on a test set.

The set (``benchmarks/data/invented_val``, written by ``scripts/make_invented_val.py``) holds 128
documents in 8 groups of 16, the demo's size. Every configuration learns each group from the same
θ0 (SmolLM2-135M, a fresh LoRA adapter), evaluating after every epoch:

* learned: answer accuracy (and exact match) of the group's 16 probes;
* kept: accuracy on the built-in general facts the base model answered (``data.kept=builtin``,
  100 facts; 1.0 before training).

    python benchmarks/validation_sweep.py run --config NAME "key=value ..." [--config ...] \\
        --groups 0-3 --out benchmarks/results/validation_sweep.jsonl
    python benchmarks/validation_sweep.py summary benchmarks/results/validation_sweep.jsonl
    python benchmarks/validation_sweep.py at-epoch FILE --epoch 4 --configs "finetune:ft_mlp_b8_lr1e-3;..."

``run`` appends one JSON line per (configuration, group) and skips those already in the file, so
a killed sweep resumes; two sweeps may run side by side on different configurations (each line is
written whole, with one write). ``summary`` prints, per configuration, the mean learned/kept per
epoch over its groups and at the last epoch with standard errors over documents.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "benchmarks" / "data" / "invented_val"


def parse_groups(spec: str) -> list[int]:
    out: list[int] = []
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def done_keys(path: Path) -> set[tuple[str, int]]:
    if not path.exists():
        return set()
    keys = set()
    for line in path.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            keys.add((row["config"], row["group"]))
    return keys


def run(args) -> None:
    import torch

    from taalm import LearnConfig, load_config, load_model
    from taalm.ckl.learner import learn
    from taalm.core.run import QUIET
    from taalm.data import read_documents, read_probes
    from taalm.evaluation.keep import general_facts, select_known

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    done = done_keys(out)
    docs, probes = read_documents(DATA / "documents.jsonl"), read_probes(DATA / "probes.jsonl")
    groups = {g: ([d for d, row in zip(docs, _rows("documents")) if row["group"] == g],
                  [p for p, row in zip(probes, _rows("probes")) if row["group"] == g]) for g in parse_groups(args.groups)}
    base, tok = load_model("smollm2-135m")
    keep = select_known(base, tok, general_facts())
    print(f"kept set: {len(keep)} general facts the base model answers", file=sys.stderr)
    for name, overrides in args.config:
        cfg = load_config(LearnConfig, None, [*overrides.split(), "data.kept=none"])
        for g, (gd, gp) in groups.items():
            if (name, g) in done:
                continue
            t0 = time.time()
            res = learn(gd, gp, cfg, model=copy.deepcopy(base), tokenizer=tok, extra_probes={"kept": keep},
                        options=QUIET)
            hist = [{"epoch": r["epoch"], "learned": r["accuracy"], "exact": r["exact"], "nll": r["nll"],
                     "kept": r["kept"]["accuracy"], "kept_exact": r["kept"]["exact"]} for r in res.history]
            row = {"config": name, "overrides": overrides, "group": g, "n_documents": len(gd), "steps": res.steps,
                   "history": hist, "seconds": round(time.time() - t0, 1)}
            with open(out, "a") as f:  # one write per line: side-by-side sweeps never interleave a line
                f.write(json.dumps(row) + "\n")
            last = hist[-1]
            print(f"{name} group {g}: learned {last['learned']:.3f} kept {last['kept']:.3f} "
                  f"({row['seconds']:.0f} s)", file=sys.stderr, flush=True)
            del res


def _rows(name: str) -> list[dict]:
    return [json.loads(x) for x in (DATA / f"{name}.jsonl").read_text().splitlines() if x.strip()]


def summary(args) -> None:
    rows = [json.loads(x) for x in Path(args.file).read_text().splitlines() if x.strip()]
    by: dict[str, list[dict]] = {}
    for r in rows:
        by.setdefault(r["config"], []).append(r)
    print("| config | settings | groups | steps | learned (last) | exact (last) | kept (last) | Total "
          f"| learned at kept ≥ {args.kept_at:g} (epoch) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, rs in by.items():
        table = summarise(rs, args.kept_at)
        at = table["frontier"]
        print(f"| {name} | `{rs[0]['overrides']}` | {len(rs)} | {rs[0]['steps']} | {_pm(table['learned'])} | "
              f"{_pm(table['exact'])} | {_pm(table['kept'])} | {table['total'][0]:.3f} | "
              + (f"{at[0]:.3f} ({at[1]}, kept {at[2]:.3f}) |" if at else "– |"))


def at_epoch(args) -> None:
    """One epoch of several configurations side by side: learned, exact, kept and Total with their
    standard errors over groups (16 documents each); the rows in the order given."""
    rows = [json.loads(x) for x in Path(args.file).read_text().splitlines() if x.strip()]
    e = args.epoch
    print(f"| method (configuration) | groups | learned at epoch {e} | exact | kept | Total |")
    print("|---|---|---|---|---|---|")
    for spec in args.configs.split(";"):
        label, _, name = spec.rpartition(":") if ":" in spec else ("", "", spec)
        label = label or name
        rs = [r for r in rows if r["config"] == (name or label) and len(r["history"]) > e]
        if not rs:
            print(f"| {label} | 0 | – | – | – | – |")
            continue
        h = [r["history"][e] for r in rs]
        cells = [_pm(_mean_se([x[k] for x in h])) for k in ("learned", "exact", "kept")]
        print(f"| {label} (`{name or label}`) | {len(rs)} | " + " | ".join(cells)
              + f" | {_pm(_mean_se([x['learned'] + x['kept'] for x in h]))} |")


def summarise(rs: list[dict], kept_at: float = 0.8) -> dict:
    """Means over groups (16 documents each) of the last epoch, with the standard error over
    groups; the epoch whose mean learned accuracy is highest, and kept there; ``frontier``: the
    most learned at an epoch whose mean kept is at least ``kept_at`` (learned, epoch, kept), the
    fair comparison of two methods that forget at different speeds."""
    last = [r["history"][-1] for r in rs]
    out = {k: _mean_se([h[k] for h in last]) for k in ("learned", "exact", "kept")}
    out["total"] = _mean_se([h["learned"] + h["kept"] for h in last])
    n_epochs = min(len(r["history"]) for r in rs)
    curve = [sum(r["history"][e]["learned"] for r in rs) / len(rs) for e in range(n_epochs)]
    kept_curve = [sum(r["history"][e]["kept"] for r in rs) / len(rs) for e in range(n_epochs)]
    best = max(range(n_epochs), key=lambda e: curve[e])
    out.update(best_learned=curve[best], best_epoch=rs[0]["history"][best]["epoch"], kept_at_best=kept_curve[best],
               curve=curve, kept_curve=kept_curve)
    ok = [e for e in range(1, n_epochs) if kept_curve[e] >= kept_at]
    top = max(ok, key=lambda e: curve[e], default=None)
    out["frontier"] = None if top is None else (curve[top], rs[0]["history"][top]["epoch"], kept_curve[top])
    return out


def _mean_se(xs: list[float]) -> tuple[float, float]:
    m = sum(xs) / len(xs)
    if len(xs) < 2:
        return m, float("nan")
    return m, math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1) / len(xs))


def _pm(ms: tuple[float, float]) -> str:
    return f"{ms[0]:.3f} ± {ms[1]:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--config", nargs=2, action="append", metavar=("NAME", "OVERRIDES"), required=True)
    r.add_argument("--groups", default="0-7")
    r.add_argument("--out", default=str(ROOT / "benchmarks/results/validation_sweep.jsonl"))
    r.add_argument("--threads", type=int, default=int(os.environ.get("TAALM_THREADS", "1")))
    s = sub.add_parser("summary")
    s.add_argument("file")
    s.add_argument("--kept-at", type=float, default=0.8, help="the frontier column: most learned with kept ≥ this")
    t = sub.add_parser("at-epoch", help="several configurations at one epoch, side by side")
    t.add_argument("file")
    t.add_argument("--epoch", type=int, required=True)
    t.add_argument("--configs", required=True, help="LABEL:CONFIG;... (or CONFIG;...)")
    args = ap.parse_args()
    {"run": run, "summary": summary, "at-epoch": at_epoch}[args.cmd](args)


if __name__ == "__main__":
    main()
