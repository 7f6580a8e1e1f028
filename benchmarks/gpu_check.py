"""Accelerator check: the CUDA (or MPS) and bf16 paths of the learner, on a model of real shape.

Builds a random-initialised Llama with SmolLM2-135M's shapes (no download: weights do not travel
to GPU machines), lets ``device=auto`` / ``dtype=auto`` resolve, and runs the public API end to
end on the accelerator: ``learn`` with each weighting method (LoRA and full θ), probe evaluation
with left and right padding, QLoRA (NF4 base, float32 adapters) where CUDA and bitsandbytes
are at hand, and a timing of training steps on the accelerator and on the CPU
side by side (same model shape, float32 on CPU). Then the scale part (benchmarks/gpu_scale.py,
``--no-scale`` skips it): meta-step pairs/s on SmolLM2-135M and TinyLlama-1.1B shapes, the
release's one-pair-at-a-time double backward with bf16 inner state against our batched
directional step with float32 state, side by side, with peak memory and the largest micro_pairs
that fits; and CKL tokens/s for LoRA and full θ with and without gradient checkpointing.

    python benchmarks/gpu_check.py --out gpu_check.json          # real shape (needs a GPU)
    python benchmarks/gpu_check.py --small --out /tmp/check.json  # tiny shape, any machine

Writes one JSON file with the resolved device/dtype, each run's history, and the timings.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from conftest import build_tokenizer  # noqa: E402  (the tests' tiny byte-level BPE)

from taalm.core.config import load_config
from taalm.ckl.config import LearnConfig
from taalm.data import read_documents, read_probes  # noqa: E402
from taalm.demo import demo_files  # noqa: E402
from taalm.core.devices import resolve_device, resolve_dtype, supports_4bit  # noqa: E402
from taalm.evaluation.probes import evaluate_probes  # noqa: E402
from taalm.ckl.learner import learn  # noqa: E402
from taalm.core.run import QUIET


def smollm2_shape(vocab: int, small: bool):
    from transformers import LlamaConfig, LlamaForCausalLM

    if small:
        cfg = LlamaConfig(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048)
    else:  # SmolLM2-135M
        cfg = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                          num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192,
                          rms_norm_eps=1e-5, rope_theta=100000.0, tie_word_embeddings=True)
    cfg.pad_token_id = 0
    torch.manual_seed(0)
    return LlamaForCausalLM(cfg)


def time_steps(model, device, dtype, steps: int, batch: int, seq: int) -> float:
    """Mean seconds per LoRA-free full fwd+bwd training step on random tokens."""
    from taalm.ckl.loss import weighted_lm_loss

    model = model.to(device=device, dtype=dtype).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    ids = torch.randint(3, 400, (batch, seq), device=device)
    w = torch.rand(batch, seq, device=device)

    def one():
        loss = weighted_lm_loss(model(input_ids=ids).logits, ids, None, w)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    one()  # warm-up
    if device.type != "cpu":
        torch.accelerator.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        one()
    if device.type != "cpu":
        torch.accelerator.synchronize()
    return (time.perf_counter() - t0) / steps


def scale_checks(device, args, log) -> dict:
    """Meta-step pairs/s (the release's one-pair-at-a-time double backward in bf16 against our
    batched directional float32 state) and CKL tokens/s, on SmolLM2-135M and TinyLlama-1.1B shapes
    (``tiny`` with --small): benchmarks/gpu_scale.py."""
    import gpu_scale

    shapes = ["tiny"] if args.small else ["smollm2-135m", "tinyllama-1.1b"]
    reps, doc, task = (1, 32, 8) if args.small else (3, 128, 16)
    out = {"meta": {}, "ckl": {}}
    for shape in shapes:
        t0 = time.perf_counter()
        out["meta"][shape] = gpu_scale.meta_section(shape, device, pairs=args.pairs if not args.small else 4,
                                                    reps=reps, doc=doc, task=task,
                                                    max_pairs=8 if args.small else 256, log=log)
        out["ckl"][shape] = gpu_scale.ckl_section(shape, device, batch=8 if not args.small else 2,
                                                  seq=512 if not args.small else 64, steps=4 if not args.small else 2,
                                                  log=log)
        out.setdefault("seconds", {})[shape] = round(time.perf_counter() - t0, 1)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--small", action="store_true")
    ap.add_argument("--out", default="gpu_check.json")
    ap.add_argument("--no-scale", action="store_true", help="skip the meta-step and CKL throughput part")
    ap.add_argument("--pairs", type=int, default=16, help="pairs per φ update in the meta-step timing")
    args = ap.parse_args()

    device = resolve_device("auto")
    dtype = resolve_dtype("auto", device)
    report = {"device": str(device), "dtype": str(dtype), "torch": torch.__version__,
              "python": platform.python_version(), "small": args.small}
    if device.type == "cuda":
        report["device_name"] = torch.cuda.get_device_name(device)
    print(json.dumps(report), flush=True)

    tok = build_tokenizer()
    base = smollm2_shape(len(tok), args.small).to(device=device, dtype=dtype)
    docs_path, probes_path = demo_files()
    docs, probes = read_documents(docs_path), read_probes(probes_path)

    runs = {}
    combos = [("finetune", "lora"), ("oracle", "lora"), ("random", "lora"), ("rho1", "lora"), ("oracle", "full")]
    if supports_4bit(device) and importlib.util.find_spec("bitsandbytes") is not None:
        combos.append(("oracle", "qlora"))  # NF4 base, bf16 compute, float32 LoRA (param_dtype below)
    else:
        report["qlora"] = "skipped: needs a CUDA GPU and bitsandbytes (pip install 'taalm[qlora]')"
    for method, mode in combos:
        cfg = load_config(LearnConfig, None, [f"method.name={method}", f"theta.mode={mode}", "train.epochs=2",
                                              "train.lr=1e-3", "eval.every_epoch=true"])
        model = copy.deepcopy(base)
        t0 = time.perf_counter()
        res = learn(docs, probes, cfg, model=model, tokenizer=tok, options=QUIET)
        p = next(p for p in res.model.parameters() if p.requires_grad)
        runs[f"{method}/{mode}"] = {"history": res.history, "seconds": round(time.perf_counter() - t0, 3),
                                    "param_device": str(p.device), "param_dtype": str(p.dtype),
                                    "nll_fell": res.history[-1]["nll"] < res.history[0]["nll"]}
        print(method, mode, runs[f"{method}/{mode}"]["seconds"], res.history[-1], flush=True)
        del model, res
    report["runs"] = runs

    r = evaluate_probes(base, tok, probes, batch_size=5, padding_side="right")
    left = evaluate_probes(base, tok, probes, batch_size=5, padding_side="left")
    report["padding"] = {"right": r.summary(), "left": left.summary(),
                         "max_abs_nll_diff": max(abs(a.nll - b.nll) for a, b in zip(r.per_probe, left.per_probe)),
                         "accuracy_equal": [a.accuracy for a in r.per_probe] == [b.accuracy for b in left.per_probe]}

    batch, seq, steps = (8, 128, 3) if not args.small else (4, 32, 3)
    t_acc = time_steps(copy.deepcopy(base), device, dtype, steps, batch, seq)
    t_cpu = time_steps(copy.deepcopy(base).float(), torch.device("cpu"), torch.float32, 1 if not args.small else steps,
                       batch, seq)
    report["step_seconds"] = {"accelerator": t_acc, "cpu_fp32": t_cpu, "speedup": t_cpu / t_acc,
                              "batch": batch, "seq": seq, "theta": "full"}
    print(json.dumps(report["step_seconds"]), flush=True)
    Path(args.out).write_text(json.dumps(report, indent=2))  # written now and again after the scale part
    if not args.no_scale:
        report["scale"] = scale_checks(device, args, lambda m: print(m, flush=True))
        Path(args.out).write_text(json.dumps(report, indent=2))
    ok = all(v["nll_fell"] for v in runs.values()) and report["padding"]["accuracy_equal"]
    print("OK" if ok else "CHECK FAILED", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
