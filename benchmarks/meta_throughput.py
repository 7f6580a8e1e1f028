"""Meta-training throughput (pairs/s) on φ-pool pairs, for the settings that do not change the gradient.

One φ update's work for the same B pairs (``--pairs`` from a pool file, descriptive tasks): pairs
sorted by length, cut into forward passes of ``micro_pairs``; per pass make_batch → φ's weights →
``meta_step`` (directional engine, AdamW inner step, k_warm 1) → ``w.backward``. Variants:

  micro_pairs ∈ {4, 8} × max_doc_tokens ∈ {256, 128}

``micro_pairs`` does not change φ's gradient (it is the mean over the B pairs either way: the
script checks the relative difference of the accumulated gradient). ``max_doc_tokens`` changes it
only for the documents it cuts (their fraction is reported). Each round runs every variant once,
the order rotating; the median seconds per variant over ``--repeats`` rounds is reported with
the ratio to the slowest variant measured in the same rounds.

    .venv/bin/python benchmarks/meta_throughput.py --pool POOL/train.jsonl --out benchmarks/results/meta_throughput_cpu2.json
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pool", required=True, type=Path, help="φ-pool units (taalm data pool → train.jsonl)")
    ap.add_argument("--pairs", type=int, default=16, help="pairs per φ update (batch_pairs)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)

    import torch

    torch.set_num_threads(a.threads)
    from taalm.core.config import PhiConfig
    from taalm.data import read_pairs
    from taalm.meta.config import InnerConfig, MetaThetaConfig, MetaTrainConfig
    from taalm.meta.gradient import meta_step
    from taalm.meta.theta import MetaTheta
    from taalm.meta.pairs import encode_pairs, make_batch, phi_weights
    from taalm.models.loading import load_model
    from taalm.core.files import atomic_write_json, environment_info
    from taalm.models.phi import TrainAttention

    pairs = read_pairs(a.pool, "task_descriptive", a.pairs)
    model, tok = load_model("smollm2-135m", attn="eager")
    theta = MetaTheta(model, MetaThetaConfig(r=16, alpha=32))
    phi = TrainAttention.from_config(PhiConfig(), device="cpu")
    phi.train()
    settings = MetaTrainConfig(engine="directional", inner=InnerConfig(optimizer="adamw", lr=1e-3, k_warm=1))
    params = list(phi.trainable_parameters().values())

    def one_update(micro: int, max_doc: int) -> tuple[float, torch.Tensor]:
        enc = encode_pairs(tok, pairs, max_doc)
        idx = sorted(range(len(enc)), key=lambda i: len(enc[i].doc.input_ids))
        for p in params:
            p.grad = None
        t0 = time.perf_counter()
        for k in range(0, len(idx), micro):
            items = [enc[i] for i in idx[k:k + micro]]
            batch = make_batch(items, tok.pad_token_id, "cpu")
            w = phi_weights(phi, items, batch.doc_ids.shape[1], "cpu")
            res = meta_step(theta, batch, w, settings)
            w.backward(res.grad_w.to(w.dtype) * len(items) / len(idx))
        dt = time.perf_counter() - t0
        return dt, torch.cat([p.grad.flatten() for p in params if p.grad is not None]).clone()

    variants = [(4, 256), (8, 256), (4, 128), (8, 128)]
    lengths = [len(e.doc.input_ids) for e in encode_pairs(tok, pairs, 10 ** 6)]
    one_update(4, 128)  # warm-up
    times: dict[tuple, list[float]] = {v: [] for v in variants}
    grads: dict[tuple, torch.Tensor] = {}
    for r in range(a.repeats):
        for j in range(len(variants)):
            v = variants[(j + r) % len(variants)]
            dt, g = one_update(*v)
            times[v].append(dt)
            grads[v] = g
            print(f"round {r + 1}: micro_pairs={v[0]} max_doc_tokens={v[1]}: {dt:.1f} s", file=sys.stderr)
    slowest = max(statistics.median(t) for t in times.values())

    def rel(x, y):
        return float((x - y).norm() / y.norm())

    rows = [{"micro_pairs": v[0], "max_doc_tokens": v[1], "seconds": statistics.median(t), "all_seconds": t,
             "pairs_per_s": a.pairs / statistics.median(t), "speedup_vs_slowest": slowest / statistics.median(t)}
            for v, t in times.items()]
    out = {"benchmark": "meta-training throughput", "machine": platform.processor() or platform.machine(),
           "threads": a.threads, "pairs": a.pairs, "repeats": a.repeats, "pool": str(a.pool),
           "doc_tokens": {"max": max(lengths), "median": statistics.median(lengths),
                          "cut_at_128": sum(n > 128 for n in lengths) / len(lengths),
                          "cut_at_256": sum(n > 256 for n in lengths) / len(lengths)},
           "grad_rel_diff_micro4_vs_micro8": {"256": rel(grads[(4, 256)], grads[(8, 256)]),
                                              "128": rel(grads[(4, 128)], grads[(8, 128)])},
           "grad_rel_diff_128_vs_256": rel(grads[(8, 128)], grads[(8, 256)]),
           "variants": rows, "environment": environment_info("cpu")}
    atomic_write_json(a.out, out)
    for r in rows:
        print(f"micro_pairs={r['micro_pairs']} max_doc_tokens={r['max_doc_tokens']}: {r['seconds']:.1f} s "
              f"({r['pairs_per_s']:.3f} pairs/s, {r['speedup_vs_slowest']:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
