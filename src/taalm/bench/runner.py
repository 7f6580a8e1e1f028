"""Benchmarks, registered by name (``taalm bench NAME``); LAMA-ckl first (SPEC 2.5).

**LAMA-ckl protocol.** For every method, from the same θ0: learn the To-Learn evidence documents
for E epochs with the ordinary learner (:func:`taalm.ckl.learner.learn`, method by name from
:mod:`taalm.ckl.weighting`), and evaluate the To-Learn probes and the Not-To-Forget (NF) probes
before training (epoch 0) and after every epoch. Summary over the E+1 evaluation points:

* **Top Acc** = max To-Learn accuracy; **Epoch** = the first epoch reaching it (0 = before);
* **NF Acc** = NF accuracy at that epoch; **Total Knowledge** = Top Acc + NF Acc.

Inputs are two LAMA-ckl unit files (any; e.g. those written by ``taalm data tailor``: To-Learn =
``to_learn.jsonl``, NF = ``not_to_forget_<format>.jsonl``, matching the probe format). A size
preset (:data:`SIZES`) fixes how many units, epochs, batch and lr; ``key=value`` overrides go on
top (the :class:`~taalm.core.config.LearnConfig` keys plus ``bench.*``). Subsets are the first N units
of each file (the released files are in random order), or a seeded random N (``bench.subset=random``).

Output folder::

    OUT/bench.json                 benchmark, size, resolved config, input fingerprints
    OUT/<method>/run/              the learner's run folder (checkpoints: an interrupted method resumes)
    OUT/<method>/curve.jsonl       one row per evaluation point (To-Learn and NF accuracy / NLL)
    OUT/<method>/result.json       run info, curve, summary (its presence = the method is done)
    OUT/curves.jsonl, curves.png   every method's curve; two panels (To-Learn, NF) vs epoch
    OUT/results.md, summary.json   the table: method | Top Acc | Epoch | NF Acc | Total | wall time

A rerun with the same configuration and data skips finished methods and resumes an interrupted
one; a different configuration or data in the same folder is an error (use another folder).
torch is imported only when a method runs.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
import sys
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable, Iterable

from ..core.config import LearnConfig, load_config, to_dict
from ..core.errors import ConfigError, InputError, TaalmError
from ..core.registry import Registry

# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------
BENCHMARKS: Registry[Callable] = Registry("benchmark", "benchmark")


def register_benchmark(name: str) -> Callable[[Callable], Callable]:
    """Register a benchmark runner under ``name`` (``@register_benchmark("mine")``)."""
    return BENCHMARKS.register(name)


def available_benchmarks() -> list[str]:
    return BENCHMARKS.names()


def get_benchmark(name: str) -> Callable:
    return BENCHMARKS.get(name)


# --------------------------------------------------------------------------------------------
# Configuration: LearnConfig + bench.* keys; sizes are presets applied before the overrides
# --------------------------------------------------------------------------------------------
SUBSETS = ("first", "random")
PROBE_FORMATS = ("descriptive", "schematic")


@dataclass
class BenchOptions:
    """Which units a LAMA-ckl run uses (``bench.*`` keys)."""

    n_to_learn: int = 0  # To-Learn units (0 = all of the file)
    n_nf: int = 0  # Not-To-Forget units (0 = all of the file)
    subset: str = "first"  # first: the first N lines of each file | random: N drawn with `seed`, file order kept
    seed: int = 0  # subset=random only


@dataclass
class LamaCklConfig(LearnConfig):
    """The learner's configuration (every :class:`LearnConfig` key) plus ``bench.*``."""

    bench: BenchOptions = field(default_factory=BenchOptions)

    def learn_config(self) -> LearnConfig:
        """The part the learner sees (``method.name`` is set per method)."""
        return LearnConfig(**{f.name: copy.deepcopy(getattr(self, f.name)) for f in fields(LearnConfig)})


@dataclass(frozen=True)
class LamaCklSize:
    """A size preset: applied as overrides before the user's ``key=value`` overrides."""

    name: str
    description: str
    n_to_learn: int  # 0 = all units of the file
    n_nf: int  # 0 = all units of the file
    epochs: int
    batch_size: int
    grad_accum: int
    lr: float
    max_length: int
    eval_batch_size: int
    group_by_length: int = 0  # train.group_by_length (less padding; same documents per epoch)

    def overrides(self) -> list[str]:
        return [f"bench.n_to_learn={self.n_to_learn}", f"bench.n_nf={self.n_nf}",
                f"train.epochs={self.epochs}", f"train.batch_size={self.batch_size}",
                f"train.grad_accum={self.grad_accum}", f"train.lr={self.lr!r}",
                f"train.max_length={self.max_length}", f"train.group_by_length={self.group_by_length}",
                f"eval.batch_size={self.eval_batch_size}"]


SIZES: dict[str, LamaCklSize] = {
    # CI and tests (tiny models): seconds
    "smoke": LamaCklSize("smoke", "a handful of units, 2 epochs (seconds with a tiny model; CI)",
                         n_to_learn=4, n_nf=4, epochs=2, batch_size=2, grad_accum=1, lr=1e-3,
                         max_length=128, eval_batch_size=8),
    # SmolLM2-135M on the 2-core CPU, LoRA θ (r=16), fp32. Timed on this machine: fwd+bwd+step of
    # 8 x 100 tokens ≈ 3.7 s; the first 200 To-Learn documents are ≈ 97 tokens on average, batched by
    # length (1.13x padding); To-Learn + NF probes (≈ 330) ≈ 5 s per evaluation point. Measured:
    # ≈ 2 min per epoch, 24.6-28.2 min per method for 12 epochs (benchmarks/results/
    # lama_ckl_cpu_smollm2). lr 1e-3 because LoRA θ learns little in 12 epochs at the paper's 1e-4.
    "cpu": LamaCklSize("cpu", "SmolLM2 on a 2-core CPU: 200 units, 12 epochs, batch 8, lr 1e-3 (~25-30 min per method)",
                       n_to_learn=200, n_nf=0, epochs=12, batch_size=8, grad_accum=1, lr=1e-3,
                       max_length=256, eval_batch_size=32, group_by_length=8),
    # The paper's CKL settings (SPEC 2.6): 500 units, 30 epochs, effective batch 64, lr 1e-4 AdamW,
    # no schedule, 512 tokens. (The paper trains Llama-2-7B with QLoRA; θ here is theta.* as set.)
    "paper": LamaCklSize("paper", "the paper's settings: 500 units, 30 epochs, batch 16 x 4, lr 1e-4",
                         n_to_learn=500, n_nf=0, epochs=30, batch_size=16, grad_accum=4, lr=1e-4,
                         max_length=512, eval_batch_size=64),
}


def get_size(name: str) -> LamaCklSize:
    if name not in SIZES:
        raise ConfigError(f"unknown size '{name}' (available: {', '.join(SIZES)})")
    return SIZES[name]


def resolve_config(size: str, overrides: Iterable[str] = (), probe_format: str | None = None) -> LamaCklConfig:
    """Defaults -> size preset -> ``probe_format`` -> ``key=value`` overrides (unknown keys are errors)."""
    preset = get_size(size)
    overrides = [str(o) for o in overrides]
    if any(o.split("=", 1)[0].strip() == "method.name" for o in overrides):
        raise ConfigError("method.name is set per method; choose the methods with --methods", "method.name")
    extra = []
    if probe_format is not None:
        if probe_format not in PROBE_FORMATS:
            raise ConfigError(f"unknown probe format '{probe_format}' (use {' or '.join(PROBE_FORMATS)})")
        extra.append(f"data.probe_field=task_{probe_format}")
    cfg = load_config(LamaCklConfig, None, preset.overrides() + extra + overrides)
    b = cfg.bench
    if b.subset not in SUBSETS:
        raise ConfigError(f"bench.subset must be one of {', '.join(SUBSETS)}, got '{b.subset}'", "bench.subset")
    if b.n_to_learn < 0 or b.n_nf < 0:
        raise ConfigError("bench.n_to_learn and bench.n_nf must be >= 0 (0 = all)")
    if cfg.data.limit:
        raise ConfigError("data.limit is not used by benchmarks; set bench.n_to_learn / bench.n_nf",
                          "data.limit")
    if cfg.train.epochs < 1:
        raise ConfigError("train.epochs must be >= 1 for a benchmark", "train.epochs")
    cfg.eval.every_epoch = True  # the protocol evaluates after every epoch
    return cfg


def probe_format_of(cfg: LearnConfig) -> str:
    return cfg.data.probe_field.removeprefix("task_")


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------
def lama_ckl_files(data_dir: str | Path, probe_format: str = "descriptive") -> tuple[Path, Path]:
    """``(to_learn.jsonl, not_to_forget_<format>.jsonl)`` of a folder written by ``taalm data tailor``."""
    if probe_format not in PROBE_FORMATS:
        raise ConfigError(f"unknown probe format '{probe_format}' (use {' or '.join(PROBE_FORMATS)})")
    d = Path(data_dir)
    if not d.is_dir():
        raise InputError("not a folder (expected the output of `taalm data tailor`)", d)
    files = (d / "to_learn.jsonl", d / f"not_to_forget_{probe_format}.jsonl")
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise InputError(f"missing {', '.join(missing)} (expected the output of `taalm data tailor`)", d)
    return files


def _subset(n_total: int, n: int, how: str, seed: int, stream: str) -> list[int]:
    if n <= 0 or n >= n_total:
        return list(range(n_total))
    if how == "first":
        return list(range(n))
    return sorted(random.Random(f"{seed}:{stream}").sample(range(n_total), n))  # file order kept


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class LamaCklData:
    documents: list  # To-Learn documents (evidence, answer = object)
    probes: list  # To-Learn probes (same units, same order)
    nf_probes: list
    info: dict  # paths, fingerprints, counts, selected ids
    notes: list[str] = field(default_factory=list)  # said once everything is validated


LAMA_UNIT_FIELDS = ("evidence", "object", "uuid")


def _check_lama_units(path: Path, probe_field: str) -> None:
    """The first row of ``path`` must be a LAMA-ckl unit; say so plainly when it is not."""
    from ..data import jsonl_rows

    rows = jsonl_rows(path)  # names file and line for missing files, bad JSON, arrays
    line, row = rows[0]
    missing = [f for f in LAMA_UNIT_FIELDS + (probe_field,) if f not in row]
    if missing:
        raise InputError(f"not LAMA-ckl units (a unit has {', '.join(LAMA_UNIT_FIELDS + (probe_field,))}; "
                         f"this row lacks {', '.join(missing)})", path, line)


def load_lama_ckl(to_learn: str | Path, not_to_forget: str | Path, cfg: LamaCklConfig) -> LamaCklData:
    """Read and subset both files; every problem names file, line and field."""
    from ..data import read_documents, read_probes

    to_learn, not_to_forget = Path(to_learn), Path(not_to_forget)
    field_ = cfg.data.probe_field
    for path in (to_learn, not_to_forget):
        _check_lama_units(path, field_)
    docs = read_documents(to_learn)
    probes = read_probes(to_learn, field_)
    if len(docs) != len(probes) or any(d.id != p.id for d, p in zip(docs, probes)):
        raise InputError("To-Learn rows must be LAMA-ckl units (evidence, object, "
                         f"{field_}, uuid): documents and probes do not pair up", to_learn)
    nf = read_probes(not_to_forget, field_)
    notes = []
    other = "schematic" if probe_format_of(cfg) == "descriptive" else "descriptive"
    if other in not_to_forget.name:
        notes.append(f"warning: probe format is {probe_format_of(cfg)} but the NF file is {not_to_forget.name}")
    b = cfg.bench
    ti = _subset(len(docs), b.n_to_learn, b.subset, b.seed, "to_learn")
    ni = _subset(len(nf), b.n_nf, b.subset, b.seed, "nf")
    for want, have, name in ((b.n_to_learn, len(docs), "To-Learn"), (b.n_nf, len(nf), "NF")):
        if want > have:
            notes.append(f"note: {name} file has {have} units (< {want} asked): using all of them")
    docs, probes, nf = [docs[i] for i in ti], [probes[i] for i in ti], [nf[i] for i in ni]
    info = {
        "to_learn": {"path": str(to_learn.resolve()), "sha256": _sha256(to_learn), "n": len(docs),
                     "ids": [d.id for d in docs]},
        "not_to_forget": {"path": str(not_to_forget.resolve()), "sha256": _sha256(not_to_forget),
                          "n": len(nf), "ids": [p.id for p in nf]},
        "probe_field": field_,
        "subset": b.subset,
    }
    return LamaCklData(docs, probes, nf, info, notes)


# --------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------
def curve_from_history(history: list[dict], nf_key: str = "nf") -> list[dict]:
    """Learner history rows -> curve rows (epoch, To-Learn and NF accuracy / NLL)."""
    out = []
    for r in history:
        nf = r.get(nf_key) or {}
        out.append({"epoch": r["epoch"], "to_learn_accuracy": r["accuracy"], "to_learn_nll": r["nll"],
                    "nf_accuracy": nf.get("accuracy"), "nf_nll": nf.get("nll"),
                    "eval_seconds": round(r.get("seconds", 0.0) + nf.get("seconds", 0.0), 3)})
    return out


def summarize_curve(curve: list[dict]) -> dict:
    """SPEC 2.5 over the evaluation points: Top Acc = max To-Learn accuracy; Epoch = the first
    epoch reaching it (0 = before training); NF Acc = NF accuracy at that epoch; Total = Top + NF."""
    if not curve:
        raise ValueError("empty curve")
    rows = sorted(curve, key=lambda r: r["epoch"])
    top = max(r["to_learn_accuracy"] for r in rows)
    best = next(r for r in rows if r["to_learn_accuracy"] == top)  # ties: the first epoch
    return {"top_acc": top, "epoch": best["epoch"], "nf_acc": best["nf_accuracy"],
            "total": top + best["nf_accuracy"], "n_points": len(rows),
            "final_to_learn_acc": rows[-1]["to_learn_accuracy"], "final_nf_acc": rows[-1]["nf_accuracy"],
            "nf_acc_before": rows[0]["nf_accuracy"]}


def format_results(summary: dict) -> str:
    """The Markdown table of ``summary.json``."""
    lines = ["| method | Top Acc | Epoch | NF Acc | Total | wall time |", "|---|---|---|---|---|---|"]
    for name, r in summary["methods"].items():
        s = r["summary"]
        lines.append(f"| {name} | {s['top_acc']:.3f} | {s['epoch']} | {s['nf_acc']:.3f} | "
                     f"{s['total']:.3f} | {_fmt_time(r['wall_s'])} |")
    return "\n".join(lines)


def _fmt_time(seconds: float) -> str:
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    m, s = divmod(int(round(seconds)), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}" if m >= 60 else f"{m}:{s:02d} min"


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------
def _peak_memory(device) -> dict:
    import resource  # POSIX

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    rss_mib = rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024
    out = {"ru_maxrss_mib": round(rss_mib, 1),
           "ru_maxrss_note": "peak RSS of the whole process so far (includes earlier methods)"}
    from ..core.devices import peak_memory_mib

    peak = peak_memory_mib(device)
    if peak is not None:
        out["cuda_max_allocated_mib"] = round(peak, 1)
    return out


def _check_methods(methods: Iterable[str], cfg: LamaCklConfig, documents) -> list[str]:
    from ..ckl.learner import check_documents
    from ..ckl.method import resolve_method, split_method_name
    from ..ckl.weighting import available_methods, get_method

    methods = [m.strip() for m in methods if m and m.strip()]
    if not methods:
        raise ConfigError(f"no methods given (available: {', '.join(available_methods())})")
    dup = sorted({m for m in methods if methods.count(m) > 1})
    if dup:
        raise ConfigError(f"method listed twice: {', '.join(dup)}")
    for m in methods:  # every part known and compatible, φ checkpoint present, answers found
        lc = split_method_name(_with_name(cfg, m))  # "kadapter" = finetune+kadapter
        resolve_method(lc)
        check_documents(documents, get_method(lc.method, cfg.train.seed))
    return methods


def _set_replay_pool(methods: list[str], cfg: LamaCklConfig, to_learn: Path, not_to_forget: Path) -> None:
    """Methods with the ``mixreview`` stream replay documents that are in neither the To-Learn nor
    the NF file: ``train.mixreview.pool``, by default the ``phi_pool.jsonl`` that ``taalm data
    tailor`` wrote beside them. Disjointness by uuid is checked (an InputError if they overlap)."""
    from ..ckl.method import split_method_name

    uses = [m for m in methods if split_method_name(_with_name(cfg, m)).train.stream == "mixreview"]
    if not uses:
        return
    pool = Path(cfg.train.mixreview.pool) if cfg.train.mixreview.pool else to_learn.parent / "phi_pool.jsonl"
    if not pool.is_file():
        raise InputError(f"methods {', '.join(uses)} replay documents: no train.mixreview.pool given and no "
                         f"phi_pool.jsonl beside the To-Learn file", pool)
    from ..data import jsonl_rows

    held_out = {str(r.get("uuid")) for f in (to_learn, not_to_forget) for _, r in jsonl_rows(f) if r.get("uuid")}
    overlap = sorted({str(r["uuid"]) for line, r in jsonl_rows(pool) if r.get("uuid")} & held_out)
    if overlap:
        raise InputError(f"{len(overlap)} replay units are To-Learn or Not-To-Forget units (e.g. uuid {overlap[0]}): "
                         "the replay pool must not be the evaluation set", pool)
    cfg.train.mixreview.pool = str(pool)


def _with_name(cfg: LamaCklConfig, name: str) -> LearnConfig:
    lc = cfg.learn_config()
    lc.method.name = name
    return lc


def _bench_record(size: str, cfg: LamaCklConfig, data: LamaCklData) -> dict:
    """What must match for a rerun to reuse a folder (paths may differ; contents may not)."""
    conf = to_dict(cfg)
    conf.pop("method")  # per method: see _method_options (methods can be added to a folder later)
    conf["model"].pop("device", None)  # where it runs does not change what is measured
    return {"benchmark": "lama-ckl", "size": size, "config": conf,
            "inputs": {k: ({kk: vv for kk, vv in v.items() if kk != "path"} if isinstance(v, dict) else v)
                       for k, v in data.info.items()}}


def read_json_object(path: Path, needs: tuple[str, ...] = ()) -> dict:
    """A JSON object that the benchmark wrote (``bench.json``, ``result.json``, ...), checked: a
    damaged or odd file is one clear error naming it, never a traceback."""
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise TaalmError(f"{path}: damaged ({str(e)[:80]}); delete it to redo that part, or use another --out") from None
    missing = [k for k in needs if not isinstance(obj, dict) or k not in obj]
    if not isinstance(obj, dict) or missing:
        what = f"a {type(obj).__name__}" if not isinstance(obj, dict) else f"no {missing[0]!r}"
        raise TaalmError(f"{path}: not a file the benchmark wrote ({what}); delete it to redo that part, "
                         f"or use another --out")
    return obj


def _check_out_dir(out: Path, record: dict, marker: str = "bench.json") -> None:
    """A folder is reused only for the same benchmark record (in ``marker``). Keys a newer taalm
    added to the schema (absent from the folder's record) hold their defaults there, so they are
    not compared."""
    marker_name = marker
    marker = out / marker_name
    if marker.is_file():
        old = read_json_object(marker)
        old_rec = {k: old.get(k) for k in record}
        new_rec = _without_new_keys(json.loads(json.dumps(record)), old_rec)
        if old_rec != new_rec:
            diff = _first_difference(old_rec, new_rec)
            raise TaalmError(f"{out}: holds a benchmark run with another configuration or data "
                             f"({diff} differs); use another --out folder")
    elif out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise TaalmError(f"{out}: exists and is not a benchmark folder (no {marker_name}); use another --out folder")


def _without_new_keys(new, old):
    if isinstance(new, dict) and isinstance(old, dict):
        return {k: _without_new_keys(v, old[k]) for k, v in new.items() if k in old}
    return new


def _first_difference(a, b, prefix: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(a) + [k for k in b if k not in a]:
            if a.get(k) != b.get(k):
                return _first_difference(a.get(k), b.get(k), f"{prefix}{k}.")
    return prefix.rstrip(".") or "<top>"


def _method_options(method_cfg: dict, name: str):
    """A method's own options (``method.<name>.*``; None for methods without options)."""
    return method_cfg.get(name) if isinstance(method_cfg.get(name), dict) else None


def _check_method_options(out: Path, name: str, cfg: LamaCklConfig) -> None:
    """A finished or started method must have been run with the same ``method.<name>.*``."""
    import yaml

    want = _method_options(to_dict(cfg.method), name)
    done, started = out / name / "result.json", out / name / "run" / "config.yaml"
    if done.is_file():
        had = _method_options(read_json_object(done, ("config",))["config"].get("method", {}), name)
    elif started.is_file():
        had = _method_options((yaml.safe_load(started.read_text()) or {}).get("method", {}), name)
    else:
        return
    if json.loads(json.dumps(had)) != json.loads(json.dumps(want)):
        raise TaalmError(f"{out / name}: was run with method.{name} = {had}, now {want}; "
                         f"use another --out folder (or delete {out / name})")


def _run_method(name: str, cfg: LamaCklConfig, data: LamaCklData, out: Path, size: str, *,
                model, tokenizer, model_label: str, progress: bool, log: Callable[[str], None]) -> dict:
    from ..ckl.learner import learn
    from ..core.files import atomic_write_json, environment_info, read_jsonl, write_jsonl

    from ..ckl.method import split_method_name
    from ..core import distributed

    mdir = out / name
    run_dir = mdir / "run"
    main = distributed.current().is_main

    lc = split_method_name(_with_name(cfg, name))  # "taalm+mixreview": the parts as config keys
    resume = (run_dir / "checkpoints" / "latest.json").is_file()
    timing_path = mdir / "timing.json"
    timing = read_json_object(timing_path) if resume and timing_path.is_file() else {}
    prior_s = float(timing.get("wall_s", 0.0))
    sessions = int(timing.get("sessions", 0)) + 1
    if main:
        mdir.mkdir(parents=True, exist_ok=True)
    if resume:
        log(f"[{name}] resuming {run_dir}")
    t0 = time.perf_counter()

    def on_epoch(event: dict) -> None:  # progress that survives an interruption
        rows = [r for r in read_jsonl(run_dir / "metrics.jsonl") if r.get("type") == "eval"]
        write_jsonl(mdir / "curve.jsonl", curve_from_history(rows))
        atomic_write_json(timing_path, {"wall_s": round(prior_s + time.perf_counter() - t0, 3),
                                        "sessions": sessions, "last_epoch": event["epoch"]})

    if model is not None:
        model = copy.deepcopy(model)  # every method starts from the same θ0
        from ..core.devices import reset_peak_memory

        reset_peak_memory(next(model.parameters()).device)
    else:  # the learner loads θ0 on the device the config resolves to
        from ..core.devices import reset_peak_memory, resolve_device

        reset_peak_memory(resolve_device(lc.model.device))
    res = learn(data.documents, data.probes, lc, run_dir, resume=resume, overwrite=not resume,
                model=model, tokenizer=tokenizer, progress=progress, callbacks=[on_epoch], log=log,
                extra_probes={"nf": data.nf_probes})
    wall = prior_s + time.perf_counter() - t0
    device = next(res.model.parameters()).device
    curve = curve_from_history(res.history)
    if main:
        write_jsonl(mdir / "curve.jsonl", curve)
    result = {
        "benchmark": "lama-ckl", "method": name, "size": size, "model": model_label,
        "probe_format": probe_format_of(lc),
        "config": {**to_dict(lc), "bench": to_dict(cfg.bench)},
        "inputs": data.info,
        "method_info": _method_info(lc),
        "environment": environment_info(device),
        "wall_s": round(wall, 2),
        "sessions": sessions,
        "train_seconds": round(res.train_seconds, 2),
        "prepare_seconds": round(res.prepare_seconds, 2),
        "epoch_seconds_this_session": [round(x, 2) for x in res.epoch_seconds],
        "steps": res.steps,
        "peak_memory": _peak_memory(device),
        "run_dir": str(run_dir.relative_to(out)),
        "curve": curve,
        "summary": summarize_curve(curve),
    }
    if main:
        atomic_write_json(mdir / "result.json", result)  # written last: its presence = done
    del res
    return result


def _method_info(lc: LearnConfig) -> dict:
    """What a method's config does not pin down by itself: for ``taalm``, which φ ran (the
    shipped default or a given folder) and the sha256 of its tensors."""
    if lc.method.name != "taalm":
        return {}
    from ..models.train_attention import PHI_TENSORS_FILE, default_phi_checkpoint, resolve_phi_checkpoint

    folder = resolve_phi_checkpoint(lc.method.taalm.checkpoint)
    default = default_phi_checkpoint()
    digest = hashlib.sha256((folder / PHI_TENSORS_FILE).read_bytes()).hexdigest()
    return {"phi_checkpoint": "shipped default (taalm/phi_default)" if default and folder == Path(default)
            else str(folder), "phi_sha256": digest}


@register_benchmark("lama-ckl")
def run_lama_ckl(to_learn: str | Path, not_to_forget: str | Path, methods: Iterable[str], size: str,
                 out_dir: str | Path, overrides: Iterable[str] = (), model=None, tokenizer=None,
                 progress: bool = True, log: Callable[[str], None] = print, *,
                 probe_format: str | None = None) -> dict:
    """Run the LAMA-ckl protocol (module docstring) for each method; return ``summary.json``'s dict.

    ``size``: a key of :data:`SIZES`; ``overrides``: ``key=value`` on top of it (LearnConfig keys
    and ``bench.*``); ``probe_format``: descriptive (default) or schematic (= ``data.probe_field``).
    ``model``/``tokenizer``: θ0 already loaded (each method trains a deep copy); otherwise
    ``model.name`` is loaded for each method that runs. Everything is validated (files, methods,
    φ checkpoint, keys) before a model is loaded or a file written.
    """
    if (model is None) != (tokenizer is None):
        raise TaalmError("pass both model and tokenizer, or neither (then model.name is loaded)")
    cfg = resolve_config(size, overrides, probe_format)
    data = load_lama_ckl(to_learn, not_to_forget, cfg)
    methods = [m.strip() for m in methods if m and m.strip()]
    _set_replay_pool(methods, cfg, Path(to_learn), Path(not_to_forget))  # before the parts are built
    methods = _check_methods(methods, cfg, data.documents)
    out = Path(out_dir)
    record = _bench_record(size, cfg, data)
    if model is not None:  # a model passed in is named by its weights, not by model.name
        from .tailor import model_fingerprint

        record["model_fingerprint"] = model_fingerprint(model, tokenizer)
    _check_out_dir(out, record)
    for name in methods:
        _check_method_options(out, name, cfg)

    for note in data.notes:
        log(note)
    model_label = cfg.model.name if model is None else (
        getattr(getattr(model, "config", None), "name_or_path", "") or f"{type(model).__name__} (passed in)")
    from ..core.run import Run

    # the folder keeps the benchmark's own rules (_check_out_dir: methods' runs continued in place)
    with Run(out, device=cfg.model.device, log=log, progress=progress, folder_rule="none") as run:
        return _run_methods(methods, cfg, data, out, size, record, model, tokenizer, model_label, run.progress,
                            run.log)


def _run_methods(methods, cfg: LamaCklConfig, data: LamaCklData, out: Path, size: str, record: dict,
                 model, tokenizer, model_label: str, progress: bool, log) -> dict:
    """:func:`run_lama_ckl` once everything is checked and the folder locked."""
    from ..core import distributed
    from ..core.files import atomic_write_json, atomic_write_text, write_jsonl

    main = distributed.current().is_main
    if main:
        out.mkdir(parents=True, exist_ok=True)
        if not (out / "bench.json").is_file():
            atomic_write_json(out / "bench.json", record)
    log(f"lama-ckl ({size}): {len(data.documents)} To-Learn units, {len(data.nf_probes)} NF units, "
        f"{cfg.train.epochs} epochs, probes {cfg.data.probe_field}, methods {', '.join(methods)} -> {out}")
    results: dict[str, dict] = {}
    for name in methods:
        distributed.barrier()  # the ranks agree on what is done (rank 0 wrote the last result)
        done = out / name / "result.json"
        if done.is_file():
            log(f"[{name}] done already ({done}); skipped")
            results[name] = read_json_object(done, ("summary", "wall_s"))
            continue
        log(f"[{name}] learning")
        results[name] = _run_method(name, cfg, data, out, size, model=model, tokenizer=tokenizer,
                                    model_label=model_label, progress=progress, log=log)
        s = results[name]["summary"]
        log(f"[{name}] Top Acc {s['top_acc']:.3f} at epoch {s['epoch']}, NF Acc {s['nf_acc']:.3f}, "
            f"Total {s['total']:.3f} ({_fmt_time(results[name]['wall_s'])})")

    if not main:  # the same results; rank 0 writes and prints them
        return {"methods": {n: {"summary": r["summary"], "wall_s": r["wall_s"]} for n, r in results.items()},
                "table": ""}
    # every method with a result in the folder (also those run earlier with other --methods)
    for d in sorted(out.iterdir()):
        if d.is_dir() and d.name not in results and (d / "result.json").is_file():
            results[d.name] = read_json_object(d / "result.json", ("summary", "wall_s"))
    summary = {
        "benchmark": "lama-ckl", "size": size, "probe_format": probe_format_of(cfg),
        "model": model_label, "epochs": cfg.train.epochs,
        "n_to_learn": len(data.documents), "n_nf": len(data.nf_probes),
        "methods": {n: {"summary": r["summary"], "wall_s": r["wall_s"]} for n, r in results.items()},
    }
    write_jsonl(out / "curves.jsonl", [{"method": n, **row} for n, r in results.items() for row in r["curve"]])
    from ..reporting.plots import plot_curves

    plot_curves({n: r["curve"] for n, r in results.items()}, out / "curves.png",
                f"LAMA-ckl ({size}): {model_label}, {len(data.documents)} To-Learn / "
                f"{len(data.nf_probes)} NF, {cfg.data.probe_field}",
                n={name: (len(data.documents), len(data.nf_probes)) for name in results})
    table = format_results(summary)
    atomic_write_text(out / "results.md",
                      f"# LAMA-ckl ({size})\n\nmodel `{model_label}`, {len(data.documents)} To-Learn "
                      f"units, {len(data.nf_probes)} NF units, probes `{cfg.data.probe_field}`, "
                      f"{cfg.train.epochs} epochs (Epoch 0 = before training). Top Acc = max To-Learn "
                      f"accuracy, Epoch = first epoch reaching it, NF Acc = NF accuracy at that epoch, "
                      f"Total = Top Acc + NF Acc.\n\n{table}\n")
    atomic_write_json(out / "summary.json", summary)
    summary["table"] = table
    return summary


__all__ = ["register_benchmark", "available_benchmarks", "get_benchmark", "run_lama_ckl", "SIZES",
           "LamaCklSize", "LamaCklConfig", "BenchOptions", "resolve_config", "lama_ckl_files",
           "load_lama_ckl", "summarize_curve", "curve_from_history", "format_results"]
