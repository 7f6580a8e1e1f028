"""``taalm report``: tables and plots re-rendered from saved runs, several side by side.

Reads what runs already wrote, trains nothing: a learn run folder (``summary.json``'s history:
accuracy, NLL and n per evaluation), a LAMA-ckl bench folder (``bench.json`` and one
``<method>/result.json`` per method: its curve, summary and the To-Learn / NF set sizes) or a
stream folder (``stream.json`` and ``<method>/result.json``: matrices, metrics, NF over time).
Writes ``report.md`` (the tables, each LAMA-ckl accuracy with its binomial standard error
sqrt(p(1-p)/n)), ``learn.png`` and ``bench.png`` (curves with ± SE bands), ``stream_matrix.png``
and ``stream_curves.png``, and ``report.json`` (what was read).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import InputError
from .plots import binomial_se, plot_curves, plot_history

REPORT_MARKER = "report.json"


@dataclass
class Source:
    """One folder read for the report."""

    path: Path
    kind: str  # learn | bench | stream
    label: str
    history: list[dict] = field(default_factory=list)  # learn: history rows
    methods: dict = field(default_factory=dict)  # bench: method -> {curve, summary, n, wall_s}; stream: result.json
    info: dict = field(default_factory=dict)


def _read_json(path: Path) -> dict:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError, RecursionError) as e:
        raise InputError(f"cannot read ({str(e)[:120]})", path) from None
    if not isinstance(obj, dict):
        raise InputError(f"a JSON {type(obj).__name__} where taalm writes an object", path)
    return obj


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _checked_rows(rows, keys: tuple[str, ...], path: Path, what: str) -> list[dict]:
    """``rows``: a non-empty list of objects whose ``keys`` are finite numbers, accuracies in [0, 1]
    (else InputError naming the file, the row and the key)."""
    if not isinstance(rows, list) or not rows:
        raise InputError(f"{what}: not a non-empty list of rows", path)
    for i, r in enumerate(rows):
        bad = [k for k in keys if not isinstance(r, dict) or not _number(r.get(k))]
        if bad:
            raise InputError(f"{what}, row {i + 1}: {bad[0]!r} is not a number", path)
        odd = [k for k in keys if k in ACCURACY_KEYS and not 0.0 <= r[k] <= 1.0]
        if odd:
            raise InputError(f"{what}, row {i + 1}: {odd[0]!r} = {r[odd[0]]!r} is not an accuracy (in [0, 1])", path)
    return rows


ACCURACY_KEYS = frozenset({"accuracy", "top_acc", "nf_acc", "to_learn_accuracy", "nf_accuracy"})


SUMMARY_KEYS = ("top_acc", "epoch", "nf_acc", "total")
CURVE_KEYS = ("epoch", "to_learn_accuracy", "nf_accuracy")


def _load_stream(path: Path) -> Source:
    """A stream folder: every finished method's ``result.json``, its matrices checked."""
    methods = {}
    for d in sorted(p for p in path.iterdir() if (p / "result.json").is_file()):
        from .stream_checks import stream_result_problem

        r = _read_json(d / "result.json")
        problem = stream_result_problem(r)
        if problem:
            raise InputError(f"not a stream result: {problem}", d / "result.json")
        methods[d.name] = r
    if not methods:
        raise InputError("a stream folder without any finished method (no <method>/result.json)", path)
    return Source(path, "stream", path.name, methods=methods, info=_read_json(path / "stream.json"))


def load_source(path: str | Path) -> Source:
    """A learn run folder, a bench folder or a stream folder, read and checked (InputError naming
    the file otherwise)."""
    path = Path(path)
    if (path / "stream.json").is_file():
        return _load_stream(path)
    if (path / "bench.json").is_file():
        methods = {}
        for d in sorted(p for p in path.iterdir() if (p / "result.json").is_file()):
            r = _read_json(d / "result.json")
            inputs = r.get("inputs") if isinstance(r.get("inputs"), dict) else {}
            n = tuple(int(x.get("n", 0)) if isinstance(x, dict) and _number(x.get("n", 0)) else 0
                      for x in (inputs.get("to_learn"), inputs.get("not_to_forget")))
            curve = _checked_rows(r.get("curve"), CURVE_KEYS, d / "result.json", "curve")
            summary = _checked_rows([r.get("summary")], SUMMARY_KEYS, d / "result.json", "summary")[0]
            wall = r.get("wall_s") if _number(r.get("wall_s")) else None
            methods[d.name] = {"curve": curve, "summary": summary, "n": n, "wall_s": wall}
        if not methods:
            raise InputError("a bench folder without any finished method (no <method>/result.json)", path)
        return Source(path, "bench", path.name, methods=methods, info=_read_json(path / "bench.json"))
    if (path / "summary.json").is_file() and (path / "run.json").is_file():
        summary = _read_json(path / "summary.json")
        if not summary.get("history"):
            raise InputError("this learn run evaluated no probes (its history is empty)", path)
        history = _checked_rows(summary["history"], ("epoch", "accuracy", "nll"), path / "summary.json", "history")
        return Source(path, "learn", f"{path.name} ({summary.get('method', '?')})", history=history,
                      info={k: summary.get(k) for k in ("method", "epochs", "steps", "train_seconds")})
    raise InputError("not a finished taalm learn run (run.json + summary.json), a bench folder (bench.json) "
                     "nor a stream folder (stream.json)", path)


def _pm(p: float | None, n: int) -> str:
    return "—" if p is None else f"{p:.3f} ± {binomial_se(p, n):.3f}"


def learn_table(sources: list[Source]) -> str:
    """Before / after / best probe accuracy (± SE), exact match and kept after (the built-in or
    given kept set, when the run measured it), Total, and NLL of each learn run."""
    lines = ["| run | epochs | accuracy before | accuracy after | exact after | kept after | Total | best (epoch) "
             "| NLL before → after | train time |", "|---|---|---|---|---|---|---|---|---|---|"]
    for s in sources:
        h, n = s.history, s.history[-1].get("n", 0)
        best = max(h, key=lambda r: r["accuracy"])
        t = s.info.get("train_seconds")
        last = h[-1]
        exact = f"{last['exact']:.3f}" if _number(last.get("exact")) else "—"
        kept = last.get("kept", {}).get("accuracy") if isinstance(last.get("kept"), dict) else None
        kept_s, total = ("—", "—") if not _number(kept) else (f"{kept:.3f}", f"{last['accuracy'] + kept:.3f}")
        lines.append(f"| {s.label} | {last['epoch']} | {_pm(h[0]['accuracy'], n)} | {_pm(last['accuracy'], n)} | "
                     f"{exact} | {kept_s} | {total} | {best['accuracy']:.3f} ({best['epoch']}) | "
                     f"{h[0]['nll']:.3f} → {last['nll']:.3f} | {'—' if not _number(t) else f'{t:.0f} s'} |")
    return "\n".join(lines)


def bench_table(sources: list[Source]) -> str:
    """LAMA-ckl's Top Acc / Epoch / NF Acc / Total (± SE) per bench and method."""
    lines = ["| bench | method | Top Acc | Epoch | NF Acc | Total | wall time |", "|---|---|---|---|---|---|---|"]
    for s in sources:
        for name, m in s.methods.items():
            sm, (n_tl, n_nf) = m["summary"], m["n"]
            se_total = (binomial_se(sm["top_acc"], n_tl) ** 2 + binomial_se(sm["nf_acc"], n_nf) ** 2) ** 0.5
            wall = "—" if m["wall_s"] is None else f"{m['wall_s'] / 60:.1f} min"
            lines.append(f"| {s.label} | {name} | {_pm(sm['top_acc'], n_tl)} | {sm['epoch']} | "
                         f"{_pm(sm['nf_acc'], n_nf)} | {sm['total']:.3f} ± {se_total:.3f} | {wall} |")
    return "\n".join(lines)


#: what ``taalm report`` writes at its folder's top (besides run.json)
REPORT_FILES = ("report.md", REPORT_MARKER, "learn.png", "bench.png", "stream_matrix.png", "stream_curves.png")


def write_report(dirs: list[str | Path], out: str | Path) -> str:
    """Read every folder, then write ``report.md``, the PNGs and ``report.json`` into ``out``;
    returns the Markdown. Everything is read and checked before anything is written; ``out``
    follows the run life cycle of the tools (:class:`~taalm.core.run.Run`): a new folder, or one
    an earlier ``taalm report`` wrote (rewritten in place), never another's or one holding a source."""
    import sys

    from ..core.run import Run

    sources = [load_source(d) for d in dirs]
    with Run(out, input_paths=[s.path for s in sources], config={"dirs": [str(s.path) for s in sources]},
             device="cpu", log=lambda m: print(m, file=sys.stderr), progress=False, folder_rule="tool",
             kind="report", owned=REPORT_FILES, legacy=lambda f: (f / REPORT_MARKER).is_file()) as run:
        run.start()
        return _write_report(sources, Path(run.out))


def _write_report(sources: list[Source], out: Path) -> str:
    """:func:`write_report` inside its run life cycle."""
    from ..core.files import atomic_write_json, atomic_write_text

    learn = [s for s in sources if s.kind == "learn"]
    bench = [s for s in sources if s.kind == "bench"]
    parts = ["# taalm report", "", "Accuracies ± binomial standard error sqrt(p(1-p)/n) over the n probes."]
    if learn:
        plot_history({s.label: s.history for s in learn}, out / "learn.png", "Probe accuracy")
        parts += ["", "## Learn runs", "", learn_table(learn), "", "![learn runs](learn.png)"]
    if bench:
        curves = {f"{s.label}/{m}" if len(bench) > 1 else m: v["curve"] for s in bench for m, v in s.methods.items()}
        n = {f"{s.label}/{m}" if len(bench) > 1 else m: v["n"] for s in bench for m, v in s.methods.items()}
        plot_curves(curves, out / "bench.png", "LAMA-ckl: " + ", ".join(s.label for s in bench), n=n)
        parts += ["", "## Benchmarks", "", bench_table(bench), "", "![benchmarks](bench.png)"]
    streams = [s for s in sources if s.kind == "stream"]
    if streams:
        parts += ["", "## Streams", ""] + _stream_parts(streams, out)
    text = "\n".join(parts) + "\n"
    atomic_write_text(out / "report.md", text)
    atomic_write_json(out / REPORT_MARKER, {"sources": [{"path": str(s.path), "kind": s.kind, "label": s.label}
                                                         for s in sources]})
    return text


def _stream_parts(streams: list[Source], out: Path) -> list[str]:
    """The stream tables (one per folder) and the matrix heatmaps and curves of every method."""
    from .plots import plot_stream_curves, plot_stream_matrices
    from .streams import stream_table

    parts = []
    for s in streams:
        parts += [stream_table(s.methods, s.label), ""]
    multi = len(streams) > 1
    results = {f"{s.label}/{m}" if multi else m: r for s in streams for m, r in s.methods.items()}
    first = next(iter(results.values()))
    if all(r["periods"] == first["periods"] for r in results.values()):
        plot_stream_matrices({k: r["sets"][r["primary"]]["accuracy"] for k, r in results.items()},
                             first["periods"], out / "stream_matrix.png", "acc[i][j]: " + ", ".join(s.label for s in streams))
        parts += ["![stream matrices](stream_matrix.png)", ""]
    plot_stream_curves(results, out / "stream_curves.png", ", ".join(s.label for s in streams))
    return parts + ["![stream curves](stream_curves.png)"]


__all__ = ["Source", "load_source", "learn_table", "bench_table", "write_report"]
