"""Tailoring LAMA-ckl to a base model (SPEC 2.5): which facts it knows, which it does not.

The released LAMA-ckl sets were tailored to Llama-2 models; for any other base model they must be
rebuilt. :func:`tailor` scores every unit of ``variant.jsonl``, ``invariant_descriptive.jsonl`` and
``invariant_schematic.jsonl`` in both probe formats (``task_descriptive`` and ``task_schematic``)
with :func:`taalm.evaluation.probes.evaluate_probes` — a unit's score in a format is its probe accuracy,
the fraction of object tokens predicted by argmax, teacher-forced — and writes

==============================  ===========================================================
``to_learn.jsonl``              variant units scoring 0 in the descriptive format **and** 0 in
                                the schematic one (``to_learn_rule="both"``, default), so
                                either probe format measures learning from a clean 0; the rule
                                ``"descriptive"`` / ``"schematic"`` uses one format only
``not_to_forget_descriptive``   invariant_descriptive units scoring 1 on ``task_descriptive``
``not_to_forget_schematic``     invariant_schematic units scoring 1 on ``task_schematic``
``phi_pool.jsonl``              every other unit (any file) scoring < 0.5 on ``task_schematic``
                                (the format φ is meta-trained on), not in To-Learn or either
                                NF set by uuid; once per uuid (first file in the order above)
==============================  ===========================================================

To-Learn, NF (both files) and the φ pool are pairwise disjoint by uuid (precedence To-Learn, NF,
φ pool). The two NF files may share uuids: the released invariant files share 64 identical units,
and a fact known in both formats belongs in both (a run uses one probe format, hence one NF file);
``summary.json`` counts that overlap. Output rows are the original lines, unchanged, so every set
is an ordinary input to ``taalm learn``.

Units whose object does not occur in a probe (or cannot be scored there, e.g. it is the first
token) are skipped in that format and listed in ``summary.json``; such a unit has no score in that
format, so it joins no set needing one. Malformed lines stop with an :class:`InputError` naming the
file and line, before any model is loaded or anything is written.

Scores are cached in ``OUT/scores/<file-stem>.<format>.jsonl`` (uuid, score, nll, a hash of the
probe), rewritten atomically after every chunk, so an interrupted run resumes where it stopped and
a rerun scores nothing. ``scores/meta.json`` holds the model spec and a fingerprint of the
weights (a strided sample of every parameter, dtypes, shapes) and of the tokenizer's vocabulary;
if either differs, the cache is discarded.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..data import jsonl_rows, read_lines, string_field, encode_probe, make_probe
from ..core.errors import InputError, TaalmError
from ..core.run import RunOptions
from ..evaluation.probes import evaluate_probes
from ..core.files import atomic_write_json, atomic_write_text, environment_info, read_jsonl, write_jsonl


SOURCES = ("variant", "invariant_descriptive", "invariant_schematic")
FORMATS = ("task_descriptive", "task_schematic")
SET_NAMES = ("to_learn", "not_to_forget_descriptive", "not_to_forget_schematic", "phi_pool")
TO_LEARN_RULES = ("both", "descriptive", "schematic")
PHI_THRESHOLD = 0.5
CACHE_VERSION = 1
HIST_BINS = 10


RULES = {
    "to_learn": "variant units with score 0 in {formats}",
    "not_to_forget_descriptive": "invariant_descriptive units with score 1 on task_descriptive",
    "not_to_forget_schematic": "invariant_schematic units with score 1 on task_schematic",
    "phi_pool": (f"units of any file with score < {PHI_THRESHOLD} on task_schematic, not in to_learn "
                 "or either not_to_forget set by uuid; once per uuid (first file in the order "
                 "variant, invariant_descriptive, invariant_schematic)"),
    "disjoint": ("to_learn, not_to_forget_* and phi_pool are pairwise disjoint by uuid "
                 "(precedence to_learn > not_to_forget > phi_pool); the two not_to_forget files "
                 "may share uuids (a fact known in both formats)"),
    "score": ("probe accuracy: fraction of object tokens (last occurrence of the object in the "
              "probe) predicted by argmax, one teacher-forced pass; skipped units have no score in "
              "that format and join no set needing it"),
}


@dataclass
class Unit:
    """One LAMA-ckl unit: its parsed row and its original line (written out unchanged)."""

    uuid: str
    source: str  # file stem
    line: int
    row: dict
    raw: str

    @property
    def relation(self) -> str:
        return str(self.row.get("relation_label") or self.row.get("relation_code") or "?")


@dataclass
class TailorResult:
    out_dir: Path
    counts: dict[str, int]  # per set
    to_learn_by_rule: dict[str, int]  # what each To-Learn rule would give
    sets: dict[str, list[str]]  # uuids per set, in output order
    scores: dict[str, dict[str, dict[str, float]]]  # file stem -> format -> uuid -> accuracy
    skipped: list[dict]
    n_scored: int  # probes scored in this call
    n_cached: int  # probes taken from the cache
    wall_s: float
    summary: dict = field(default_factory=dict)


@dataclass
class Scorer:
    """The base model that scores probes for tailoring and pools, and how: ``batch_size`` probes
    per forward pass, ``chunk_size`` probes between cache writes (a kill loses at most one chunk)."""

    model: object
    tokenizer: object
    batch_size: int = 32
    chunk_size: int = 512
    progress: bool = False
    log: Callable[[str], None] = print


#: what ``data tailor`` writes at the top of its folder (``--overwrite`` empties only such a folder)
TAILOR_FILES = ("scores", "scores.png", "summary.json", *(f"{n}.jsonl" for n in SET_NAMES))


@dataclass
class TailorConfig:
    """``taalm data tailor``'s settings (the command's flags set them)."""

    model: str = field(default="smollm2-135m", metadata={"help": "the base model the sets are tailored to (a spec for load_model)"})
    device: str = field(default="auto", metadata={"help": "where it scores: auto (cuda, then mps, then cpu) or a device"})
    dtype: str = field(default="auto", metadata={"help": "the model's dtype while scoring: auto, float32, bfloat16, float16"})
    batch_size: int = field(default=32, metadata={"help": "probes per forward pass"})
    chunk_size: int = field(default=256, metadata={"help": "probes scored between writes of the score cache"})
    to_learn_rule: str = field(default="both", metadata={"help": "a To-Learn unit scores 0 in: both | descriptive | schematic"})

    def _rules(self, r) -> None:
        r.at_least("batch_size", 1)
        r.at_least("chunk_size", 1)
        r.choice("to_learn_rule", TO_LEARN_RULES)


def tailor(data_dir: str | Path, out_dir: str | Path, config: TailorConfig | None = None, *,
           theta0: tuple | None = None, options: RunOptions | None = None) -> TailorResult:
    """Tailor the LAMA-ckl files of ``data_dir`` to a base model; write the sets to ``out_dir``.

    ``theta0``: ``(model, tokenizer)`` already loaded (``config.model`` then only labels them);
    otherwise ``load_model(config.model, config.device, config.dtype)`` loads them. Resumable:
    rerunning into the same folder scores only what the cache lacks. ``out_dir``: a fresh folder or
    one this command made (``overwrite``: emptied first); never one holding ``data_dir``. See the
    module docstring for the rules.
    """
    from ..core.config import check_config, to_dict
    from ..core.run import Run, options_for

    opts = options_for(options, "data tailor", allow=("overwrite",))
    cfg = config or TailorConfig()
    check_config(cfg)  # a ConfigError naming the key
    units = read_lama_dir(data_dir)  # validate before loading anything or writing anything
    settings = {"data": str(data_dir), **to_dict(cfg)}
    settings.pop("device")
    with Run(out_dir, overwrite=opts.overwrite, input_paths=[data_dir], config=settings, device=cfg.device,
             log=opts.log, progress=opts.progress, folder_rule="tool", kind="data tailor", owned=TAILOR_FILES,
             legacy=has_score_cache) as run:
        return _tailor(run, Path(data_dir), units, cfg, theta0)


def _tailor(run, data_dir: Path, units, cfg: TailorConfig, theta0: tuple | None) -> TailorResult:
    """:func:`tailor` inside its run life cycle (checked, locked): score, select, write."""
    t_start, out_dir, log = time.perf_counter(), run.out, run.log
    if theta0 is None:
        from ..models.loading import load_model

        log(f"tailor: loading model '{cfg.model}'")
        theta0 = load_model(cfg.model, cfg.device, cfg.dtype)
    model, tokenizer = theta0
    run.start()
    param = next(model.parameters())
    meta = {"model_spec": str(cfg.model), "fingerprint": model_fingerprint(model, tokenizer),
            "dtype": str(param.dtype).removeprefix("torch."), "cache_version": CACHE_VERSION}
    check_score_cache(out_dir, meta, log)

    scorer = Scorer(model, tokenizer, cfg.batch_size, cfg.chunk_size, run.progress, log)
    scored = _score_all(scorer, units, out_dir)
    scores = scored[0]
    sets, by_rule = build_sets(units, scores, cfg.to_learn_rule)
    for name in SET_NAMES:
        atomic_write_text(out_dir / f"{name}.jsonl", "".join(u.raw + "\n" for u in sets[name]))

    wall = time.perf_counter() - t_start
    counts = {n: len(sets[n]) for n in SET_NAMES}
    summary = _summary(units, sets, by_rule, scored, cfg, {"wall": wall, "meta": meta, "data_dir": data_dir,
                                                           "device": param.device})
    hists = summary["score_histograms"]
    atomic_write_json(out_dir / "summary.json", summary)
    from ..reporting.plots import plot_score_grid

    plot_score_grid(hists, list(SOURCES), list(FORMATS), out_dir / "scores.png", f"LAMA-ckl unit scores, model {cfg.model}")
    log(f"tailor: wrote {', '.join(f'{n}.jsonl ({counts[n]})' for n in SET_NAMES)} to {out_dir} "
        f"in {wall:.1f} s ({scored[3]} probes scored, {scored[4]} cached)")
    return TailorResult(out_dir, counts, by_rule, {n: [u.uuid for u in sets[n]] for n in SET_NAMES},
                        scores, scored[2], scored[3], scored[4], wall, summary)


def _score_all(scorer: Scorer, units, out_dir: Path):
    """Every unit of every file scored in both probe formats (cached, resumable)."""
    scores: dict[str, dict[str, dict[str, float]]] = {}
    nlls: dict[str, dict[str, float]] = {}
    skipped: list[dict] = []
    n_scored = n_cached = 0
    for src in SOURCES:
        for fmt in FORMATS:
            rows, ns, nc = score_units(scorer, units[src], fmt, score_cache_path(out_dir, src, fmt), skipped)
            scores.setdefault(src, {})[fmt] = {u: r["score"] for u, r in rows.items()}
            nlls[f"{src}.{fmt}"] = {u: r["nll"] for u, r in rows.items()}
            n_scored += ns
            n_cached += nc
    return scores, nlls, skipped, n_scored, n_cached


def _summary(units, sets, by_rule, scored: tuple, cfg: TailorConfig, run_info: dict) -> dict:
    """``summary.json``: the rules, the counts per set and relation, score histograms, provenance.
    ``scored``: :func:`_score_all`'s (scores, NLLs, skipped, scored, cached); ``run_info``: wall,
    the score cache's meta, the data folder and the device."""
    scores, nlls, skipped, n_scored, n_cached = scored
    meta, to_learn_rule, model_spec = run_info["meta"], cfg.to_learn_rule, cfg.model
    hists = {f"{src}.{fmt}": score_histogram(list(scores[src][fmt].values())) for src in SOURCES for fmt in FORMATS}
    for key, h in hists.items():
        vals = list(nlls[key].values())
        h["mean_nll"] = sum(vals) / len(vals) if vals else None
    nf_overlap = len({u.uuid for u in sets["not_to_forget_descriptive"]}
                     & {u.uuid for u in sets["not_to_forget_schematic"]})
    counts = {n: len(sets[n]) for n in SET_NAMES}
    fmts = "both formats (task_descriptive and task_schematic)" if to_learn_rule == "both" else f"task_{to_learn_rule}"
    summary = {
        "model_spec": str(model_spec),
        "model_fingerprint": meta["fingerprint"],
        "dtype": meta["dtype"],
        "data_dir": str(Path(run_info["data_dir"]).resolve()),
        "files": {src: len(units[src]) for src in SOURCES},
        "to_learn_rule": to_learn_rule,
        "rules": {**RULES, "to_learn": RULES["to_learn"].format(formats=fmts)},
        "counts": counts,
        "to_learn_by_rule": by_rule,
        "nf_overlap": nf_overlap,
        "by_relation": {n: dict(Counter(u.relation for u in sets[n]).most_common()) for n in SET_NAMES},
        "score_histograms": hists,
        "skipped": {"count": len(skipped), "probes": skipped},
        "probes_scored_this_run": n_scored,
        "probes_from_cache": n_cached,
        "wall_s": round(run_info["wall"], 2),
        "environment": environment_info(run_info["device"]),
    }
    return summary


def read_units(path: str | Path) -> list[Unit]:
    """LAMA-ckl units of one JSONL file; bad lines raise :class:`InputError` (file, line, field)."""
    path = Path(path)
    lines = read_lines(path)
    units: list[Unit] = []
    first_line: dict[str, int] = {}
    for line, row in jsonl_rows(path):
        uuid = row.get("uuid")
        if uuid is None or (isinstance(uuid, str) and not uuid.strip()):
            raise InputError("missing field (every LAMA-ckl unit needs a uuid)", path, line, "uuid")
        if not isinstance(uuid, (str, int)):
            raise InputError(f"must be a string, got {type(uuid).__name__}", path, line, "uuid")
        uuid = str(uuid)
        string_field(row, "object", path, line)
        for name in FORMATS:
            string_field(row, name, path, line)
        if uuid in first_line:
            raise InputError(f"duplicate uuid {uuid!r} (first on line {first_line[uuid]})", path, line, "uuid")
        first_line[uuid] = line
        units.append(Unit(uuid, path.stem, line, row, lines[line - 1]))
    if not units:
        raise InputError("no units found", path)
    return units


def read_lama_dir(data_dir: str | Path) -> dict[str, list[Unit]]:
    """The three LAMA-ckl files of ``data_dir``, validated."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise InputError("LAMA-ckl data folder not found", data_dir)
    missing = [f"{s}.jsonl" for s in SOURCES if not (data_dir / f"{s}.jsonl").is_file()]
    if missing:
        raise InputError(f"missing {', '.join(missing)} (expected {', '.join(s + '.jsonl' for s in SOURCES)})",
                         data_dir)
    return {s: read_units(data_dir / f"{s}.jsonl") for s in SOURCES}


def model_fingerprint(model, tokenizer, sample: int = 1024) -> str:
    """A short hash of the weights (name, shape, dtype and a strided sample of every parameter)
    and of the tokenizer's vocabulary: cheap, and changes whenever the model does."""
    import torch

    h = hashlib.sha256(type(model).__name__.encode())
    with torch.no_grad():
        for name, p in model.named_parameters():
            flat = p.detach().reshape(-1)
            step = max(1, flat.numel() // sample)
            h.update(f"{name}|{tuple(p.shape)}|{p.dtype}".encode())
            h.update(flat[::step][:sample].to("cpu", torch.float64).numpy().tobytes())
    if tokenizer is not None:
        vocab = sorted(tokenizer.get_vocab().items())
        h.update(json.dumps(vocab, ensure_ascii=False).encode())
    return h.hexdigest()[:16]


def score_cache_path(out_dir: Path, source: str, fmt: str) -> Path:
    return out_dir / "scores" / f"{source}.{fmt}.jsonl"


def check_score_cache(out_dir: Path, meta: dict, log: Callable) -> None:
    """Discard cached scores made by another model (spec or fingerprint differ)."""
    meta_path = out_dir / "scores" / "meta.json"
    try:
        old = json.loads(meta_path.read_text()) if meta_path.is_file() else None
        if old is not None and not isinstance(old, dict):
            raise ValueError(f"a {type(old).__name__}, not an object")
    except (ValueError, UnicodeDecodeError) as e:
        raise TaalmError(f"{meta_path}: damaged ({str(e)[:80]}); rerun with --overwrite to score everything "
                         f"again") from None
    files = sorted((out_dir / "scores").glob("*.jsonl")) if (out_dir / "scores").is_dir() else []
    if old != meta:
        if files and old is None:  # not a cache taalm wrote: never delete it
            raise TaalmError(f"{out_dir / 'scores'}: holds .jsonl files but no meta.json, so taalm did not "
                             f"write them; choose another --out")
        if files:
            why = ", ".join(f"{k} {old.get(k)!r} -> {meta[k]!r}" for k in meta if old.get(k) != meta[k])
            log(f"scores: discarding {len(files)} cached score files ({why})")
        for f in files:  # delete first, then write the new meta: a crash in between is safe
            f.unlink()
        atomic_write_json(meta_path, meta)


def score_units(scorer: Scorer, units: list[Unit], fmt: str, cache: Path, skipped: list[dict]) -> tuple[dict, int, int]:
    """Scores (uuid -> row) of ``units`` in format ``fmt``, from the cache or the model; probes that
    cannot be scored are appended to ``skipped``. Returns (rows, newly scored, cached)."""
    model, tokenizer, batch_size, chunk_size = scorer.model, scorer.tokenizer, scorer.batch_size, scorer.chunk_size
    progress, log = scorer.progress, scorer.log
    cached = {}
    for r in read_jsonl(cache) if cache.is_file() else []:
        cached[r["uuid"]] = r
    rows: dict[str, dict] = {}
    todo = []  # (uuid, probe, encoded, hash)
    for u in units:
        obj, text = u.row["object"], u.row[fmt]
        where = f"{u.source}.jsonl:{u.line}"
        if obj not in text:
            skipped.append({"uuid": u.uuid, "file": u.source, "line": u.line, "format": fmt,
                            "reason": "object does not occur in the probe"})
            continue
        ph = _probe_hash(text, obj)
        c = cached.get(u.uuid)
        if c is not None and c.get("probe") == ph:
            rows[u.uuid] = c
            continue
        probe = make_probe(text, obj, u.uuid, where)
        try:
            enc = encode_probe(tokenizer, probe)
        except InputError as e:
            skipped.append({"uuid": u.uuid, "file": u.source, "line": u.line, "format": fmt,
                            "reason": e.reason})
            continue
        todo.append((u.uuid, probe, enc, ph))
    n_cached = len(rows)
    label = f"{units[0].source} / {fmt}" if units else fmt
    if todo:
        log(f"scores: {label}: scoring {len(todo)} probes ({n_cached} cached)")
    t0 = time.perf_counter()
    for start in range(0, len(todo), chunk_size):
        chunk = todo[start:start + chunk_size]
        res = evaluate_probes(model, tokenizer, [c[1] for c in chunk], batch_size,
                              encoded=[c[2] for c in chunk], progress=label if progress else None)
        for (uuid, _, _, ph), s in zip(chunk, res.per_probe):
            rows[uuid] = {"uuid": uuid, "score": s.accuracy, "nll": s.nll,
                          "n_answer_tokens": s.n_answer_tokens, "probe": ph}
        # rewrite the whole cache (small) atomically: an interruption loses one chunk at most
        write_jsonl(cache, [rows[u.uuid] for u in units if u.uuid in rows])
        done = min(start + chunk_size, len(todo))
        log(f"scores: {label}: {done}/{len(todo)} scored ({time.perf_counter() - t0:.1f} s)")
    return rows, len(todo), n_cached


def _probe_hash(text: str, answer: str) -> str:
    return hashlib.sha256(f"{text}\0{answer}".encode()).hexdigest()[:12]


def build_sets(units: dict[str, list[Unit]], scores: dict[str, dict[str, dict[str, float]]],
               to_learn_rule: str = "both") -> tuple[dict[str, list[Unit]], dict[str, int]]:
    """Apply the rules of the module docstring. Returns (sets, To-Learn count per rule)."""
    if to_learn_rule not in TO_LEARN_RULES:
        raise TaalmError(f"unknown To-Learn rule '{to_learn_rule}' (use {', '.join(TO_LEARN_RULES)})")

    def score(u: Unit, fmt: str):
        return scores.get(u.source, {}).get(fmt, {}).get(u.uuid)

    def zero_in(u: Unit, rule: str) -> bool:
        fmts = FORMATS if rule == "both" else (f"task_{rule}",)
        return all(score(u, f) == 0.0 for f in fmts)

    by_rule = {r: sum(zero_in(u, r) for u in units["variant"]) for r in TO_LEARN_RULES}
    sets: dict[str, list[Unit]] = {n: [] for n in SET_NAMES}
    sets["to_learn"] = [u for u in units["variant"] if zero_in(u, to_learn_rule)]
    taken = {u.uuid for u in sets["to_learn"]}
    for name, src, fmt in (("not_to_forget_descriptive", "invariant_descriptive", "task_descriptive"),
                           ("not_to_forget_schematic", "invariant_schematic", "task_schematic")):
        sets[name] = [u for u in units[src] if score(u, fmt) == 1.0 and u.uuid not in taken]
    taken |= {u.uuid for n in ("not_to_forget_descriptive", "not_to_forget_schematic") for u in sets[n]}
    for src in SOURCES:
        for u in units[src]:
            s = score(u, "task_schematic")
            if u.uuid not in taken and s is not None and s < PHI_THRESHOLD:
                sets["phi_pool"].append(u)
                taken.add(u.uuid)
    return sets, by_rule


def score_histogram(values: list[float]) -> dict:
    counts = [0] * HIST_BINS
    for v in values:
        counts[min(int(v * HIST_BINS), HIST_BINS - 1)] += 1
    n = len(values)
    return {"n": n, "mean": sum(values) / n if n else None,
            "exact_0": sum(v == 0.0 for v in values), "exact_1": sum(v == 1.0 for v in values),
            f"below_{PHI_THRESHOLD}": sum(v < PHI_THRESHOLD for v in values),
            "bin_edges": [i / HIST_BINS for i in range(HIST_BINS + 1)], "bin_counts": counts}


def format_counts(result: TailorResult) -> str:
    """The counts table the CLI prints."""
    s = result.summary
    lines = [f"{'set':<28}{'units':>7}"]
    for name in SET_NAMES:
        lines.append(f"{name:<28}{result.counts[name]:>7}")
    rules = ", ".join(f"{r}: {n}" for r, n in result.to_learn_by_rule.items())
    lines.append(f"(to_learn rule '{s.get('to_learn_rule', 'both')}'; score 0 in {rules})")
    lines.append(f"(not_to_forget files share {s.get('nf_overlap', 0)} uuids; "
                 f"{len(result.skipped)} probes skipped)")
    lines.append("")
    lines.append(f"{'file / format':<40}{'n':>5}{'mean':>7}{'=0':>6}{'=1':>6}{'<0.5':>6}")
    for key, h in s.get("score_histograms", {}).items():
        mean = f"{h['mean']:.3f}" if h["mean"] is not None else "-"
        lines.append(f"{key:<40}{h['n']:>5}{mean:>7}{h['exact_0']:>6}{h['exact_1']:>6}"
                     f"{h[f'below_{PHI_THRESHOLD}']:>6}")
    return "\n".join(lines)


def has_score_cache(folder: Path) -> bool:
    """A folder of ``data tailor`` / ``data pool`` made before their ``run.json``: its score cache."""
    try:
        return "cache_version" in json.loads((Path(folder) / "scores" / "meta.json").read_text())
    except (OSError, ValueError, TypeError):
        return False
