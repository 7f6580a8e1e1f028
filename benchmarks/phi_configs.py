"""Every φ configuration tried, with its validation result: a JSONL of rows and a Markdown table.

Selection of φ uses only the φ pool's validation split (``taalm data pool`` → ``val.jsonl``),
never the benchmark's To-Learn or Not-To-Forget units. Three ways to add a row to
``benchmarks/results/phi_configs.jsonl`` (a row with the same ``name`` is replaced):

    # a meta-training run folder: its recipe, validation curve, references, wall time, pairs/s
    python benchmarks/phi_configs.py run RUN_DIR --name trex-descriptive --note "..."
    # validate fixed weights with a run's validation settings: a φ folder, the shipped φ, or a rule
    python benchmarks/phi_configs.py validate --weights shipped --val POOL/val128.jsonl \\
        --config recipes/phi_smollm2_trex.yaml --name shipped-phi
    #   (--weights salient | finetune | oracle | shipped | PHI_DIR; extra key=value overrides,
    #    e.g. val.known_masking=true)
    # rebuild the Markdown table from the JSONL
    python benchmarks/phi_configs.py table

Validation (the CKL protocol, :func:`taalm.meta.validation.validate`): θ0 (a fresh LoRA) learns the
held-out documents with the weights for ``val.epochs`` epochs, then the answer accuracy of their
probes (``task_field``; descriptive = the benchmark's own metric) is measured.
Data licence of the pool (LAMA T-REx): CC BY-NC 4.0.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
JSONL = RESULTS / "phi_configs.jsonl"
TABLE = RESULTS / "phi_configs.md"
# recipe keys shown in the table (the rest of each row's config is in the JSONL)
KEYS = ["task_field", "updates", "batch_pairs", "lr", "lr_schedule", "max_doc_tokens", "inner.optimizer", "inner.lr",
        "inner.k_warm", "phi.lora.r", "phi.layers", "objective", "val.epochs", "val.known_masking"]


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _read() -> list[dict]:
    if not JSONL.is_file():
        return []
    return [json.loads(line) for line in JSONL.read_text().splitlines() if line.strip()]


def _store(row: dict) -> None:
    from taalm.core.files import atomic_write_text

    rows = [r for r in _read() if r["name"] != row["name"]] + [row]
    atomic_write_text(JSONL, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    write_table(rows)


def row_from_run(run: Path, name: str, note: str) -> dict:
    """A meta-training run folder → one row (best validation, curve, references, throughput)."""
    import yaml

    cfg = yaml.safe_load((run / "config.yaml").read_text())
    def rows(name):  # an aborted run may lack its log or validations
        f = run / name
        return [json.loads(x) for x in f.read_text().splitlines() if x.strip()] if f.is_file() else []

    val, log = rows("val.jsonl"), rows("log.jsonl")
    refs = json.loads((run / "val_references.json").read_text()) if (run / "val_references.json").is_file() else {}
    info = json.loads((run / "run.json").read_text()) if (run / "run.json").is_file() else {}
    best = max(val, key=lambda r: (r["accuracy"], -r["update"])) if val else None
    upd_s = sum(r["seconds"] for r in log)
    pairs = len(log) * cfg["batch_pairs"]
    return {"name": name, "kind": "meta-training run", "note": note, "run_dir": str(run),
            "status": info.get("status"), "config": _flat(cfg), "n_train_pairs": info.get("n_pairs"),
            "n_val": best["n"] if best else None, "updates_done": len(log),
            "val_curve": [{"update": r["update"], "accuracy": r["accuracy"], "nll": round(r["nll"], 4),
                           **({"splits": {k: v["accuracy"] for k, v in r["splits"].items()}} if "splits" in r else {})}
                          for r in val],
            "best_update": best["update"] if best else None, "accuracy": best["accuracy"] if best else None,
            "nll": round(best["nll"], 4) if best else None,
            "references": {k: v["accuracy"] for k, v in refs.items()},
            **({"references_by_split": {k: {n: x["accuracy"] for n, x in v["splits"].items()} for k, v in refs.items()}}
               if refs and all("splits" in v for v in refs.values()) else {}),
            "update_seconds": round(upd_s, 1), "pairs_per_s": round(pairs / upd_s, 3) if upd_s else None,
            "wall_seconds": info.get("seconds"),
            "w_answer_last": log[-1].get("w_answer") if log else None,
            "w_other_last": log[-1].get("w_other") if log else None,
            "device": info.get("device"), "machine": info.get("machine") or info.get("platform")}


def row_from_validation(weights: str, val_file: Path, recipe: Path | None, overrides: list[str],
                        name: str, note: str) -> dict:
    """Validate fixed weights (a φ folder, the shipped φ, or a rule) with a recipe's settings."""
    from taalm.core.config import load_config, to_dict
    from taalm.meta.config import MetaTrainConfig
    from taalm.ckl.config import MethodConfig
    from taalm.data import read_pairs
    from taalm.meta.validation import validate
    from taalm.models.loading import load_model
    from taalm.core.files import environment_info
    from taalm.models.phi import TrainAttention, default_phi_checkpoint
    from taalm.ckl.weighting import weights_for_documents
    from taalm.ckl.method import get_method

    cfg = load_config(MetaTrainConfig, recipe, overrides)
    pairs = read_pairs(val_file, cfg.task_field)
    model, tok = load_model(cfg.model.name, cfg.model.device, cfg.model.dtype, attn="eager")
    t0 = time.time()
    phi, ws = None, None
    if weights in ("salient", "finetune", "oracle"):
        docs = [p.document for p in pairs]
        ws = [w for _, w in weights_for_documents(get_method(MethodConfig(name=weights)), model, tok, docs)]
    else:
        folder = default_phi_checkpoint() if weights == "shipped" else weights
        phi = TrainAttention.from_pretrained(folder, device=str(next(model.parameters()).device))
        phi.eval()
    res = validate(phi, model, tok, pairs, cfg, weights=ws, label=weights)
    return {"name": name, "kind": "fixed weights", "weights": weights, "note": note,
            "val_file": str(val_file), "config": _flat(to_dict(cfg)), "n_val": res["n"],
            "accuracy": res["accuracy"], "nll": round(res["nll"], 4),
            "accuracy_before": res["accuracy_before"], "seconds": round(time.time() - t0, 1),
            "environment": environment_info(next(model.parameters()).device)}


def write_table(rows: list[dict]) -> None:
    from taalm.core.files import atomic_write_text

    lines = ["# φ configurations and their validation results", "",
             "Generated by `python benchmarks/phi_configs.py table` from `phi_configs.jsonl`; "
             "validation = θ0 learns the held-out φ-pool documents with the weights, then the answer "
             "accuracy of their probes. Rows are in the order they were tried; misses included.", "",
             "| # | name | kind | val acc (n) | best update / done | uniform | oracle | pairs/s | " +
             " | ".join(KEYS) + " | note |",
             "|" + "---|" * (10 + len(KEYS))]
    for i, r in enumerate(rows, 1):
        c = r.get("config", {})
        refs = r.get("references", {})
        best = (f"{r['best_update']} / {r['updates_done']}" if r.get("kind") == "meta-training run"
                else r.get("weights", ""))
        acc = f"{r['accuracy']:.3f} ({r.get('n_val')})" if r.get("accuracy") is not None else "–"
        cells = [str(i), r["name"], r.get("kind", ""), acc, best,
                 f"{refs['finetune']:.3f}" if "finetune" in refs else "",
                 f"{refs['oracle']:.3f}" if "oracle" in refs else "",
                 str(r.get("pairs_per_s") or "")] + [str(c.get(k, "")) for k in KEYS] + [r.get("note", "")]
        lines.append("| " + " | ".join(cells) + " |")
    atomic_write_text(TABLE, "\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("run", help="add a meta-training run folder")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--name", required=True)
    p.add_argument("--note", default="")
    p = sub.add_parser("validate", help="validate fixed weights and add the result")
    p.add_argument("--weights", required=True, help="salient | finetune | oracle | shipped | PHI_DIR")
    p.add_argument("--val", required=True, type=Path, help="held-out LAMA-ckl units (the pool's val split)")
    p.add_argument("--config", type=Path, help="meta-training recipe whose val.* settings to use")
    p.add_argument("--name", required=True)
    p.add_argument("--note", default="")
    p.add_argument("overrides", nargs="*", metavar="key=value")
    sub.add_parser("table", help="rebuild the Markdown table")
    a = ap.parse_args(argv)
    if a.cmd == "run":
        row = row_from_run(a.run_dir, a.name, a.note)
    elif a.cmd == "validate":
        row = row_from_validation(a.weights, a.val, a.config, a.overrides, a.name, a.note)
    else:
        write_table(_read())
        return 0
    _store(row)
    print(json.dumps({k: row[k] for k in ("name", "accuracy", "n_val")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
