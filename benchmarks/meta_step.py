"""Meta-step benchmark (SPEC 2.3): what one φ update costs per batch of pairs, engine by engine.

On SmolLM2-135M (CPU, float32, 2 torch threads), for ~100-token LAMA-ckl evidences and their
``task_schematic`` probes (answer = the object's tokens, last occurrence), it measures

  plain            one plain ``taalm`` learning step: φ forward without grad -> w; θ (peft LoRA
                   via ``wrap_theta``, the learner's default attention) forward + backward of the
                   weighted loss (``taalm.ckl.loss.weighted_lm_loss``), gradient clipping at 1.0 (as
                   the learner does) and a ``torch.optim.AdamW`` step.
  plain_eager      the same with θ loaded with eager attention (what the meta engines must use).
  double_backward  φ forward with grad -> w; ``meta_step(engine="double_backward")``;
                   ``w.backward(grad_w)``: everything one φ update needs for the batch except the
                   φ optimizer step.
  forward          the same with ``engine="directional", directional="forward"`` (JVP).
  fd               the same with ``directional="fd"`` (central finite differences, default step).

for θ = LoRA (r=16, alpha=32, every linear layer of the backbone) with 1 pair and with 4 pairs in
one batched step (each pair its own θ'), k_warm = 1 and 0, and θ = the last two decoder layers
(``MetaThetaSpec(mode="layers")``, 1 pair; the plain step then trains those two layers fully).
It also times 4 pairs one at a time against the batched 4-pair step (pairs/second).

Times: a warm-up run of every variant, then ``--repeats`` rounds; each round runs every variant
once (round-robin, the starting variant rotating), so noise from the shared 2-core machine hits
all variants alike. Ratios are taken within a round and their median is reported.

Memory: each variant in a fresh process (this script with ``--mem KEY``): load θ and φ, run one
no-grad forward of each (the weights are memory-mapped safetensors pages: RSS grows on first
touch), baseline = RSS (/proc/self/statm), then the step twice while a thread samples RSS every
~2 ms; extra = peak - baseline. Cross-checks: the kernel's exact peak (VmHWM, reset to the baseline
through /proc/self/clear_refs) and ``ru_maxrss`` after the steps, each minus the baseline (ru_maxrss is
meaningful only if the process's earlier peak, ``ru_maxrss_before``, was below the step's peak).

Gradient agreement: grad_w and φ's parameter gradient of each engine against double_backward on
the same batch (relative error ||a-b||/||b|| and cosine).

    .venv/bin/python benchmarks/meta_step.py --quick --out /tmp/meta_quick.json   # smoke check
    .venv/bin/python benchmarks/meta_step.py --out benchmarks/results/meta_step_cpu2.json
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402

from taalm.core.config import LoraConfig, PhiConfig
from taalm.ckl.config import ThetaConfig
from taalm.data import encode, make_probe  # noqa: E402
from taalm.ckl.loss import weighted_lm_loss  # noqa: E402
from taalm.meta.config import InnerConfig, MetaThetaConfig, MetaTrainConfig  # noqa: E402
from taalm.meta.gradient import PairBatch, meta_step  # noqa: E402
from taalm.meta.theta import MetaTheta  # noqa: E402
from taalm.models.loading import load_model, load_tokenizer  # noqa: E402
from taalm.core.files import atomic_write_json, environment_info  # noqa: E402
from taalm.ckl.theta import wrap_theta  # noqa: E402
from taalm.models.phi import TrainAttention  # noqa: E402

DATA = Path("/work/shared/data/lama_ckl/variant.jsonl")
MODEL = "smollm2-135m"
TARGET_TOKENS = 100
R, ALPHA = 16, 32
INNER = dict(optimizer="adamw", lr=2e-4)
FD_STEP = MetaTrainConfig().fd_step  # the engine's default; not tuned
FD_SWEEP = (1e-4, 1e-2)  # agreement only (not timed), to show how sensitive fd is to its step
META_ENGINES = ("double_backward", "forward", "fd")
PAGE = os.sysconf("SC_PAGE_SIZE")

DEFINITIONS = {
    "plain": "one plain taalm learning step: φ forward (no grad) -> w; θ = peft LoRA (wrap_theta, r=16, "
             "alpha=32, all-linear; 'layers' configs: the last two decoder layers with requires_grad, "
             "nothing else) forward + backward of weighted_lm_loss, clip_grad_norm_(1.0) as the learner "
             "does, torch.optim.AdamW step (lr 2e-4) and zero_grad. θ uses the learner's default "
             "attention (attn=auto -> sdpa on this CPU build).",
    "plain_eager": "the same as 'plain' with θ loaded with attn='eager' (the attention the meta engines "
                   "must use): isolates the attention kernel from the meta-gradient cost.",
    "double_backward": "φ forward with grad -> w; meta_step(engine='double_backward'): θ0 for each pair, "
                       "k_warm warm-up AdamW steps (w fixed), the differentiable AdamW step with "
                       "create_graph=True, the outer loss (answer NLL) at θ', autograd back to w; then "
                       "w.backward(grad_w) through φ. Everything one φ update needs except the φ "
                       "optimizer step.",
    "forward": "as double_backward with engine='directional', directional='forward': plain inner "
               "backward, outer backward at θ', one forward-mode JVP through the backbone in the "
               "direction v = ∇θ'O ⊙ U'(g), contracted with ∂ℓ/∂h; then w.backward(grad_w).",
    "fd": "as 'forward' with directional='fd': the JVP replaced by two no-grad forwards at θ ± h·v "
          "(central finite differences, ‖h·v‖ = fd_step per pair).",
    "k_warm": "k_warm=1 (the default and the release's choice): one warm-up AdamW step on the weighted "
              "document loss with w detached (gives Adam a state; its cost is one θ forward+backward), "
              "then the differentiable step. k_warm=0: the differentiable step alone, from Adam's zero "
              "state: the cheapest meta-step, but Adam's first step is ≈ lr·sign(g), so grad_w is "
              "tiny there (SPEC 2.3) and relative agreement numbers are less meaningful.",
    "seq4": "4 pairs one after another (4 single-pair meta-steps, each with its own φ forward/backward) "
            "against one batched 4-pair step (lora/P4): pairs per second.",
}


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------
def pick_units(tok, n: int = 4) -> list[dict]:
    """The n units whose evidence is closest to TARGET_TOKENS tokens (ties: file order)."""
    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    scored = []
    for i, r in enumerate(rows):
        k = len(tok(r["evidence"])["input_ids"])
        scored.append((abs(k - TARGET_TOKENS), i, k))
    scored.sort()
    out, seen = [], set()
    for _, i, k in scored:
        if rows[i]["evidence"] in seen or rows[i]["object"] not in rows[i]["task_schematic"]:
            continue
        seen.add(rows[i]["evidence"])
        out.append({**rows[i], "_line": i + 1, "_tokens": k})
        if len(out) == n:
            break
    return out


def make_batch(tok, units: list[dict]) -> PairBatch:
    docs = [encode(tok, u["evidence"]).input_ids for u in units]
    tasks = []
    for u in units:
        p = make_probe(u["task_schematic"], u["object"])
        e = encode(tok, p.text, p.answer_start, p.answer)
        tasks.append((e.input_ids, e.span))
    P, T, Tq = len(units), max(map(len, docs)), max(len(t) for t, _ in tasks)
    pad = tok.pad_token_id
    ids = torch.full((P, T), pad, dtype=torch.long)
    mask = torch.zeros(P, T, dtype=torch.long)
    tids = torch.full((P, Tq), pad, dtype=torch.long)
    tmask = torch.zeros(P, Tq, dtype=torch.long)
    ans = torch.zeros(P, Tq)
    for b, (d, (t, span)) in enumerate(zip(docs, tasks)):
        ids[b, :len(d)] = torch.tensor(d)
        mask[b, :len(d)] = 1
        tids[b, :len(t)] = torch.tensor(t)
        tmask[b, :len(t)] = 1
        ans[b, span] = 1
    return PairBatch(ids, mask, tids, tmask, ans)


def sub_batch(batch: PairBatch, i: int) -> PairBatch:
    """Pair i alone, its padding trimmed."""
    n, nq = int(batch.doc_mask[i].sum()), int(batch.task_mask[i].sum())
    return PairBatch(batch.doc_ids[i:i + 1, :n], batch.doc_mask[i:i + 1, :n], batch.task_ids[i:i + 1, :nq],
                     batch.task_mask[i:i + 1, :nq], batch.answer[i:i + 1, :nq])


# --------------------------------------------------------------------------------------------
# Variants
# --------------------------------------------------------------------------------------------
def configs(quick: bool) -> list[tuple[str, int, int]]:
    """(θ mode, P, k_warm)."""
    out = [("lora", 1, 1), ("lora", 1, 0)]
    if not quick:
        out += [("lora", 4, 1), ("lora", 4, 0)]
    out += [("layers", 1, 1), ("layers", 1, 0)]
    return out


def variant_keys(quick: bool) -> list[str]:
    keys = []
    for mode, P, k in configs(quick):
        if k == 1:
            keys += [f"{mode}/P{P}/plain", f"{mode}/P{P}/plain_eager"]
        keys += [f"{mode}/P{P}/k{k}/{e}" for e in META_ENGINES]
    if not quick:
        keys += [f"seq4/k1/{e}" for e in ("double_backward", "forward")]
    return keys


def parse_key(key: str) -> dict:
    parts = key.split("/")
    if parts[0] == "seq4":
        return {"mode": "lora", "P": 1, "k": int(parts[1][1:]), "engine": parts[2], "seq4": True}
    d = {"mode": parts[0], "P": int(parts[1][1:]), "seq4": False}
    if parts[2].startswith("plain"):
        d.update(k=None, engine=parts[2])
    else:
        d.update(k=int(parts[2][1:]), engine=parts[3])
    return d


def settings(engine: str, k: int, fd_step: float = FD_STEP) -> MetaTrainConfig:
    return MetaTrainConfig(engine="double_backward" if engine == "double_backward" else "directional",
                           directional="fd" if engine == "fd" else "forward", fd_step=fd_step,
                           inner=InnerConfig(**INNER, k_warm=k))


class Bench:
    """Models and batches, loaded lazily (a --mem process loads only what its variant needs)."""

    def __init__(self):
        self.tok = load_tokenizer(MODEL)
        self.units = pick_units(self.tok, 4)
        self.batch4 = make_batch(self.tok, self.units)
        self.batch1 = sub_batch(self.batch4, 0)
        self.singles = [sub_batch(self.batch4, i) for i in range(4)]
        self._cache: dict = {}
        self.load_seconds = 0.0

    def batch(self, P: int) -> PairBatch:
        return self.batch4 if P == 4 else self.batch1

    def _get(self, name, build):
        if name not in self._cache:
            t0 = time.perf_counter()
            self._cache[name] = build()
            self.load_seconds += time.perf_counter() - t0
        return self._cache[name]

    @property
    def phi(self) -> TrainAttention:
        def build():
            m, tok = load_model(MODEL, "cpu", "fp32", "auto")
            return TrainAttention.from_config(PhiConfig(base=MODEL), model=m, tokenizer=tok)
        return self._get("phi", build)

    def meta_theta(self, mode: str) -> MetaTheta:
        def build():
            # eager attention: SDPA on CPU has no double-backward and no forward-mode (JVP) rule
            m = load_model(MODEL, "cpu", "fp32", "eager", with_tokenizer=False)
            spec = MetaThetaConfig(mode="lora", r=R, alpha=ALPHA) if mode == "lora" else \
                MetaThetaConfig(mode="layers", layers=[-2, -1])
            return MetaTheta(m, spec)
        return self._get(f"meta/{mode}", build)

    def plain_theta(self, mode: str, attn: str):
        """(model, optimizer, trainable params) for the plain step."""
        def build():
            m = load_model(MODEL, "cpu", "fp32", attn, with_tokenizer=False)
            if mode == "lora":
                m = wrap_theta(m, ThetaConfig(mode="lora", lora=LoraConfig(r=R, alpha=ALPHA)), seed=0)
            else:
                from taalm.meta.theta import _decoder_layers

                for p in m.parameters():
                    p.requires_grad_(False)
                layers = _decoder_layers(m.base_model)
                for _, layer in layers[-2:]:
                    for p in layer.parameters():
                        p.requires_grad_(True)
            m.train()
            params = [p for p in m.parameters() if p.requires_grad]
            return m, torch.optim.AdamW(params, lr=INNER["lr"]), params
        return self._get(f"plain/{mode}/{attn}", build)

    # ---- one step of each kind ---------------------------------------------------------------
    def phi_step(self, theta: MetaTheta, batch: PairBatch, s: MetaTrainConfig, phases: dict | None = None):
        phi = self.phi
        for p in phi.parameters():
            p.grad = None
        t0 = time.perf_counter()
        w = phi(batch.doc_ids, batch.doc_mask)
        t1 = time.perf_counter()
        r = meta_step(theta, batch, w, s)
        t2 = time.perf_counter()
        w.backward(r.grad_w)
        t3 = time.perf_counter()
        if phases is not None:
            for k, v in (("phi_forward", t1 - t0), ("meta_step", t2 - t1), ("phi_backward", t3 - t2)):
                phases[k] = phases.get(k, 0.0) + v
        return r

    def step_fn(self, key: str, fd_step: float = FD_STEP):
        """A closure running variant ``key`` once; returns (result or None, phase times)."""
        d = parse_key(key)
        if d["engine"].startswith("plain"):
            model, opt, params = self.plain_theta(d["mode"], "eager" if d["engine"] == "plain_eager" else "auto")
            batch, phi = self.batch(d["P"]), self.phi

            def run():
                t0 = time.perf_counter()
                with torch.no_grad():
                    w = phi(batch.doc_ids, batch.doc_mask)
                t1 = time.perf_counter()
                logits = model(input_ids=batch.doc_ids, attention_mask=batch.doc_mask).logits
                loss = weighted_lm_loss(logits, batch.doc_ids, batch.doc_mask, w)
                loss.backward()
                t2 = time.perf_counter()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                opt.zero_grad(set_to_none=True)
                t3 = time.perf_counter()
                return None, {"phi_forward": t1 - t0, "theta_fwd_bwd": t2 - t1, "optimizer": t3 - t2}
            return run
        theta = self.meta_theta(d["mode"])
        s = settings(d["engine"], d["k"], fd_step)
        if d["seq4"]:
            singles = self.singles

            def run():
                phases: dict = {}
                rs = [self.phi_step(theta, b, s, phases) for b in singles]
                return rs, phases
            return run
        batch = self.batch(d["P"])

        def run():
            phases: dict = {}
            return self.phi_step(theta, batch, s, phases), phases
        return run

    def warm_forward(self, key: str) -> None:
        """No-grad forwards of θ and φ: touch the memory-mapped weights before the baseline."""
        d = parse_key(key)
        batch = self.batch(4 if d["seq4"] else d["P"])
        with torch.no_grad():
            self.phi(batch.doc_ids, batch.doc_mask)
            if d["engine"].startswith("plain"):
                model = self.plain_theta(d["mode"], "eager" if d["engine"] == "plain_eager" else "auto")[0]
                model(input_ids=batch.doc_ids, attention_mask=batch.doc_mask)
            else:
                theta = self.meta_theta(d["mode"])
                P = 1 if d["seq4"] else d["P"]
                theta.logits(theta.pairs(P), batch.doc_ids[:P], batch.doc_mask[:P])


# --------------------------------------------------------------------------------------------
# Memory (fresh process per variant)
# --------------------------------------------------------------------------------------------
class RSSSampler(threading.Thread):
    def __init__(self, interval: float = 0.002):
        super().__init__(daemon=True)
        self.interval = interval
        self.fd = os.open("/proc/self/statm", os.O_RDONLY)
        self.stop_event = threading.Event()
        self.peak = self.rss()
        self.samples = 0

    def rss(self) -> int:
        return int(os.pread(self.fd, 128, 0).split()[1]) * PAGE

    def run(self):
        while not self.stop_event.is_set():
            v = self.rss()
            if v > self.peak:
                self.peak = v
            self.samples += 1
            time.sleep(self.interval)

    def stop(self) -> int:
        self.stop_event.set()
        self.join()
        v = self.rss()
        self.peak = max(self.peak, v)
        os.close(self.fd)
        return self.peak


def rss_now() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def maxrss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def vm_hwm() -> int | None:
    """The kernel's exact peak RSS of this process (VmHWM, bytes)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return None


def reset_hwm() -> bool:
    """Reset VmHWM to the current RSS (``5`` > /proc/self/clear_refs, Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def mem_child(key: str) -> dict:
    bench = Bench()
    run = bench.step_fn(key)
    bench.warm_forward(key)
    gc.collect()
    base = rss_now()
    maxrss_before = maxrss()
    hwm_reset = reset_hwm()
    peaks = []
    t0 = time.perf_counter()
    sampler_all = RSSSampler()
    sampler_all.start()
    for _ in range(2):
        s = RSSSampler()
        s.start()
        run()
        peaks.append(s.stop())
    peak = sampler_all.stop()
    dt = time.perf_counter() - t0
    hwm = vm_hwm() if hwm_reset else None
    after = rss_now()
    mr = maxrss()
    mb = 1 / 2 ** 20
    return {"key": key, "baseline_mb": base * mb, "peak_mb": peak * mb, "extra_mb": (peak - base) * mb,
            "extra_mb_per_run": [(p - base) * mb for p in peaks], "after_mb": after * mb,
            "maxrss_before_mb": maxrss_before * mb, "maxrss_after_mb": mr * mb,
            "maxrss_extra_mb": (mr - base) * mb,
            "maxrss_valid": bool(maxrss_before < mr),
            "vmhwm_extra_mb": None if hwm is None else (hwm - base) * mb,
            "samples": sampler_all.samples, "sample_interval_ms": 1000 * dt / max(sampler_all.samples, 1),
            "load_seconds": bench.load_seconds}


def measure_memory(keys: list[str], threads: int, log) -> dict:
    out = {}
    for key in keys:
        t0 = time.perf_counter()
        # through a forking shell: Linux keeps the pre-exec peak RSS of an exec'ing process in its
        # ru_maxrss, and a child forked from this (large) process would inherit ours
        cmd = ["/bin/sh", "-c", '"$@"; s=$?; exit $s', "sh",
               sys.executable, str(Path(__file__).resolve()), "--mem", key, "--threads", str(threads)]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        line = next((ln for ln in reversed(p.stdout.splitlines()) if ln.startswith("MEMRESULT ")), None)
        if p.returncode != 0 or line is None:
            out[key] = {"error": (p.stderr or p.stdout)[-2000:]}
            log(f"  mem {key}: FAILED\n{out[key]['error']}")
            continue
        out[key] = json.loads(line[len("MEMRESULT "):])
        log(f"  mem {key}: +{out[key]['extra_mb']:.0f} MB (VmHWM +{out[key]['vmhwm_extra_mb'] or 0:.0f} MB) "
            f"[{time.perf_counter() - t0:.0f} s]")
    return out


# --------------------------------------------------------------------------------------------
# Agreement, profiling
# --------------------------------------------------------------------------------------------
def phi_grad_vector(phi) -> torch.Tensor:
    return torch.cat([p.grad.detach().flatten().double() for p in phi.trainable_parameters().values()])


def compare(a: torch.Tensor, b: torch.Tensor) -> dict:
    a, b = a.double().flatten(), b.double().flatten()
    nb = b.norm().item()
    return {"rel_err": (a - b).norm().item() / nb if nb > 0 else None,
            "cosine": (a @ b).item() / (a.norm().item() * nb) if nb > 0 and a.norm().item() > 0 else None,
            "norm": a.norm().item(), "ref_norm": nb}


def profile_step(run, rows: int = 12) -> dict:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        run()
    ka = prof.key_averages()

    def top(attr):
        items = sorted(ka, key=lambda e: getattr(e, attr), reverse=True)[:rows]
        return [{"op": e.key, "calls": e.count, "self_cpu_ms": round(e.self_cpu_time_total / 1000, 1),
                 "cpu_total_ms": round(e.cpu_time_total / 1000, 1),
                 "self_cpu_mem_mb": round(e.self_cpu_memory_usage / 2 ** 20, 1)} for e in items]
    total = sum(e.self_cpu_time_total for e in ka) / 1000
    return {"total_self_cpu_ms": round(total, 1), "top_by_self_cpu_time": top("self_cpu_time_total"),
            "top_by_self_cpu_memory": top("self_cpu_memory_usage")}


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------
def med(xs):
    return statistics.median(xs) if xs else None


def cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="1 repeat, P=1 only (smoke check)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default="benchmarks/results/meta_step_cpu2.json")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-memory", action="store_true", help="skip the fresh-process memory runs")
    ap.add_argument("--mem", default=None, help=argparse.SUPPRESS)  # internal: one memory run
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    if args.mem:
        print("MEMRESULT " + json.dumps(mem_child(args.mem)), flush=True)
        return 0

    t_start = time.perf_counter()
    repeats = 1 if args.quick else args.repeats

    def log(msg):
        print(msg, flush=True)

    bench = Bench()
    keys = variant_keys(args.quick)
    log(f"{len(keys)} variants, {repeats} repeat(s); documents: "
        + ", ".join(f"line {u['_line']} ({u['_tokens']} tok)" for u in bench.units))

    # ---- warm-up run of every variant; gradients for the agreement ----------------------------
    grads: dict = {}
    outer: dict = {}
    warm: dict = {}
    for key in keys:
        run = bench.step_fn(key)
        t0 = time.perf_counter()
        r, _ = run()
        warm[key] = time.perf_counter() - t0
        d = parse_key(key)
        if r is not None and not d["seq4"]:
            grads[key] = (r.grad_w.detach().clone(), phi_grad_vector(bench.phi))
            outer[key] = {"outer_theta_prime": r.outer.tolist(), "outer_theta0": r.outer0.tolist(),
                          "inner_loss": r.inner_loss.tolist()}
        log(f"  warm-up {key}: {warm[key]:.2f} s")
    fd_sweep: dict = {}
    for mode, P, k in configs(args.quick):
        if k != 1 or P != 1:
            continue
        for h in FD_SWEEP:
            r, _ = bench.step_fn(f"{mode}/P{P}/k{k}/fd", fd_step=h)()
            ref_w, ref_phi = grads[f"{mode}/P{P}/k{k}/double_backward"]
            fd_sweep[f"{mode}/P{P}/k{k}/fd@{h:g}"] = {"fd_step": h, "grad_w": compare(r.grad_w, ref_w),
                                                       "phi_grad": compare(phi_grad_vector(bench.phi), ref_phi)}
    log(f"models loaded in {bench.load_seconds:.1f} s")

    # ---- timed rounds ----------------------------------------------------------------------------
    times = {k: [] for k in keys}
    phases = {k: [] for k in keys}
    interference = {k: [] for k in keys}
    loads = [{"round": 0, "loadavg_before": os.getloadavg()}]
    for rep in range(repeats):
        t_round = time.perf_counter()
        order = keys[rep % len(keys):] + keys[:rep % len(keys)]
        for key in order:
            run = bench.step_fn(key)
            gc.collect()
            ru0, c0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.process_time(), time.perf_counter()
            _, ph = run()
            dt = time.perf_counter() - t0
            ru1 = resource.getrusage(resource.RUSAGE_SELF)
            times[key].append(dt)
            phases[key].append(ph)
            interference[key].append({"cpu_over_wall": (time.process_time() - c0) / dt,
                                      "major_faults": ru1.ru_majflt - ru0.ru_majflt,
                                      "involuntary_switches": ru1.ru_nivcsw - ru0.ru_nivcsw})
        loads.append({"round": rep + 1, "seconds": time.perf_counter() - t_round, "loadavg_after": os.getloadavg()})
        log(f"round {rep + 1}/{repeats}: {time.perf_counter() - t_round:.1f} s, load average {os.getloadavg()[0]:.2f}")

    # ---- agreement -------------------------------------------------------------------------------
    agreement = {}
    for key in grads:
        d = parse_key(key)
        if d["engine"] in ("forward", "fd"):
            ref = grads[f"{d['mode']}/P{d['P']}/k{d['k']}/double_backward"]
            agreement[key] = {"grad_w": compare(grads[key][0], ref[0]), "phi_grad": compare(grads[key][1], ref[1])}
            if d["engine"] == "fd":
                agreement[key]["fd_step"] = FD_STEP
    agreement.update(fd_sweep)

    # ---- memory ----------------------------------------------------------------------------------
    memory = {}
    if not args.no_memory:
        mem_keys = [k for k in keys if not parse_key(k)["seq4"] and not k.endswith("plain_eager")]
        if args.quick:
            mem_keys = [k for k in mem_keys if k.startswith("lora/P1/") and ("/k1/" in k or k.endswith("plain"))]
        log(f"memory: {len(mem_keys)} fresh processes")
        memory = measure_memory(mem_keys, args.threads, log)

    # ---- summary ---------------------------------------------------------------------------------
    def ratio_stats(a: str, b: str):
        if a not in times or b not in times or not times[a] or not times[b]:
            return None
        per_round = [x / y for x, y in zip(times[a], times[b])]
        return {"median_of_round_ratios": med(per_round), "ratio_of_medians": med(times[a]) / med(times[b]),
                "round_ratios": per_round}

    def mem_of(k):
        m = memory.get(k)
        return m.get("extra_mb") if m and "error" not in m else None

    rows = []
    for key in keys:
        d = parse_key(key)
        row = {"key": key, "theta": d["mode"], "P": 4 if d["seq4"] else d["P"], "k_warm": d["k"],
               "step": ("seq4:" if d["seq4"] else "") + d["engine"], "median_s": med(times[key]),
               "min_s": min(times[key]) if times[key] else None,
               "phases_median_s": {p: med([ph[p] for ph in phases[key]]) for p in (phases[key][0] if phases[key] else {})}}
        pairs = 4 if (d["seq4"] or d["P"] == 4) else 1
        if not d["engine"].startswith("plain"):
            row["pairs_per_s"] = pairs / row["median_s"]
        if not d["seq4"]:
            plain = f"{d['mode']}/P{d['P']}/plain"
            if not d["engine"].startswith("plain") or d["engine"] == "plain_eager":
                row["vs_plain"] = ratio_stats(key, plain)
            if d["engine"] in ("forward", "fd"):
                db = f"{d['mode']}/P{d['P']}/k{d['k']}/double_backward"
                row["vs_double_backward"] = ratio_stats(key, db)
                if mem_of(key) is not None and mem_of(db):
                    row["mem_vs_double_backward"] = mem_of(key) / mem_of(db)
            row["memory"] = memory.get(key)
            row["agreement"] = agreement.get(key)
        else:
            row["vs_batched"] = ratio_stats(key, f"lora/P4/k{d['k']}/{d['engine']}")
        rows.append(row)
    by_key = {r["key"]: r for r in rows}

    # ---- targets ---------------------------------------------------------------------------------
    # primary: the default settings (LoRA θ, k_warm=1) as specified; "info" lines: the same ratio in
    # the other configurations (not targets, printed for context)
    targets = []

    def target(name, value, limit, detail, primary=True):
        ok = value is not None and value <= limit
        targets.append({"target": name, "value": value, "limit": limit, "pass": ok, "primary": primary,
                        "detail": detail})

    def cfg_keys():
        return [(m, P, k) for m, P, k in configs(args.quick)]

    mem_P = 1 if args.quick else 4
    for m, P, k in cfg_keys():
        for eng in ("forward", "fd"):
            key, db = f"{m}/P{P}/k{k}/{eng}", f"{m}/P{P}/k{k}/double_backward"
            if key in by_key and (mem_of(key) is not None or (m, P, k) == ("lora", mem_P, 1)):
                target(f"memory: directional ({eng}) extra ≤ 60% of double_backward's ({m}, P={P}, k_warm={k})",
                       by_key[key].get("mem_vs_double_backward"), 0.60,
                       f"{fmt(mem_of(key), '.0f')} MB vs {fmt(mem_of(db), '.0f')} MB",
                       primary=(m, P, k) == ("lora", mem_P, 1))
    for m, P, k in cfg_keys():
        for eng in ("forward", "fd"):
            key, db = f"{m}/P{P}/k{k}/{eng}", f"{m}/P{P}/k{k}/double_backward"
            rs = by_key[key]["vs_double_backward"]
            target(f"time: directional ({eng}) ≤ 1.1× double_backward ({m}, P={P}, k_warm={k})",
                   rs and rs["median_of_round_ratios"], 1.10,
                   f"{by_key[key]['median_s']:.3f} s vs {by_key[db]['median_s']:.3f} s (median of per-round ratios)",
                   primary=(m, k) == ("lora", 1))
    for m, P, k in cfg_keys():
        key = f"{m}/P{P}/k{k}/double_backward"
        rs = by_key[key]["vs_plain"]
        target(f"time: double_backward ≤ 2.2× the plain taalm step ({m}, P={P}, k_warm={k})",
               rs and rs["median_of_round_ratios"], 2.20,
               f"{by_key[key]['median_s']:.3f} s vs {by_key[f'{m}/P{P}/plain']['median_s']:.3f} s "
               f"(median of per-round ratios)", primary=(m, k) == ("lora", 1))

    pairs_per_s = {}
    for eng in ("double_backward", "forward"):
        b, q = f"lora/P4/k1/{eng}", f"seq4/k1/{eng}"
        if b in by_key and q in by_key:
            pairs_per_s[eng] = {"batched_4_pairs_per_s": by_key[b]["pairs_per_s"],
                                "one_at_a_time_pairs_per_s": by_key[q]["pairs_per_s"],
                                "speedup_batched": (by_key[q]["vs_batched"] or {}).get("median_of_round_ratios")}

    # ---- notes: where the time/memory goes when a target fails -----------------------------------
    notes: dict = {"analysis": analysis(by_key, configs(args.quick), agreement),
                   "contention": contention(interference, loads)}
    if any(not t["pass"] for t in targets if t["primary"]):
        prof_keys = ["lora/P1/plain", "lora/P1/k1/double_backward", "lora/P1/k1/forward", "lora/P1/k1/fd"]
        if not args.quick:
            prof_keys += ["lora/P4/k1/double_backward", "lora/P4/k1/forward"]
        log("profiling: " + ", ".join(prof_keys))
        notes["profiles_note"] = ("torch.profiler (CPU, profile_memory) of one step each, in the main process "
                                  "after the timed rounds; the profiler's own overhead inflates small ops. "
                                  "self_cpu_mem_mb is the memory each op allocated minus what it freed.")
        notes["profiles"] = {k: profile_step(bench.step_fn(k)) for k in prof_keys}

    table = markdown_table(rows)
    report = {
        "benchmark": "meta_step",
        "environment": {**environment_info(torch.device("cpu")), "cpu_model": cpu_model(),
                        "cpu_cores_visible": len(os.sched_getaffinity(0)), "torch_threads": torch.get_num_threads()},
        "settings": {
            "model": MODEL, "dtype": "float32", "device": "cpu", "quick": args.quick, "repeats": repeats,
            "theta_lora": {"r": R, "alpha": ALPHA, "targets": "every linear layer of the backbone",
                           "trainable": bench.meta_theta("lora").n_trainable},
            "theta_layers": {"layers": [-2, -1], "trainable": bench.meta_theta("layers").n_trainable},
            "phi": {**{k: v for k, v in vars(PhiConfig()).items() if k != "lora"},
                    "lora": vars(PhiConfig().lora), "trainable": sum(p.numel() for p in bench.phi.trainable_parameters().values()),
                    "attn": "auto (sdpa)", "separate_base_model_copy": True},
            "inner": vars(InnerConfig(**INNER)), "objective": "answer_nll", "fd_step": FD_STEP,
            "fd_step_sweep_agreement_only": list(FD_SWEEP),
            "theta_attention": {"meta": "eager (required: no double-backward / JVP rule for SDPA on CPU)",
                                "plain": "auto (sdpa), the learner's default; plain_eager: eager"},
            "documents": [{"line": u["_line"], "uuid": u["uuid"], "tokens": u["_tokens"], "object": u["object"],
                           "task_schematic": u["task_schematic"], "evidence": u["evidence"]} for u in bench.units],
            "doc_tokens_padded": list(bench.batch4.doc_ids.shape), "task_tokens_padded": list(bench.batch4.task_ids.shape),
            "answer_tokens": bench.batch4.answer.sum(1).tolist(),
            "memory_method": "fresh process per variant: load θ and φ, one no-grad forward of each, gc, baseline = "
                             "RSS from /proc/self/statm; the step twice while a thread samples RSS every ~2 ms; "
                             "extra = peak − baseline. Cross-checks: ru_maxrss after − baseline (valid only when "
                             "ru_maxrss before the steps, i.e. the loading peak, was below it: maxrss_valid), and "
                             "the kernel's exact peak VmHWM after resetting it to the baseline "
                             "(5 > /proc/self/clear_refs) minus the baseline (vmhwm_extra_mb).",
            "interference_method": "per timed step: process CPU time / wall time (≈ threads when the cores are "
                                   "free), major page faults, involuntary context switches; load average per round.",
            "timing_method": "one warm-up run of every variant, then round-robin rounds (every variant once per "
                             "round, starting variant rotating); medians; ratios are medians of per-round ratios.",
        },
        "definitions": DEFINITIONS,
        "warmup_seconds": warm,
        "times_raw": times,
        "phases_raw": phases,
        "interference_raw": interference,
        "rounds": loads,
        "outer_losses": outer,
        "agreement": agreement,
        "memory": memory,
        "summary": rows,
        "targets": targets,
        "pairs_per_second": pairs_per_s,
        "notes": notes,
        "table_markdown": table,
        "wall_seconds": None,
    }
    report["wall_seconds"] = round(time.perf_counter() - t_start, 1)
    if args.out:
        atomic_write_json(args.out, report)
    print()
    print(table)
    print()
    for primary in (True, False):
        print("targets (default settings: LoRA θ, k_warm=1):" if primary else "\nthe same ratios elsewhere (info):")
        for t in targets:
            if t["primary"] == primary:
                v = "n/a" if t["value"] is None else f"{t['value']:.3f}"
                print(f"{'PASS' if t['pass'] else 'FAIL'}  {t['target']}: {v} (limit {t['limit']}; {t['detail']})")
    for eng, v in pairs_per_s.items():
        print(f"pairs/s {eng}: batched 4 pairs {v['batched_4_pairs_per_s']:.3f}, one at a time "
              f"{v['one_at_a_time_pairs_per_s']:.3f} (batched {v['speedup_batched']:.2f}× faster, median per round)"
              if v["speedup_batched"] else f"pairs/s {eng}: {v}")
    for line in notes["analysis"]:
        print("note:", line)
    print(f"\nwall time {report['wall_seconds']} s; wrote {args.out}")
    return 0


def analysis(by_key: dict, cfgs, agreement: dict) -> list[str]:
    """Where the time and memory go, from the measured phases (medians)."""
    out = []

    def ph(key, name):
        r = by_key.get(key)
        return r and r["phases_median_s"].get(name)

    for m, P in sorted({(m, P) for m, P, _ in cfgs}, key=lambda x: (x[0] != "lora", x[1])):
        plain = f"{m}/P{P}/plain"
        b = ph(plain, "theta_fwd_bwd")
        if b is None:
            continue
        parts = [f"{m}, P={P}: plain step {by_key[plain]['median_s']:.3f} s = φ forward (no grad) "
                 f"{ph(plain, 'phi_forward'):.3f} + θ forward+backward {b:.3f} + optimizer {ph(plain, 'optimizer'):.3f}."]
        for k in (1, 0):
            db = f"{m}/P{P}/k{k}/double_backward"
            if db not in by_key:
                continue
            y = ph(db, "meta_step")
            parts.append(f"double_backward (k_warm={k}) {by_key[db]['median_s']:.3f} s = φ forward with grad "
                         f"{ph(db, 'phi_forward'):.3f} + meta_step {y:.3f} (= {y / b:.2f}× the plain θ forward+backward) "
                         f"+ φ backward {ph(db, 'phi_backward'):.3f}.")
            for eng in ("forward", "fd"):
                e = f"{m}/P{P}/k{k}/{eng}"
                if e in by_key:
                    parts.append(f"{eng} (k_warm={k}): meta_step {ph(e, 'meta_step'):.3f} s.")
        k1, k0 = by_key.get(f"{m}/P{P}/k1/double_backward"), by_key.get(f"{m}/P{P}/k0/double_backward")
        if k1 and k0:
            parts.append(f"The warm-up step (k_warm=1 − k_warm=0, double_backward) costs "
                         f"{ph(f'{m}/P{P}/k1/double_backward', 'meta_step') - ph(f'{m}/P{P}/k0/double_backward', 'meta_step'):.3f} s "
                         f"(one θ forward+backward of the document plus an AdamW update).")
            warm = ph(f'{m}/P{P}/k1/double_backward', 'meta_step') - ph(f'{m}/P{P}/k0/double_backward', 'meta_step')
            fixed = warm + ph(f'{m}/P{P}/k1/double_backward', 'phi_forward') + ph(f'{m}/P{P}/k1/double_backward', 'phi_backward')
            parts.append(f"Warm-up + φ forward + φ backward alone: {fixed:.3f} s = "
                         f"{fixed / by_key[plain]['median_s']:.2f}× the whole plain step, before the differentiable step.")
        out.append(" ".join(parts))
    out.append("What meta_step does per call (meta_gradient.py): k_warm × (θ forward+backward of the document, "
               "functional AdamW); one no-grad θ forward of the task (outer0, reported at θ0); then "
               "double_backward: θ forward of the document, backward with create_graph=True, the differentiable "
               "AdamW step, θ' forward of the task, and the backward through all of that to w (it traverses "
               "the document's graph a second time); directional/forward: θ forward+backward of the document "
               "(plain), θ' forward+backward of the task (plain), then one forward-mode JVP through the "
               "backbone (≈ 2–3 forwards' work: primal + tangent, with functorch decompositions); fd: the JVP "
               "replaced by two no-grad forwards. On top of meta_step, every meta variant runs φ forward with "
               "grad and φ backward (a second 135M model), which the plain step does not (φ forward only, no grad). "
               "So a meta-step holds ≳ 3 θ forward+backward equivalents plus a φ backward, against the plain step's one "
               "θ forward+backward.")
    fdk = [k for k in agreement if k.endswith("/fd") or "fd@" in k]
    if fdk:
        out.append("fd agreement with double_backward (grad_w rel err): " + ", ".join(
            f"{k}: {agreement[k]['grad_w']['rel_err']:.3g}" for k in fdk)
            + f" (fd_step={FD_STEP:g} is the engine default; the @ entries are the agreement-only sweep).")
    return out


def contention(interference: dict, rounds: list) -> dict:
    """Timed steps that ran with less than ~1.8 of 2 cores (another process on the machine)."""
    flagged = {}
    for key, rows in interference.items():
        bad = [i + 1 for i, r in enumerate(rows) if r["cpu_over_wall"] < 0.9 * max(1, torch.get_num_threads())]
        if bad:
            flagged[key] = bad
    per_round: dict = {}
    for key, rs in flagged.items():
        for r in rs:
            per_round[r] = per_round.get(r, 0) + 1
    return {"rule": "a timed step is flagged when its process CPU time / wall time < 0.9 × torch threads",
            "flagged_steps_by_round": dict(sorted(per_round.items())),
            "flagged_rounds_by_variant": flagged,
            "effect": "medians over the rounds and medians of per-round ratios are robust to one contended round"}


def fmt(x, spec=".3f"):
    return "–" if x is None else format(x, spec)


def markdown_table(rows: list[dict]) -> str:
    head = ("| θ | P | k_warm | step | median s | × plain | × double_backward | pairs/s | extra MB (RSS) | "
            "extra MB (VmHWM) | extra MB (ru_maxrss) | mem ÷ double_backward | grad_w vs db: rel err / cos | φ grad vs db: rel err / cos |")
    lines = [head, "|" + "|".join(["---"] * (head.count("|") - 1)) + "|"]
    for r in rows:
        vp = r.get("vs_plain")
        vd = r.get("vs_double_backward") or r.get("vs_batched")
        m = r.get("memory") or {}
        a = r.get("agreement") or {}
        g, pg = a.get("grad_w", {}), a.get("phi_grad", {})
        step = r["step"] + (f" (h={FD_STEP:g})" if r["step"] == "fd" else "")
        lines.append("| " + " | ".join([
            r["theta"], str(r["P"]), "–" if r["k_warm"] is None else str(r["k_warm"]), step,
            fmt(r["median_s"]), fmt(vp and vp["median_of_round_ratios"], ".2f"),
            (fmt(vd and vd["median_of_round_ratios"], ".2f") + (" (÷ batched)" if "vs_batched" in r else "")),
            fmt(r.get("pairs_per_s"), ".2f"), fmt(m.get("extra_mb"), ".0f"), fmt(m.get("vmhwm_extra_mb"), ".0f"),
            (fmt(m.get("maxrss_extra_mb"), ".0f") + ("" if m.get("maxrss_valid", True) else " (load peak)")),
            fmt(r.get("mem_vs_double_backward"), ".2f"),
            (f"{fmt(g.get('rel_err'), '.2e')} / {fmt(g.get('cosine'), '.6f')}" if g else "–"),
            (f"{fmt(pg.get('rel_err'), '.2e')} / {fmt(pg.get('cosine'), '.6f')}" if pg else "–"),
        ]) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
