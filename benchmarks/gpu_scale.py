"""The scale half of ``benchmarks/gpu_check.py``: meta-step pairs/s and CKL tokens/s on real shapes.

Models are random-initialised Llamas of real shapes built here (SmolLM2-135M; TinyLlama-1.1B),
because model files may not travel to a GPU machine. Throughput does not depend on the weights'
values, only on shapes, dtypes and kernels.

Meta-step (one φ update's work per batch of pairs: φ forward, ``meta_step``, φ backward), on
random documents of ``doc`` tokens and tasks of ``task`` tokens (the last 3 are the answer):

* ``release``: the public release's way: one pair at a time, ``double_backward``, θ's inner
  state (per-pair LoRA, Adam moments) in bf16 on the bf16 base;
* ``ours``: ``micro_pairs`` pairs batched in one forward, ``directional`` (forward-mode JVP),
  float32 inner state on the bf16 base;
* the two mixed variants (batched double backward; one-at-a-time directional), so the speed-up
  can be attributed.

Each is timed over ``reps`` rounds after a warm-up, with the allocator's peak. Then the largest
``micro_pairs`` of ``ours`` that fits (doubling until out of memory, up to ``max_pairs``).

CKL throughput: ``taalm.learn`` training tokens/s for LoRA and full θ, with and without
``train.gradient_checkpointing``, bf16 base with float32 trainables (``dtype=auto``).
"""

from __future__ import annotations

import copy
import time

import torch
from taalm.core.run import QUIET

SHAPES = {
    "smollm2-135m": dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                         num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192,
                         rms_norm_eps=1e-5, rope_theta=100000.0, tie_word_embeddings=True),
    "tinyllama-1.1b": dict(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                           num_attention_heads=32, num_key_value_heads=4, max_position_embeddings=2048,
                           rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False),
    "tiny": dict(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024),
}


def build(shape: str, device, dtype, attn: str = "eager", seed: int = 0):
    """A random-initialised Llama of ``shape`` on ``device`` in ``dtype``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(**SHAPES[shape], pad_token_id=0)
    cfg._attn_implementation = attn
    torch.manual_seed(seed)
    return LlamaForCausalLM(cfg).to(device=device, dtype=dtype).eval()


def pair_batch(P: int, vocab: int, doc: int, task: int, device, seed: int = 0):
    """P random (document, task) pairs; the task's last 3 tokens are its answer."""
    from taalm.meta.gradient import PairBatch

    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocab, (P, doc), generator=g)
    tids = torch.randint(1, vocab, (P, task), generator=g)
    ans = torch.zeros(P, task)
    ans[:, -3:] = 1
    ones = torch.ones
    return PairBatch(ids.to(device), ones(P, doc, dtype=torch.long, device=device), tids.to(device),
                     ones(P, task, dtype=torch.long, device=device), ans.to(device))


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build_phi(shape: str, device, dtype):
    """φ as taalm builds it (``TrainAttention``: LoRA r=8 backbone + sigmoid head) on a random
    backbone of ``shape``; the tests' byte-level tokenizer stands in (φ's forward reads ids only)."""
    from conftest import build_tokenizer

    from taalm.core.config import PhiConfig
    from taalm.models.phi import TrainAttention

    return TrainAttention(build(shape, device, dtype, attn="sdpa", seed=1), build_tokenizer(), PhiConfig()).train()


def _meta_settings(engine: str):
    from taalm.meta.config import InnerConfig, MetaTrainConfig

    return MetaTrainConfig(engine=engine, directional="forward", inner=InnerConfig(lr=2e-4, k_warm=1))


def _meta_round(theta, phi, batches, s, device) -> float:
    """Seconds for one φ update's work over ``batches`` (each a micro-batch of pairs)."""
    from taalm.meta.gradient import meta_step

    _sync(device)
    t0 = time.perf_counter()
    for b in batches:
        w = phi(b.doc_ids, b.doc_mask)
        r = meta_step(theta, b, w, s)
        w.backward(r.grad_w)
    _sync(device)
    return time.perf_counter() - t0


def _peak_reset(device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak_mib(device):
    return round(torch.cuda.max_memory_allocated(device) / 2**20, 1) if device.type == "cuda" else None


def meta_variant(theta_model, phi, device, *, pairs: int, micro: int, engine: str, state_dtype, reps: int,
                 doc: int, task: int) -> dict:
    """pairs/s of one variant: ``pairs`` pairs per update in micro-batches of ``micro``."""
    from taalm.meta.theta import MetaTheta

    theta = MetaTheta(theta_model, state_dtype=state_dtype)
    vocab = theta_model.config.vocab_size
    batches = [pair_batch(micro, vocab, doc, task, device, seed=i) for i in range(pairs // micro)]
    s = _meta_settings(engine)
    _meta_round(theta, phi, batches[:1], s, device)  # warm-up (kernels, allocator)
    _peak_reset(device)
    times = [_meta_round(theta, phi, batches, s, device) for _ in range(reps)]
    sec = sorted(times)[len(times) // 2]
    out = {"engine": engine, "micro_pairs": micro, "pairs": pairs, "state_dtype": str(state_dtype or "float32"),
           "seconds_per_update": round(sec, 4), "pairs_per_s": round(pairs / sec, 3), "peak_mib": _peak_mib(device)}
    _unwrap(theta_model)
    return out


def _unwrap(model) -> None:
    """Undo MetaTheta's LoRA wrappers so the next variant wraps a clean base."""
    from taalm.meta.theta import _LoRALinear

    for name, mod in list(model.named_modules()):
        for cname, child in list(mod.named_children()):
            if isinstance(child, _LoRALinear):
                setattr(mod, cname, child.base)


def largest_micro_pairs(theta_model, phi, device, *, start: int, max_pairs: int, doc: int, task: int) -> dict:
    """The largest micro_pairs (doubling) whose ``ours`` step fits in memory, with its pairs/s."""
    best, P, rows = None, start, []
    while P <= max_pairs:
        try:
            row = meta_variant(theta_model, phi, device, pairs=P, micro=P, engine="directional", state_dtype=None,
                               reps=1, doc=doc, task=task)
        except torch.OutOfMemoryError:
            _unwrap(theta_model)
            rows.append({"micro_pairs": P, "fits": False})
            break
        rows.append({**row, "fits": True})
        best, P = row, P * 2
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return {"largest": best["micro_pairs"] if best else None, "tried": rows}


def meta_section(shape: str, device, *, pairs: int, reps: int, doc: int, task: int, max_pairs: int, log) -> dict:
    """The four meta-step variants on θ of ``shape`` (bf16 on CUDA) with a SmolLM2-shaped φ (taalm's TrainAttention)."""
    half = torch.bfloat16 if device.type == "cuda" else torch.float32
    theta_model = build(shape, device, half)
    phi_shape = "tiny" if shape == "tiny" else "smollm2-135m"
    phi = build_phi(phi_shape, device, half)
    variants = {
        "release (1 pair at a time, double backward, bf16 inner state)": dict(micro=1, engine="double_backward",
                                                                             state_dtype=half),
        "one at a time, directional, float32 state": dict(micro=1, engine="directional", state_dtype=None),
        f"batched ({pairs} pairs), double backward, float32 state": dict(micro=pairs, engine="double_backward",
                                                                       state_dtype=None),
        f"ours (batched {pairs} pairs, directional, float32 state)": dict(micro=pairs, engine="directional",
                                                                        state_dtype=None),
    }
    out = {"theta_shape": shape, "phi_shape": phi_shape, "theta_dtype": str(half), "doc_tokens": doc,
           "task_tokens": task, "pairs_per_update": pairs, "variants": {}}
    for name, v in variants.items():
        try:
            out["variants"][name] = meta_variant(theta_model, phi, device, pairs=pairs, reps=reps, doc=doc,
                                                 task=task, **v)
        except torch.OutOfMemoryError:
            _unwrap(theta_model)
            out["variants"][name] = {"out_of_memory": True, **{k: str(x) for k, x in v.items()}}
        log(f"meta {shape} {name}: {out['variants'][name]}")
    rel, ours = (out["variants"][k] for k in (next(iter(variants)), list(variants)[-1]))
    if "pairs_per_s" in rel and "pairs_per_s" in ours:
        out["ours_over_release"] = round(ours["pairs_per_s"] / rel["pairs_per_s"], 2)
    out["largest_micro_pairs"] = largest_micro_pairs(theta_model, phi, device, start=pairs, max_pairs=max_pairs,
                                                     doc=doc, task=task)
    log(f"meta {shape} largest micro_pairs: {out['largest_micro_pairs']['largest']}")
    del theta_model, phi
    return out


def ckl_section(shape: str, device, *, batch: int, seq: int, steps: int, log) -> dict:
    """``taalm.learn`` tokens/s: LoRA and full θ, gradient checkpointing off and on."""
    from taalm.ckl.learner import learn
    from taalm.core.config import load_config
    from taalm.ckl.config import LearnConfig
    from taalm.core.devices import resolve_dtype
    from taalm.data import Document

    from conftest import build_tokenizer  # the tests' tiny byte-level BPE (ids fit any vocab here)

    base = build(shape, device, resolve_dtype("auto", device), attn="sdpa")
    tok = build_tokenizer()
    g = torch.Generator().manual_seed(0)
    words = ["".join(chr(97 + c) for c in torch.randint(0, 26, (5,), generator=g).tolist()) for _ in range(4000)]
    docs = [Document(" ".join(words[(i * 97 + j) % 4000] for j in range(seq // 3))) for i in range(batch * steps)]
    rows = []
    for mode in ("lora", "full"):
        for ckpt in (False, True):
            cfg = load_config(LearnConfig, None, [
                f"theta.mode={mode}", "train.epochs=1", f"train.batch_size={batch}", f"train.max_length={seq}",
                "train.stride=0", "train.lr=1e-5", "train.shuffle=false", f"train.gradient_checkpointing={ckpt}"])
            _peak_reset(device)
            try:
                res = learn(docs, None, cfg, model=copy.deepcopy(base), tokenizer=tok,
                            options=QUIET)
            except torch.OutOfMemoryError:
                rows.append({"mode": mode, "gradient_checkpointing": ckpt, "out_of_memory": True})
                continue
            tokens = sum(len(tok(d.text, add_special_tokens=False)["input_ids"]) for d in docs)
            rows.append({"mode": mode, "gradient_checkpointing": ckpt, "tokens": tokens, "optimizer_steps": res.steps,
                         "tokens_per_s": round(tokens / res.train_seconds, 1), "peak_mib": _peak_mib(device)})
            log(f"ckl {shape} {rows[-1]}")
    del base
    return {"shape": shape, "batch": batch, "seq": seq, "steps": steps, "rows": rows}
