"""Gradient checkpointing in CKL, side by side: peak memory and time per step, with and without.

Each configuration runs in a fresh process (so the peak resident memory is its own): θ = the
embedded SmolLM2-135M (or ``--model``), LoRA r=16 on all linears and full fine-tuning, one batch
of ``--batch`` windows of ``--seq`` tokens, ``--steps`` timed training steps of the learner's own
step (``taalm.learn`` with ``train.gradient_checkpointing`` off and on). Memory is the process's
peak RSS (CPU) or the allocator's peak (CUDA), minus what the process held after loading θ.

    python benchmarks/grad_checkpointing.py --out benchmarks/results/grad_checkpointing_cpu2.json
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from pathlib import Path
from taalm.core.run import QUIET


def _status_mib(key: str) -> float:
    """VmRSS (now) or VmHWM (peak since the last reset) of this process, in MiB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {key}")


def _reset_peak() -> None:
    """Start the peak-RSS counter afresh (Linux: writing 5 to clear_refs resets VmHWM), so the
    model's loading (a higher transient peak when a GGUF is de-quantized) is not counted."""
    import gc

    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")


def child(args) -> dict:
    """One configuration in this process: ``args.steps`` learner steps; memory and time."""
    from taalm.ckl.learner import learn
    from taalm.core.config import load_config
    from taalm.ckl.config import LearnConfig
    from taalm.core.devices import peak_memory_mib, reset_peak_memory
    from taalm.data import Document
    from taalm.models.loading import load_model

    model, tok = load_model(args.model)
    device = next(model.parameters()).device
    sentence = "The river that flows through the old town was named after a saint in the twelfth century. "
    ids = tok(sentence * (args.seq // 8 + 8), add_special_tokens=False)["input_ids"][: args.seq - 8]
    docs = [Document(tok.decode(ids)) for _ in range(args.batch * args.steps)]  # one window each
    cfg = load_config(LearnConfig, None, [
        f"theta.mode={args.mode}", "train.epochs=1", f"train.batch_size={args.batch}", f"train.max_length={args.seq}",
        "train.stride=0", "train.lr=1e-5", "train.shuffle=false", f"train.gradient_checkpointing={args.ckpt}"])
    _reset_peak()
    rss_loaded = _status_mib("VmRSS")
    reset_peak_memory(device)
    res = learn(docs, None, cfg, model=model, tokenizer=tok, options=QUIET)
    return {"mode": args.mode, "gradient_checkpointing": args.ckpt == "true", "steps": res.steps,
            "windows": len(docs), "seconds_per_step": round(res.train_seconds / max(res.steps, 1), 3),
            "peak_rss_mib": round(_status_mib("VmHWM"), 1), "rss_after_load_mib": round(rss_loaded, 1),
            "training_peak_mib": round(_status_mib("VmHWM") - rss_loaded, 1), "accelerator_peak_mib": peak_memory_mib(device)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--modes", default="lora,full")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--mode", default="lora", help=argparse.SUPPRESS)
    ap.add_argument("--ckpt", default="false", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        print(json.dumps(child(a)))
        return 0
    rows = []
    for mode in a.modes.split(","):
        for ckpt in ("false", "true"):
            cmd = [sys.executable, __file__, "--child", "--mode", mode, "--ckpt", ckpt, "--model", a.model,
                   "--batch", str(a.batch), "--seq", str(a.seq), "--steps", str(a.steps)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
            print(rows[-1], flush=True)
    ratios = {}
    for mode in a.modes.split(","):
        off, on = (next(r for r in rows if r["mode"] == mode and r["gradient_checkpointing"] is c) for c in (False, True))
        ratios[mode] = {"memory_on_over_off": round(on["training_peak_mib"] / off["training_peak_mib"], 3),
                        "time_on_over_off": round(on["seconds_per_step"] / off["seconds_per_step"], 3)}
    from taalm.core.files import environment_info

    report = {"benchmark": "gradient checkpointing in CKL", "model": a.model, "batch": a.batch, "seq": a.seq,
              "steps": a.steps, "machine": f"{platform.processor() or platform.machine()}, {_cpus()} CPUs",
              "environment": environment_info(None), "rows": rows, "ratios": ratios,
              "memory": "training_peak_mib = the process's peak RSS during training (VmHWM, reset after loading θ) "
                        "minus its RSS after loading (CPU); "
                        "accelerator_peak_mib = the CUDA allocator's peak where a GPU ran"}
    print(json.dumps(ratios, indent=2))
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0


if __name__ == "__main__":
    sys.exit(main())
