"""Probe-evaluation throughput (probes/s): SmolLM2 on LAMA-ckl probes, several batch sizes.

The LAMA-ckl benchmark evaluates To-Learn and Not-To-Forget probes after every epoch, so
:func:`taalm.evaluation.probes.evaluate_probes` must be fast (target: >= 25 probes/s on the 2-core CPU).
For each batch size, both ways of computing the scores are timed, interleaved over repeats:

* ``answer_only`` — logits only at the answer positions (hidden states gathered before the LM
  head; the default);
* ``full`` — logits for every position (a ``[B, T, V]`` tensor), the computation before.

Reports the median seconds and probes/s of each, checks that both give the same scores, and
writes a JSON with the machine information.

    python benchmarks/eval_speed.py                         # SmolLM2, 256 probes, 2 threads
    python benchmarks/eval_speed.py --limit 64 --repeats 1  # quick look
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

DEFAULT_PROBES = Path(__file__).resolve().parents[2] / "shared/data/lama_ckl/invariant_descriptive.jsonl"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m", help="model spec (alias, HF name, folder, .gguf)")
    ap.add_argument("--probes", default=str(DEFAULT_PROBES), help="LAMA-ckl units or prompt/answer JSONL")
    ap.add_argument("--field", default="task_descriptive", help="probe field of LAMA-ckl units")
    ap.add_argument("--limit", type=int, default=256, help="first N probes")
    ap.add_argument("--batch-sizes", default="8,16,32,64")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--target", type=float, default=25.0, help="probes/s to reach")
    ap.add_argument("--out", default="benchmarks/results/eval_speed_cpu2.json")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from taalm.data import read_probes
    from taalm.evaluation.probes import encode_probes, evaluate_probes
    from taalm.models.loading import load_model
    from taalm.core.files import atomic_write_json, environment_info

    probes = read_probes(args.probes, args.field, args.limit)
    t0 = time.perf_counter()
    model, tok = load_model(args.model, args.device, args.dtype)
    load_s = time.perf_counter() - t0
    device = next(model.parameters()).device
    enc = encode_probes(tok, probes)
    n_tokens = [len(e.input_ids) for e in enc]
    sizes = [int(b) for b in args.batch_sizes.split(",") if b.strip()]
    modes = {"answer_only": True, "full": False}

    evaluate_probes(model, tok, probes[:min(len(probes), 8)], 8, encoded=enc[:8])  # warm-up
    times: dict[int, dict[str, list[float]]] = {b: {m: [] for m in modes} for b in sizes}
    scores: dict[str, object] = {}
    for r in range(args.repeats):
        for b in sizes:
            for mode, flag in modes.items():
                t = time.perf_counter()
                res = evaluate_probes(model, tok, probes, b, encoded=enc, answer_logits_only=flag)
                times[b][mode].append(time.perf_counter() - t)
                scores.setdefault(mode, res)
                print(f"repeat {r + 1}/{args.repeats} batch {b:>3} {mode:<11} "
                      f"{len(probes) / times[b][mode][-1]:7.1f} probes/s", flush=True)

    a, f = scores["answer_only"], scores["full"]
    same_acc = all(x.accuracy == y.accuracy for x, y in zip(a.per_probe, f.per_probe))
    max_nll_diff = max(abs(x.nll - y.nll) for x, y in zip(a.per_probe, f.per_probe))
    rows = []
    for b in sizes:
        row = {"batch_size": b}
        for mode in modes:
            med = statistics.median(times[b][mode])
            row[mode] = {"median_s": round(med, 3), "probes_per_s": round(len(probes) / med, 1),
                         "runs_s": [round(x, 3) for x in times[b][mode]]}
        row["speedup"] = round(row["full"]["median_s"] / row["answer_only"]["median_s"], 3)
        rows.append(row)
    best = max(rows, key=lambda r: r["answer_only"]["probes_per_s"])
    result = {
        "what": "taalm.evaluation.probes.evaluate_probes throughput: answer-position logits vs all logits",
        "model": args.model, "probes": str(args.probes), "field": args.field, "n_probes": len(probes),
        "probe_tokens": {"mean": round(sum(n_tokens) / len(n_tokens), 1), "max": max(n_tokens)},
        "threads": args.threads, "repeats": args.repeats, "model_load_s": round(load_s, 1),
        "results": rows,
        "best": {"batch_size": best["batch_size"], "probes_per_s": best["answer_only"]["probes_per_s"]},
        "target_probes_per_s": args.target,
        "meets_target": best["answer_only"]["probes_per_s"] >= args.target,
        "same_scores": {"accuracy_identical": same_acc, "max_abs_nll_difference": max_nll_diff},
        "accuracy": a.accuracy,
        "environment": environment_info(device),
    }
    atomic_write_json(args.out, result)
    print(f"{'batch':>5}  {'answer_only':>12}  {'full':>12}  speed-up")
    for r in rows:
        print(f"{r['batch_size']:>5}  {r['answer_only']['probes_per_s']:>8.1f} p/s  "
              f"{r['full']['probes_per_s']:>8.1f} p/s  {r['speedup']:.2f}x")
    print(f"best: batch {best['batch_size']}, {best['answer_only']['probes_per_s']:.1f} probes/s "
          f"(target {args.target:g}: {'met' if result['meets_target'] else 'NOT met'}); "
          f"scores identical: {same_acc} (max NLL difference {max_nll_diff:.2e}) -> {args.out}")
    return result


if __name__ == "__main__":
    main()
