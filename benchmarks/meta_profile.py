"""Where a φ update's time goes, and what each speed lever buys (pairs/s, side by side).

One φ update of ``--pairs`` pool pairs (descriptive tasks; the first pairs of the seeded stream a
run with ``seed`` draws, so document lengths are those of training), exactly as ``taalm train-attention``
computes it (pairs sorted by length, micro-batches of ``micro_pairs``, φ's weights, ``meta_step``,
``w.backward``), timed stage by stage: each of taalm's own meta-gradient functions is wrapped by
a timer that counts its time *exclusive* of the wrapped functions it calls (nothing of PyTorch
is patched). Stages: φ forward, warm-up (k_warm steps), inner forward (weighted document loss),
inner backward (g), θ0's task loss (logged ``outer0``), task forward + backward at θ', ∂ℓ/∂h, the
JVP through the backbone, φ backward, the rest. (The warm-up's own forward and backward are
counted under the inner forward and backward stages.)

Levers (rows), each run in the same process, the order rotating over ``--repeats`` rounds:
  shipped         AdamW inner step, k_warm 1, micro_pairs 8, φ reads all layers
  sgd             SGD inner step, no warm-up (U' = lr exactly)
  sgd+phi12       ... and φ reads only its backbone's first 12 decoder layers
  sgd+phi12+m4    ... and micro-batches of 4 length-sorted pairs (less padding; same gradient)
  adamw+phi12     the shipped inner step with the 12-layer φ
  sgd+phi12+theta8  ... SGD, 12-layer φ, and θ's per-pair LoRA on its last 8 decoder layers only
                  (theta.lora_layers=8: the inner backward and the JVP stop at layer 22 of 30)

    .venv/bin/python benchmarks/meta_profile.py --pool POOL/train.jsonl --out benchmarks/results/meta_profile_cpu2.json
"""

from __future__ import annotations

import argparse
import functools
import platform
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

STAGES = {"_warm_up": "warm-up steps", "_doc_loss": "inner forward (document)", "_grads": "backward (g or ∇θ'O)",
          "_reference_losses": "reference losses", "_task_terms": "task forward at θ'",
          "_dloss_dhidden": "∂ℓ/∂h (softmax · W_head)", "_jvp_hidden": "JVP through the backbone",
          "phi_forward": "φ forward", "phi_backward": "φ backward", "meta_step": "θ0 task loss (logged) + glue"}


class Timer:
    """Exclusive wall time per stage (a stage's time minus that of the timed stages it calls)."""

    def __init__(self):
        self.total: dict[str, float] = defaultdict(float)
        self.stack: list[list] = []

    def wrap(self, name, fn):
        @functools.wraps(fn)
        def inner(*a, **k):
            self.stack.append([name, time.perf_counter(), 0.0])
            try:
                return fn(*a, **k)
            finally:
                n, t0, child = self.stack.pop()
                dt = time.perf_counter() - t0
                self.total[n] += dt - child
                if self.stack:
                    self.stack[-1][2] += dt
        return inner

    def block(self, name):
        timer = self

        class _B:
            def __enter__(self):
                timer.stack.append([name, time.perf_counter(), 0.0])

            def __exit__(self, *exc):
                n, t0, child = timer.stack.pop()
                dt = time.perf_counter() - t0
                timer.total[n] += dt - child
                if timer.stack:
                    timer.stack[-1][2] += dt
        return _B()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pool", required=True, type=Path, help="φ-pool units (taalm data pool → train.jsonl)")
    ap.add_argument("--pairs", type=int, default=16, help="pairs per φ update")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--phi-layers", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0, help="seed of the pair stream (the pairs a run draws first)")
    ap.add_argument("--theta-layers", type=int, default=8, help="θ's per-pair LoRA on the last K layers only")
    ap.add_argument("--levers", default="shipped,sgd,sgd+phi12,sgd+phi12+m4,adamw+phi12,sgd+phi12+theta8")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)

    import torch

    torch.set_num_threads(a.threads)
    from taalm.core.config import PhiConfig
    from taalm.meta.config import InnerConfig, MetaThetaConfig, MetaTrainConfig
    from taalm.core.files import atomic_write_json, environment_info
    from taalm.data import read_pairs
    from taalm.meta import gradient
    from taalm.meta.pairs import encode_pairs, make_batch, pair_stream, phi_weights
    from taalm.models.loading import load_model
    from taalm.models.phi import TrainAttention

    timer = Timer()
    for fn in ("meta_step", "_warm_up", "_doc_loss", "_grads", "_reference_losses", "_task_terms", "_dloss_dhidden", "_jvp_hidden"):
        setattr(gradient, fn, timer.wrap(fn, getattr(gradient, fn)))

    all_pairs = read_pairs(a.pool, "task_descriptive")
    pairs = [all_pairs[i] for i in pair_stream(len(all_pairs), a.seed, 0, a.pairs)]  # what training draws first
    model, tok = load_model("smollm2-135m", attn="eager")
    import copy

    thetas = {0: gradient.MetaTheta(copy.deepcopy(model), MetaThetaConfig(r=16, alpha=32)),
              a.theta_layers: gradient.MetaTheta(model, MetaThetaConfig(r=16, alpha=32, lora_layers=a.theta_layers))}
    phis = {0: TrainAttention.from_config(PhiConfig(), device="cpu"),
            a.phi_layers: TrainAttention.from_config(PhiConfig(layers=a.phi_layers), device="cpu")}
    enc = encode_pairs(tok, pairs, 128)
    idx = sorted(range(len(enc)), key=lambda i: len(enc[i].doc.input_ids))
    adamw = InnerConfig(optimizer="adamw", lr=1e-3, k_warm=1)
    sgd = InnerConfig(optimizer="sgd", lr=1.0, k_warm=0)
    pl, tl = a.phi_layers, a.theta_layers
    levers = {"shipped": (adamw, 0, 8, 0), "sgd": (sgd, 0, 8, 0), f"sgd+phi{pl}": (sgd, pl, 8, 0),
              f"sgd+phi{pl}+m4": (sgd, pl, 4, 0), f"adamw+phi{pl}": (adamw, pl, 8, 0),
              f"sgd+phi{pl}+theta{tl}": (sgd, pl, 8, tl)}
    chosen = [k.replace("phi12", f"phi{pl}").replace("theta8", f"theta{tl}") for k in a.levers.split(",")]

    def one_update(inner, layers, micro, theta_layers=0):
        phi, theta = phis[layers], thetas[theta_layers]
        phi.train()
        cfg = MetaTrainConfig(engine="directional", inner=inner, micro_pairs=micro)
        for p in phi.trainable_parameters().values():
            p.grad = None
        timer.total.clear()
        t0 = time.perf_counter()
        padded = real = 0
        for k in range(0, len(idx), micro):
            items = [enc[i] for i in idx[k:k + micro]]
            batch = make_batch(items, tok.pad_token_id, "cpu")
            padded += batch.doc_ids.numel()
            real += int(batch.doc_mask.sum())
            with timer.block("phi_forward"):
                w = phi_weights(phi, items, batch.doc_ids.shape[1], "cpu")
            res = gradient.meta_step(theta, batch, w, cfg)
            with timer.block("phi_backward"):
                w.backward(res.grad_w.to(w.dtype) * len(items) / len(idx))
        dt = time.perf_counter() - t0
        stages = dict(timer.total)
        stages["rest"] = dt - sum(stages.values())
        return dt, stages, real / padded

    one_update(sgd, 0, 8)  # warm-up
    times: dict[str, list[float]] = {k: [] for k in chosen}
    profiles: dict[str, list[dict]] = {k: [] for k in chosen}
    fill = {}
    for r in range(a.repeats):
        for j in range(len(chosen)):
            name = chosen[(j + r) % len(chosen)]
            dt, stages, f = one_update(*levers[name])
            times[name].append(dt)
            profiles[name].append(stages)
            fill[name] = f
            print(f"round {r + 1}: {name}: {dt:.1f} s ({a.pairs / dt:.3f} pairs/s)", file=sys.stderr)
    base = statistics.median(times[chosen[0]])
    rows = []
    for name in chosen:
        med = statistics.median(times[name])
        prof = {STAGES.get(s, s): round(statistics.median([p.get(s, 0.0) for p in profiles[name]]), 2)
                for s in sorted({s for p in profiles[name] for s in p})}
        inner, layers, micro, theta_layers = levers[name]
        rows.append({"lever": name, "inner": inner.optimizer, "k_warm": inner.k_warm, "phi_layers": layers or "all",
                     "theta_lora_layers": theta_layers or "all",
                     "micro_pairs": micro, "seconds": round(med, 2), "all_seconds": [round(t, 2) for t in times[name]],
                     "pairs_per_s": round(a.pairs / med, 3), "speedup_vs_first": round(base / med, 2),
                     "token_fill": round(fill[name], 3), "profile_s": prof})
    out = {"benchmark": "meta-training profile and speed levers", "machine": platform.processor() or platform.machine(),
           "threads": a.threads, "pairs": a.pairs, "repeats": a.repeats, "max_doc_tokens": 128,
           "rows": rows, "environment": environment_info("cpu")}
    atomic_write_json(a.out, out)
    for r in rows:
        print(f"{r['lever']:>16}: {r['seconds']:6.1f} s  {r['pairs_per_s']:.3f} pairs/s  x{r['speedup_vs_first']:.2f}  "
              f"fill {r['token_fill']:.2f}")
        print("                  " + ", ".join(f"{k} {v:.1f}" for k, v in r["profile_s"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
