"""The LAMA-ckl protocol (SPEC 2.5), registered as ``taalm bench lama-ckl``.

For every method, from the same θ0: learn the To-Learn evidence documents for E epochs with the
ordinary learner (:func:`taalm.ckl.learner.learn`), and evaluate the To-Learn probes and the
Not-To-Forget (NF) probes before training (epoch 0) and after every epoch. Summary over the E+1
evaluation points (:mod:`.metrics`): **Top Acc** = max To-Learn accuracy; **Epoch** = the first
epoch reaching it; **NF Acc** = NF accuracy at that epoch; **Total Knowledge** = Top Acc + NF Acc.

Inputs are two LAMA-ckl unit files (:mod:`.data`); a size preset and ``key=value`` overrides
give the configuration (:mod:`.config`). Output folder::

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
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from ...core.config import to_dict
from ...core.errors import TaalmError
from ...core.run import RunOptions, options_for
from ..folders import MethodFolders, fmt_time, peak_memory, read_json_object
from ..methods import check_methods, method_info, set_replay_pool, with_method_name
from ..registry import register_benchmark
from .config import LamaCklConfig, probe_format_of, resolve_config
from .data import LamaCklData, load_lama_ckl
from .metrics import curve_from_history, summarize_curve


@dataclass
class LamaCkl:
    """One LAMA-ckl run once everything is checked: what every method's run needs."""

    size: str
    cfg: LamaCklConfig
    data: LamaCklData
    out: Path
    model: object
    tokenizer: object
    label: str  # the model's name in the results
    progress: bool
    log: Callable[[str], None]


__all__ = ["run_lama_ckl", "LamaCkl"]

#: what LAMA-ckl writes at the top of its folder (beside one folder per method)
BENCH_FILES = ("bench.json", "summary.json", "results.md", "curves.png", "curves.jsonl")


def _folders(out: Path) -> MethodFolders:
    return MethodFolders(out, "bench.json", BENCH_FILES, lambda path: read_json_object(path, ("summary", "wall_s")))


@register_benchmark("lama-ckl")
def run_lama_ckl(files: tuple[str | Path, str | Path], methods: Iterable[str], size: str, out_dir: str | Path,
                 overrides: Iterable[str] = (), *, theta0: tuple | None = None,
                 options: RunOptions | None = None) -> dict:
    """Run the LAMA-ckl protocol (module docstring) for each method; return ``summary.json``'s dict.

    ``files``: the (To-Learn, Not-To-Forget) unit files; ``size``: a key of
    :data:`~taalm.bench.lama_ckl.config.SIZES`; ``overrides``: ``key=value`` on top of it
    (LearnConfig keys and ``bench.*``; ``data.probe_field=task_schematic`` for the schematic probes).
    ``theta0``: ``(model, tokenizer)`` already loaded (each method trains a deep copy); otherwise
    ``model.name`` is loaded for each method that runs. Everything is validated (files, methods,
    φ checkpoint, keys) before a model is loaded or a file written.
    """
    opts = options_for(options, "the LAMA-ckl benchmark", allow=())
    to_learn, not_to_forget = files
    model, tokenizer = theta0 if theta0 is not None else (None, None)
    if (model is None) != (tokenizer is None):
        raise TaalmError("pass theta0 as (model, tokenizer), or neither (then model.name is loaded)")
    cfg = resolve_config(size, overrides)
    data = load_lama_ckl(to_learn, not_to_forget, cfg)
    methods = [m.strip() for m in methods if m and m.strip()]
    set_replay_pool(methods, cfg, Path(to_learn), Path(not_to_forget))  # before the parts are built
    methods = check_methods(methods, cfg, data.documents)
    out = Path(out_dir)
    record = _bench_record(size, cfg, data)
    if model is not None:  # a model passed in is named by its weights, not by model.name
        from ..tailor import model_fingerprint

        record["model_fingerprint"] = model_fingerprint(model, tokenizer)
    _folders(out).check(record, methods, cfg)
    for note in data.notes:
        opts.log(note)
    label = cfg.model.name if model is None else (
        getattr(getattr(model, "config", None), "name_or_path", "") or f"{type(model).__name__} (passed in)")
    from ...core.run import Run

    # the folder keeps the benchmark's own rules (check_out_dir: methods' runs continued in place)
    with Run(out, device=cfg.model.device, log=opts.log, progress=opts.progress, folder_rule="none") as run:
        b = LamaCkl(size, cfg, data, out, model, tokenizer, label, run.progress, run.log)
        return _run_methods(b, methods, record)


def _bench_record(size: str, cfg: LamaCklConfig, data: LamaCklData) -> dict:
    """What must match for a rerun to reuse a folder (paths may differ; contents may not)."""
    conf = to_dict(cfg)
    conf.pop("method")  # per method: see check_method_options (methods can be added to a folder later)
    conf["model"].pop("device", None)  # where it runs does not change what is measured
    return {"benchmark": "lama-ckl", "size": size, "config": conf,
            "inputs": {k: ({kk: vv for kk, vv in v.items() if kk != "path"} if isinstance(v, dict) else v)
                       for k, v in data.info.items()}}


def _run_methods(b: LamaCkl, methods: list[str], record: dict) -> dict:
    """Every method in turn (finished ones skipped), then the folder's summary files."""
    from ...core import distributed

    main = distributed.is_main_process()
    folders = _folders(b.out)
    if main:
        folders.open(record, methods)
    b.log(f"lama-ckl ({b.size}): {len(b.data.documents)} To-Learn units, {len(b.data.nf_probes)} NF units, "
          f"{b.cfg.train.epochs} epochs, probes {b.cfg.data.probe_field}, methods {', '.join(methods)} -> {b.out}")

    def run_one(name: str) -> dict:
        b.log(f"[{name}] learning")
        result = _run_method(b, name)
        s = result["summary"]
        b.log(f"[{name}] Top Acc {s['top_acc']:.3f} at epoch {s['epoch']}, NF Acc {s['nf_acc']:.3f}, "
              f"Total {s['total']:.3f} ({fmt_time(result['wall_s'])})")
        return result

    # the ranks agree on what is done before each method (rank 0 wrote the last result)
    results = folders.run(methods, run_one, b.log, before_each=distributed.barrier)
    if not main:  # the same results; rank 0 writes and prints them
        return {"methods": {n: {"summary": r["summary"], "wall_s": r["wall_s"]} for n, r in results.items()},
                "table": ""}
    from .report import write_summary

    return write_summary(b, folders.with_earlier(results))  # also methods of earlier --methods


def _run_method(b: LamaCkl, name: str) -> dict:
    """One method: the learner on the To-Learn documents from θ0, resumable; ``result.json`` last."""
    from ...ckl.learner import LearnOptions, learn
    from ...ckl.method import split_method_name
    from ...core import distributed
    from ...core.files import atomic_write_json, environment_info, write_jsonl

    mdir, main = b.out / name, distributed.is_main_process()
    run_dir = mdir / "run"
    lc = split_method_name(with_method_name(b.cfg, name))  # "taalm+mixreview": the parts as config keys
    lc.data.kept = "none"  # the benchmark's own NF set measures what is kept
    resume = (run_dir / "checkpoints" / "latest.json").is_file()
    timing = read_json_object(mdir / "timing.json") if resume and (mdir / "timing.json").is_file() else {}
    prior_s, sessions = float(timing.get("wall_s", 0.0)), int(timing.get("sessions", 0)) + 1
    if main:
        mdir.mkdir(parents=True, exist_ok=True)
    if resume:
        b.log(f"[{name}] resuming {run_dir}")
    t0 = time.perf_counter()
    model = _theta0_copy(b, lc)
    options = LearnOptions(resume=resume, overwrite=not resume, progress=b.progress, log=b.log,
                           callbacks=[_epoch_writer(mdir, prior_s, sessions, t0)])
    res = learn(b.data.documents, b.data.probes, lc, run_dir, model=model, tokenizer=b.tokenizer,
                extra_probes={"nf": b.data.nf_probes}, options=options)
    wall = prior_s + time.perf_counter() - t0
    device = next(res.model.parameters()).device
    curve = curve_from_history(res.history)
    if main:
        write_jsonl(mdir / "curve.jsonl", curve)
    result = {
        "benchmark": "lama-ckl", "method": name, "size": b.size, "model": b.label,
        "probe_format": probe_format_of(lc), "config": {**to_dict(lc), "bench": to_dict(b.cfg.bench)},
        "inputs": b.data.info, "method_info": method_info(lc), "environment": environment_info(device),
        "wall_s": round(wall, 2), "sessions": sessions, "train_seconds": round(res.train_seconds, 2),
        "prepare_seconds": round(res.prepare_seconds, 2),
        "epoch_seconds_this_session": [round(x, 2) for x in res.epoch_seconds],
        "steps": res.steps, "peak_memory": peak_memory(device), "run_dir": str(run_dir.relative_to(b.out)),
        "curve": curve, "summary": summarize_curve(curve),
    }
    if main:
        atomic_write_json(mdir / "result.json", result)  # written last: its presence = done
    return result


def _theta0_copy(b: LamaCkl, lc):
    """A deep copy of the θ0 passed in (every method starts from the same θ0), or None (the
    learner loads ``model.name``); the device's peak-memory counter reset either way."""
    from ...core.devices import reset_peak_memory, resolve_device

    if b.model is None:
        reset_peak_memory(resolve_device(lc.model.device))
        return None
    model = copy.deepcopy(b.model)
    reset_peak_memory(next(model.parameters()).device)
    return model


def _epoch_writer(mdir: Path, prior_s: float, sessions: int, t0: float) -> Callable[[dict], None]:
    """The learner's epoch callback: the curve so far and the wall time, which survive an interruption."""
    from ...core.files import atomic_write_json, read_jsonl, write_jsonl

    def on_epoch(event: dict) -> None:
        rows = [r for r in read_jsonl(mdir / "run" / "metrics.jsonl") if r.get("type") == "eval"]
        write_jsonl(mdir / "curve.jsonl", curve_from_history(rows))
        atomic_write_json(mdir / "timing.json", {"wall_s": round(prior_s + time.perf_counter() - t0, 3),
                                                 "sessions": sessions, "last_epoch": event["epoch"]})
    return on_epoch
