"""The stream benchmark runner (``taalm bench stream NAME``): θ learns period after period.

For every method, from the same θ0::

    score θ0 on every period's probe sets and the NF sets             -> row 0 of the matrices
    for period i = 1..P:
        learn period i's documents (the ordinary learner; θ carried over, a fresh optimizer,
            the current period's primary probes and the NF sets evaluated after every epoch)
        save θ's trained tensors (period-NN/theta.safetensors)        -> the resume point
        score θ on every period's probe sets and the NF sets          -> row i

Every period's probes are scored after every period (the future ones too, for forward
transfer), so acc[i][j] is a (P+1) × P matrix per probe set, NLL and perplexity beside it, and
:func:`~taalm.bench.stream.metrics.stream_metrics` gives learning, forgetting, BWT and FWT of
the primary set. Output folder::

    OUT/stream.json                     stream, size, resolved config, input fingerprints
    OUT/<method>/period-NN/run/         the learner's run folder of period NN (an interrupted period resumes)
    OUT/<method>/period-NN/theta.safetensors   θ's trained tensors after period NN
    OUT/<method>/scores/row-NN.json     the scores after period NN (row 00 = θ0)
    OUT/<method>/result.json            matrices, metrics, NF over time (its presence = done)
    OUT/summary.json, results.md, matrix.png, curves.png

A rerun with the same configuration and data skips finished methods and periods and resumes
an interrupted period; another configuration or data in the same folder is an error.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from ...core.config import load_config, to_dict
from ...core.errors import ConfigError, TaalmError
from ...core.run import RunOptions, options_for
from ..folders import MethodFolders, fmt_time, peak_memory, read_json_object
from ..methods import check_methods, method_info, with_method_name
from .base import STREAM_BENCHMARKS, StreamBenchmark, StreamConfig, StreamData, input_path_keys, stream_config_class
from .metrics import perplexity, score_row_problem, stream_metrics, stream_result_problem


@dataclass
class _Stream:
    """One stream run once everything is checked: what every method's loop needs."""

    name: str
    size: str
    cfg: StreamConfig
    data: StreamData
    out: Path
    model: object
    tokenizer: object
    label: str
    progress: bool
    log: Callable[[str], None]


#: what a stream benchmark writes at the top of its folder (beside one folder per method)
STREAM_FILES = ("stream.json", "summary.json", "results.md", "matrix.png", "curves.png")

#: the ``stream.*`` keys every stream had before each stream got its own options: a folder written
#: then records them all; those a stream does not have are not compared on a rerun
_ONE_OPTIONS_KEYS = ("periods", "n_units", "n_nf", "seed", "min_chars", "min_letters", "max_documents", "max_probes")


def _folders(out: Path) -> MethodFolders:
    return MethodFolders(out, "stream.json", STREAM_FILES, _read_result)


__all__ = ["run_stream", "resolve_stream_config", "matrices"]


def run_stream(name: str, methods: Iterable[str], out_dir: str | Path, size: str = "smoke",
               overrides: Iterable[str] = (), *, theta0: tuple | None = None,
               options: RunOptions | None = None) -> dict:
    """Run the stream ``name`` (a registered :class:`StreamBenchmark`) for each method; return
    ``summary.json``'s dict. ``overrides``: ``key=value`` on top of the size preset (the
    :class:`~taalm.ckl.config.LearnConfig` keys and ``stream.*``; ``stream.data`` = the data
    folder). ``theta0``: ``(model, tokenizer)`` already loaded (each method trains a deep copy);
    otherwise ``model.name`` is loaded. Everything is validated before a file is written."""
    opts = options_for(options, "a stream benchmark", allow=())
    bench, cfg = resolve_stream_config(name, size, overrides)
    data = bench.load(cfg)
    methods = [m.strip() for m in methods if m and m.strip()]
    bench.prepare_methods(methods, cfg)
    methods = check_methods(methods, cfg, [d for p in data.periods for d in p.documents])
    model, tokenizer = theta0 if theta0 is not None else (None, None)
    out = Path(out_dir)
    record = {"benchmark": "stream", "stream": name, "size": size, "config": _record_config(cfg),
              "inputs": data.info}
    if model is not None:
        from ..tailor import model_fingerprint

        record["model_fingerprint"] = model_fingerprint(model, tokenizer)
    retired = [f"config.stream.{k}" for k in _ONE_OPTIONS_KEYS if k not in record["config"]["stream"]]
    _folders(out).check(record, methods, cfg, retired)
    for note in data.notes:
        opts.log(note)
    from ...core import distributed

    if distributed.current().enabled:
        raise ConfigError("stream benchmarks run in one process (not under torchrun)")
    label = cfg.model.name if model is None else (
        getattr(getattr(model, "config", None), "name_or_path", "") or f"{type(model).__name__} (passed in)")
    from ...core.run import Run

    with Run(out, device=cfg.model.device, log=opts.log, progress=opts.progress, folder_rule="none") as run:
        s = _Stream(name, size, cfg, data, out, model, tokenizer, label, run.progress, run.log)
        return _run_methods(s, methods, record)


def _record_config(cfg: StreamConfig) -> dict:
    """What must match for a rerun to reuse a folder: the config less the method (per method) and
    the device; the data folder's path may differ (its files' fingerprints are compared)."""
    conf = to_dict(cfg)
    conf.pop("method")
    conf["model"].pop("device", None)
    for key in input_path_keys(cfg):
        conf["stream"].pop(key, None)
    return conf


def _run_methods(s: _Stream, methods: list[str], record: dict) -> dict:
    folders = _folders(s.out)
    folders.open(record, methods)
    P = len(s.data.periods)
    s.log(f"stream {s.name} ({s.size}): {P} periods of {', '.join(str(len(p.documents)) for p in s.data.periods)} "
          f"documents, {s.cfg.train.epochs} epochs each, methods {', '.join(methods)} -> {s.out}")

    def run_one(name: str) -> dict:
        result = _run_method(s, name)
        m = result["metrics"]
        s.log(f"[{name}] learning {_f(m['mean_learning'])}, forgetting {_f(m['mean_forgetting'])}, "
              f"BWT {_f(m['bwt'])}, final {_f(m['final_acc'])} ({fmt_time(result['wall_s'])})")
        return result

    results = folders.run(methods, run_one, s.log)
    from .report import write_stream_summary

    return write_stream_summary(s, folders.with_earlier(results))  # also methods of earlier --methods


def _read_result(path: Path) -> dict:
    """A finished method's ``result.json``, checked (:func:`stream_result_problem`)."""
    r = read_json_object(path, ("metrics", "wall_s"))
    problem = stream_result_problem(r)
    if problem:
        raise TaalmError(f"{path}: not a result the benchmark wrote ({problem}); delete it to redo that method, "
                         f"or use another --out")
    return r


def _run_method(s: _Stream, name: str) -> dict:
    """One method through every period; each finished period is a resume point."""
    from ...ckl.method import split_method_name
    from ...core.files import atomic_write_json, environment_info

    lc = split_method_name(with_method_name(s.cfg, name))
    lc.data.kept = "none"  # the stream's own NF sets measure what is kept
    mdir = s.out / name
    timing_path = mdir / "timing.json"
    timing = read_json_object(timing_path) if timing_path.is_file() else {}
    prior_s, sessions = float(timing.get("wall_s", 0.0)), int(timing.get("sessions", 0)) + 1
    t0 = time.perf_counter()
    P = len(s.data.periods)
    rows = _done_rows(s, mdir)
    theta = _theta_after(s, lc, len(rows) - 1) if rows else _fresh_theta(s)
    if not rows:
        s.log(f"[{name}] scoring θ0 on {P} periods")
        rows.append(_score_row(s, theta, 0, mdir, 0.0))
    elif len(rows) <= P:
        s.log(f"[{name}] resuming after period {len(rows) - 1} of {P}")
    for i in range(len(rows), P + 1):
        period = s.data.periods[i - 1]
        s.log(f"[{name}] period {i}/{P} ({period.name}): {len(period.documents)} documents")
        theta, train_s = _learn_period(s, lc, mdir / f"period-{i:02d}", period, theta)
        rows.append(_score_row(s, theta, i, mdir, train_s))
        atomic_write_json(timing_path, {"wall_s": round(prior_s + time.perf_counter() - t0, 3),
                                        "sessions": sessions, "last_period": i})
    device = next(theta[0].parameters()).device
    result = {"benchmark": "stream", "stream": s.name, "method": name, "size": s.size, "model": s.label,
              "config": {**to_dict(lc), "stream": to_dict(s.cfg.stream)}, "inputs": s.data.info,
              "method_info": method_info(lc), "environment": environment_info(device),
              "wall_s": round(prior_s + time.perf_counter() - t0, 2), "sessions": sessions,
              "peak_memory": peak_memory(device), **matrices(s.data, rows)}
    atomic_write_json(mdir / "result.json", result)  # written last: its presence = done
    return result


def _done_rows(s: _Stream, mdir: Path) -> list[dict]:
    """The score rows already written, in order (a gap ends them: later ones are redone), each
    checked against this stream's probe sets (:func:`score_row_problem`)."""
    P = len(s.data.periods)
    sets: dict[str, int] = {}
    for period in s.data.periods:
        for set_name in period.probes:
            sets[set_name] = sets.get(set_name, 0) + 1
    rows = []
    for i in range(P + 1):
        path = mdir / "scores" / f"row-{i:02d}.json"
        if not path.is_file() or (i > 0 and not (mdir / f"period-{i:02d}" / "theta.safetensors").is_file()):
            break
        row = read_json_object(path, ("after_period", "sets"))
        problem = score_row_problem(row, i, sets, list(s.data.nf))
        if problem:
            raise TaalmError(f"{path}: not a score row the benchmark wrote ({problem}); delete {mdir} to redo the "
                             f"method, or use another --out")
        rows.append(row)
    return rows


def _theta_after(s: _Stream, lc, period: int) -> tuple:
    """θ after ``period`` (0 = θ0): θ0 in the method's θ form with that period's trained tensors."""
    model, tokenizer = _fresh_theta(s)
    if period == 0:
        return model, tokenizer
    from ...ckl.method import resolve_method
    from ...core.files import load_tensors

    model = resolve_method(lc).theta.prepare(model)
    path = s.out / lc.method.name / f"period-{period:02d}" / "theta.safetensors"
    try:
        tensors = load_tensors(path)
    except Exception as e:  # noqa: BLE001 - safetensors raises its own types for a truncated file
        raise TaalmError(f"{path}: damaged ({str(e).splitlines()[0][:120] if str(e) else type(e).__name__}); "
                         f"delete {path.parent.parent} to redo the method, or use another --out") from None
    trained = {n: p for n, p in model.named_parameters() if p.requires_grad}
    wrong = next((n for n, t in tensors.items() if n in trained and t.shape != trained[n].shape), None)
    if set(tensors) != set(trained) or wrong is not None:
        what = f"{wrong} of shape {tuple(tensors[wrong].shape)}" if wrong else "other tensors"
        raise TaalmError(f"{path}: holds {what} than this method's θ trains; delete "
                         f"{path.parent.parent} to redo the method, or use another --out")
    model.load_state_dict(tensors, strict=False)
    return model, tokenizer


def _fresh_theta(s: _Stream) -> tuple:
    """θ0: a deep copy of the model passed in, or ``model.name`` loaded."""
    if s.model is not None:
        return copy.deepcopy(s.model), s.tokenizer
    from ...models.loading import load_model

    m = s.cfg.model
    s.log(f"loading {m.name} ...")
    return load_model(m.name, m.device, m.dtype, m.attn, trust_remote_code=m.trust_remote_code,
                      allow_pickle=m.allow_pickle)


def _score_row(s: _Stream, theta: tuple, i: int, mdir: Path, train_s: float) -> dict:
    """Scores of θ after period ``i`` on every period's probe sets and the NF sets."""
    from ...core.files import atomic_write_json
    from ...evaluation.probes import evaluate_probes

    model, tokenizer = theta
    bs = s.cfg.eval.batch_size
    t0 = time.perf_counter()
    sets = {}
    for j, period in enumerate(s.data.periods):
        for set_name, probes in period.probes.items():
            r = evaluate_probes(model, tokenizer, probes, bs)
            sets.setdefault(set_name, []).append({"accuracy": r.accuracy, "nll": r.nll, "n": r.n})
    nf = {k: evaluate_probes(model, tokenizer, v, bs).summary() for k, v in s.data.nf.items()}
    row = {"after_period": i, "sets": sets, "nf": nf, "train_seconds": round(train_s, 2),
           "eval_seconds": round(time.perf_counter() - t0, 2)}
    atomic_write_json(mdir / "scores" / f"row-{i:02d}.json", row)
    return row


def _learn_period(s: _Stream, lc, pdir: Path, period, theta: tuple) -> tuple[tuple, float]:
    """Learn one period (resuming its run if it was interrupted); save θ's trained tensors."""
    from ...ckl.learner import learn
    from ...core.run import RunOptions
    from ...core.files import save_tensors

    run_dir = pdir / "run"
    resume = (run_dir / "checkpoints" / "latest.json").is_file()
    pdir.mkdir(parents=True, exist_ok=True)
    res = learn(period.documents, period.probes[s.data.primary], lc, run_dir, model=theta[0], tokenizer=theta[1],
                extra_probes=s.data.nf or None,
                options=RunOptions(resume=resume, overwrite=not resume, progress=s.progress, log=s.log))
    trained = {n: p.detach().to("cpu").contiguous() for n, p in res.model.named_parameters() if p.requires_grad}
    save_tensors(pdir / "theta.safetensors", trained, {"period": period.name})
    return (res.model, res.tokenizer), res.train_seconds


def _f(x) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def resolve_stream_config(name: str, size: str, overrides: Iterable[str] = ()) -> tuple[StreamBenchmark, StreamConfig]:
    """Defaults -> the stream's size preset -> ``key=value`` overrides (unknown keys are errors)."""
    bench = STREAM_BENCHMARKS.get(name)()
    if size not in bench.sizes:
        raise ConfigError(f"unknown size '{size}' for stream {name} (available: {', '.join(bench.sizes)})")
    overrides = [str(o) for o in overrides]
    if any(o.split("=", 1)[0].strip() == "method.name" for o in overrides):
        raise ConfigError("method.name is set per method; choose the methods with --methods", "method.name")
    cfg = load_config(stream_config_class(name), None, bench.sizes[size][1] + overrides)
    if cfg.data.limit:
        raise ConfigError("data.limit is not used by benchmarks; set stream.max_documents", "data.limit")
    if cfg.train.epochs < 1:
        raise ConfigError("train.epochs (per period) must be >= 1 for a benchmark", "train.epochs")
    if cfg.train.fsdp:
        raise ConfigError("stream benchmarks run in one process (train.fsdp is for torchrun)", "train.fsdp")
    return bench, cfg  # stream.* ranges: the stream's options' _rules, checked by load_config


def matrices(data: StreamData, rows: list[dict]) -> dict:
    """Accuracy / NLL / perplexity matrices per probe set, the primary set's metrics, NF over time."""
    sets = {}
    for name in rows[0]["sets"]:
        acc = [[c["accuracy"] for c in r["sets"][name]] for r in rows]
        nll = [[c["nll"] for c in r["sets"][name]] for r in rows]
        sets[name] = {"accuracy": acc, "nll": nll, "perplexity": [[perplexity(x) for x in row] for row in nll],
                      "n": [c["n"] for c in rows[0]["sets"][name]]}
    nf = {k: [{"after_period": r["after_period"], **r["nf"][k], "perplexity": perplexity(r["nf"][k]["nll"])}
              for r in rows] for k in data.nf}
    return {"periods": [p.name for p in data.periods], "primary": data.primary, "sets": sets,
            "metrics": stream_metrics(sets[data.primary]["accuracy"]), "nf": nf,
            "train_seconds": [r["train_seconds"] for r in rows[1:]]}
