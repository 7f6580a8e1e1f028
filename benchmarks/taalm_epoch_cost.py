"""Does a `taalm` epoch cost what a `finetune` epoch costs? (φ's weights are cached per document.)

Runs the ordinary learner twice on the same documents from the same θ0 — method `finetune` and
method `taalm` with a φ checkpoint (a freshly initialised φ is saved when none is given: the cost
does not depend on what φ has learned) — and reports the one-off φ scoring time and the per-epoch
training times side by side, interleaved over repeats.

    python benchmarks/taalm_epoch_cost.py --docs ../shared/data/lama_ckl/variant.jsonl --limit 32
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import tempfile
import time
from pathlib import Path
from taalm.core.run import QUIET


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", default=str(Path(__file__).resolve().parents[2] / "shared/data/lama_ckl/variant.jsonl"))
    ap.add_argument("--limit", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--phi", help="φ checkpoint folder (default: a fresh φ0, saved to a temp folder)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/results/taalm_epoch_cost_cpu2.json")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from taalm.core.config import load_config
    from taalm.ckl.config import LearnConfig
    from taalm.data import read_documents
    from taalm.ckl.learner import learn
    from taalm.models.loading import load_model
    from taalm.core.files import atomic_write_json, environment_info
    from taalm.models.phi import TrainAttention

    docs = read_documents(args.docs, args.limit)
    model, tok = load_model("smollm2-135m", device="cpu")
    phi_dir = args.phi
    tmp = None
    if phi_dir is None:
        tmp = tempfile.TemporaryDirectory()
        TrainAttention.from_config(device="cpu").save_pretrained(Path(tmp.name) / "phi")
        phi_dir = str(Path(tmp.name) / "phi")

    rows = {"finetune": [], "taalm": []}
    for r in range(args.repeats):
        for method in ("finetune", "taalm"):
            over = [f"train.epochs={args.epochs}", "train.batch_size=8", f"method.name={method}"]
            if method == "taalm":
                over.append(f"method.taalm.checkpoint={phi_dir}")
            cfg = load_config(LearnConfig, None, over)
            t0 = time.perf_counter()
            res = learn(docs, None, cfg, None, model=copy.deepcopy(model), tokenizer=tok,
                        options=QUIET)
            # epoch_seconds: training only (prepare() — φ's one-off scoring — is timed apart)
            epoch_times = res.epoch_seconds
            prep = {"s": res.prepare_seconds}
            rows[method].append({"repeat": r, "prepare_s": round(prep["s"], 3),
                                 "epoch_s": [round(x, 3) for x in epoch_times],
                                 "total_s": round(time.perf_counter() - t0, 3)})
            print(method, rows[method][-1], flush=True)

    def med(method, k):
        return statistics.median(x for row in rows[method] for x in row["epoch_s"][k:])

    summary = {
        "finetune_epoch_s": round(med("finetune", 0), 3),
        "taalm_epoch_s": round(med("taalm", 0), 3),
        "taalm_later_epoch_s": round(med("taalm", 1), 3),
        "finetune_later_epoch_s": round(med("finetune", 1), 3),
        "taalm_phi_scoring_once_s": round(statistics.median(r["prepare_s"] for r in rows["taalm"]), 3),
    }
    summary["later_epoch_ratio_taalm_over_finetune"] = round(summary["taalm_later_epoch_s"] / summary["finetune_later_epoch_s"], 3)
    result = {"benchmark": "taalm_epoch_cost", "machine": environment_info(torch.device("cpu")),
              "settings": {"docs": args.docs, "limit": args.limit, "epochs": args.epochs,
                           "repeats": args.repeats, "threads": args.threads, "batch_size": 8,
                           "model": "smollm2-135m (LoRA r=16 θ, fp32)"},
              "runs": rows, "summary": summary}
    atomic_write_json(args.out, result)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
