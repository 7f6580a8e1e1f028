"""A φ-training pool from LAMA T-REx facts (the paper's pool, rebuilt for any base model).

Train-Attention is meta-learned on (document, task) pairs of facts the base model does not know.
The paper drew them from LAMA's T-REx facts of both time-variant and time-invariant relations,
excluding every LAMA-ckl unit. :func:`build_pool` does the same from the LAMA release's original
per-relation files (``P19.jsonl``…: ``uuid``, ``sub_label``, ``obj_label``, ``predicate_id``,
``evidences`` = ``[{masked_sentence, obj_surface, …}]``):

1. **Evidence.** Each masked sentence gets the object back. As in the released LAMA-ckl units
   (checked on all 1,400 of them) the ``[MASK]`` is replaced by ``obj_label``, the string that the
   probes score, so the answer is in the document verbatim. A sentence qualifies when it is
   longer than ``min_evidence_chars`` (200, the paper's rule) and contains both ``sub_label`` and
   ``obj_label``. When several qualify, the **shortest** is taken (ties: the first in file
   order): the shortest still holds the fact, and short documents make meta-training cheaper.
2. **Probes.** ``task_descriptive`` fills the relation's template (``[X]`` = subject, ``[Y]`` =
   object); ``task_schematic`` is "Guess the object. \\n  subject is S , relation is R , object is O"
   with R the relation's label — exactly the form of LAMA-ckl units.
3. **Exclusion** of every uuid found in the LAMA-ckl files given (To-Learn candidates and both NF
   files), so the pool never overlaps the benchmark.
4. **Scoring** of both probe formats with the base model (the tailoring scorer: batched, cached
   per file in ``OUT/scores/``, resumable); facts scoring < 0.5 in **both** formats are kept. An
   optional cap per relation keeps the first N kept facts of each relation in file order.
5. **Split.** A validation set, disjoint from the training set by uuid **and by subject**: whole
   subjects are drawn (seeded) until the validation size is reached, so validation measures
   transfer to unseen facts about unseen entities.

Outputs (``OUT/``): ``train.jsonl`` and ``val.jsonl`` (ordinary LAMA-ckl units, usable by
``taalm train-attention`` and ``taalm learn``), ``summary.json`` (counts per relation, variant /
invariant, score histograms, rules, wall time) and ``scores.png``.

Relations: LAMA's relations file has ``relation``, ``template`` and ``label`` per row. Without one,
the built-in table below (LAMA's 41 T-REx relations, templates and labels as they appear in the
LAMA-ckl units) is used. Time-variant relations follow LAMA-ckl's split (:data:`VARIANT`).

Data licence: LAMA (and so every pool and every φ trained on it) is CC BY-NC 4.0.
"""

from __future__ import annotations

import random
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from ..data import jsonl_rows, string_field
from ..core.errors import InputError, TaalmError
from ..core.run import RunOptions
from ..core.files import atomic_write_json, atomic_write_text, environment_info


# LAMA's T-REx relations: code -> (template, label), as LAMA-ckl units spell them.
LAMA_RELATIONS: dict[str, tuple[str, str]] = {
    "P1001": ("[X] is a legal term in [Y] .", "applies to jurisdiction"),
    "P101": ("[X] works in the field of [Y] .", "field of work"),
    "P103": ("The native language of [X] is [Y] .", "native language"),
    "P106": ("[X] is a [Y] by profession .", "occupation"),
    "P108": ("[X] works for [Y] .", "employer"),
    "P127": ("[X] is owned by [Y] .", "owned by"),
    "P1303": ("[X] plays [Y] .", "instrument"),
    "P131": ("[X] is located in [Y] .", "located in the administrative territorial entity"),
    "P136": ("[X] plays [Y] music .", "genre"),
    "P1376": ("[X] is the capital of [Y] .", "capital of"),
    "P138": ("[X] is named after [Y] .", "named after"),
    "P140": ("[X] is affiliated with the [Y] religion .", "religion"),
    "P1412": ("[X] used to communicate in [Y] .", "languages spoken, written or signed"),
    "P159": ("The headquarter of [X] is in [Y] .", "headquarters location"),
    "P17": ("[X] is located in [Y] .", "country"),
    "P176": ("[X] is produced by [Y] .", "manufacturer"),
    "P178": ("[X] is developed by [Y] .", "developer"),
    "P19": ("[X] was born in [Y] .", "place of birth"),
    "P190": ("[X] and [Y] are twin cities .", "twinned administrative body"),
    "P20": ("[X] died in [Y] .", "place of death"),
    "P264": ("[X] is represented by music label [Y] .", "record label"),
    "P27": ("[X] is [Y] citizen .", "country of citizenship"),
    "P276": ("[X] is located in [Y] .", "location"),
    "P279": ("[X] is a subclass of [Y] .", "subclass of"),
    "P30": ("[X] is located in [Y] .", "continent"),
    "P31": ("[X] is a [Y] .", "instance of"),
    "P36": ("The capital of [X] is [Y] .", "capital"),
    "P361": ("[X] is part of [Y] .", "part of"),
    "P364": ("The original language of [X] is [Y] .", "original language of film or TV show"),
    "P37": ("The official language of [X] is [Y] .", "official language"),
    "P39": ("[X] has the position of [Y] .", "position held"),
    "P407": ("[X] was written in [Y] .", "language of work or name"),
    "P413": ("[X] plays in [Y] position .", "position played on team / speciality"),
    "P449": ("[X] was originally aired on [Y] .", "original network"),
    "P463": ("[X] is a member of [Y] .", "member of"),
    "P47": ("[X] shares border with [Y] .", "shares border with"),
    "P495": ("[X] was created in [Y] .", "country of origin"),
    "P527": ("[X] consists of [Y] .", "has part"),
    "P530": ("[X] maintains diplomatic relations with [Y] .", "diplomatic relation"),
    "P740": ("[X] was founded in [Y] .", "location of formation"),
    "P937": ("[X] used to work in [Y] .", "work location"),
}
# LAMA-ckl's time-variant relations (the rest are time-invariant).
VARIANT = frozenset({"P101", "P106", "P108", "P127", "P1303", "P136", "P159", "P264", "P31", "P39",
                     "P413", "P463", "P530"})
SCHEMATIC = "Guess the object. \n  subject is {s} , relation is {r} , object is {o}"
MIN_EVIDENCE_CHARS = 200
THRESHOLD = 0.5
FORMATS = ("task_descriptive", "task_schematic")


@dataclass(frozen=True)
class Relation:
    code: str
    template: str  # with [X] and [Y]
    label: str

    @property
    def variant(self) -> bool:
        return self.code in VARIANT


@dataclass
class Fact:
    uuid: str
    subject: str
    object: str
    relation: str  # predicate id
    evidences: list[str]  # masked sentences
    source: str = ""  # "file:line"


@dataclass
class PoolResult:
    out_dir: Path
    counts: dict  # funnel: facts, excluded, no_evidence, scored, kept, capped, train, val
    summary: dict
    wall_s: float


#: what ``data pool`` writes at the top of its folder (``--overwrite`` empties only such a folder)
POOL_FILES = ("scores", "scores.png", "summary.json", "train.jsonl", "val.jsonl", "val_invented.jsonl")


@dataclass
class PoolConfig:
    """``taalm data pool``'s settings (the command's flags set them)."""

    model: str = field(default="smollm2-135m", metadata={"help": "the base model that scores the facts (a spec for load_model)"})
    device: str = field(default="auto", metadata={"help": "where it scores: auto (cuda, then mps, then cpu) or a device"})
    dtype: str = field(default="auto", metadata={"help": "the model's dtype while scoring"})
    exclude: list[str] = field(default_factory=list, metadata={"help": "LAMA-ckl files or folders whose uuids never enter the pool"})
    relations: str = field(default="", metadata={"help": "LAMA's relations file (default: the built-in table)"})
    n_val: int = field(default=256, metadata={"help": "the validation split's minimum size (whole subjects)"})
    per_relation_cap: int = field(default=0, metadata={"help": "at most this many kept facts per relation (0 = no cap)"})
    min_evidence_chars: int = field(default=MIN_EVIDENCE_CHARS, metadata={"help": "an evidence sentence is longer than this"})
    seed: int = field(default=0, metadata={"help": "seed of the split and of the invented copies"})
    batch_size: int = field(default=32, metadata={"help": "probes per forward pass"})
    chunk_size: int = field(default=512, metadata={"help": "probes scored between writes of the score cache"})
    invent: float = field(default=0.0, metadata={"help": "invented-entity copies of this fraction of the training facts (0 = none)"})

    def _rules(self, r) -> None:
        r.at_least("n_val", 0)
        r.at_least("per_relation_cap", 0)
        r.at_least("min_evidence_chars", 0)
        r.at_least("batch_size", 1)
        r.at_least("chunk_size", 1)
        r.finite("invent", 0.0, 1.0)


INVENT_ROUNDS = 3


def build_pool(trex: str | Path | list, out_dir: str | Path, config: PoolConfig | None = None, *,
               theta0: tuple | None = None, options: RunOptions | None = None) -> PoolResult:
    """Build a φ-training pool from LAMA T-REx files; see the module docstring for every rule and
    :class:`PoolConfig` for the settings. ``theta0``: ``(model, tokenizer)`` already loaded
    (``config.model`` then only labels them). Resumable through the score cache: rerun into the
    same folder. ``out_dir``: a fresh folder or one this command made (``overwrite``: emptied
    first); never one holding an input.
    """
    from ..core.config import check_config, to_dict
    from ..core.run import Run, options_for
    from .tailor import has_score_cache

    opts = options_for(options, "data pool", allow=("overwrite",))
    cfg = config or PoolConfig()
    check_config(cfg)  # a ConfigError naming the key
    relations = cfg.relations or None
    rels = read_relations(relations)
    paths = trex_files(trex)
    excluded = lama_ckl_uuids(list(cfg.exclude))
    by_rel, funnel = _candidates(paths, rels, excluded, cfg.min_evidence_chars)  # all input validated here
    if not by_rel:
        raise TaalmError("no fact passes the evidence rule: nothing to score")
    settings = {k: v for k, v in to_dict(cfg).items() if k not in ("device", "batch_size", "chunk_size",
                                                                    "exclude", "relations")}
    with Run(out_dir, overwrite=opts.overwrite, input_paths=[*paths, *cfg.exclude, relations], config=settings,
             device=cfg.device, log=opts.log, progress=opts.progress, folder_rule="tool", kind="data pool", owned=POOL_FILES,
             legacy=has_score_cache) as run:
        return _build_pool(run, cfg, theta0, dict(paths=paths, rels=rels, excluded=excluded, funnel=funnel,
                                                  by_rel=by_rel))


def _candidates(paths: list[Path], relations: dict[str, Relation], exclude: set[str],
                min_chars: int) -> tuple[dict[str, list], Counter]:
    """Per relation code: [(Unit for the scorer, n qualifying)] of facts that pass the evidence rule."""
    from .tailor import Unit

    funnel: Counter = Counter()
    by_rel: dict[str, list] = defaultdict(list)
    seen: set[str] = set()
    facts_by_file = [(p, read_trex(p)) for p in paths]  # validate every file before any work
    for p, facts in facts_by_file:
        for f in facts:
            if f.relation not in relations:
                raise InputError(f"relation {f.relation!r} is not in the relations table "
                                 f"(known: {', '.join(sorted(relations))})", p, int(f.source.rsplit(':', 1)[1]),
                                 "predicate_id")
    for p, facts in facts_by_file:
        for f in facts:
            funnel["facts"] += 1
            if f.uuid in seen:
                funnel["duplicate_uuid"] += 1
                continue
            seen.add(f.uuid)
            if f.uuid in exclude:
                funnel["excluded_lama_ckl"] += 1
                continue
            chosen = choose_evidence(f, min_chars)
            if chosen is None:
                funnel["no_qualifying_evidence"] += 1
                continue
            row = make_unit(f, relations[f.relation], chosen[0], chosen[1])
            line = int(f.source.rsplit(":", 1)[1])
            by_rel[f.relation].append((Unit(f.uuid, f.relation, line, row, ""), chosen[2]))
            funnel["candidates"] += 1
            funnel["several_qualifying"] += chosen[2] > 1
    return by_rel, funnel


def _build_pool(run, cfg: PoolConfig, theta0: tuple | None, a: dict) -> PoolResult:
    """:func:`build_pool` inside its run life cycle (checked, locked): score, keep, split, invent,
    write. ``a``: the validated inputs (paths, relations, excluded uuids, funnel, candidates)."""
    t0, out_dir, log = time.perf_counter(), run.out, run.log
    paths, rels, excluded, funnel, by_rel = a["paths"], a["rels"], a["excluded"], a["funnel"], a["by_rel"]
    model_spec, seed, n_val = cfg.model, cfg.seed, cfg.n_val
    if theta0 is None:
        from ..models.loading import load_model

        log(f"pool: loading model '{model_spec}'")
        theta0 = load_model(model_spec, cfg.device, cfg.dtype)
    model, tokenizer = theta0
    run.start()
    from .tailor import Scorer, check_score_cache, model_fingerprint

    param = next(model.parameters())
    meta = {"model_spec": str(model_spec), "fingerprint": model_fingerprint(model, tokenizer),
            "dtype": str(param.dtype).removeprefix("torch."), "cache_version": 1}
    check_score_cache(out_dir, meta, log)

    scorer = Scorer(model, tokenizer, cfg.batch_size, cfg.chunk_size, run.progress, log)
    kept, scores, per_rel, skipped = _score_and_keep(scorer, by_rel, out_dir, cfg.per_relation_cap)
    train, val = split_by_subject(kept, n_val, seed)
    invented = None
    if cfg.invent > 0:
        invented = add_invented(scorer, (train, val), cfg.invent, out_dir, seed,
                                avoid={x for u in kept for x in (u["subject"], u["object"])})
    files = {"train": train + (invented["train"] if invented else []), "val": val}
    if invented:
        files["val_invented"] = invented["val"]
    for name, rows in files.items():
        atomic_write_text(out_dir / f"{name}.jsonl", "".join(_dumps(r) + "\n" for r in rows))
    wall = time.perf_counter() - t0
    summary = _summary(dict(paths=paths, rels=rels, excluded=excluded, funnel=funnel, per_rel=per_rel,
                            kept=kept, train=train, val=val, scores=scores, skipped=skipped, meta=meta,
                            model_spec=model_spec, min_chars=cfg.min_evidence_chars, cap=cfg.per_relation_cap,
                            n_val=n_val, seed=seed, wall=wall, device=param.device))
    if invented:
        summary["invented"] = invented["summary"]
    atomic_write_json(out_dir / "summary.json", summary)
    from ..reporting.plots import plot_score_histograms

    plot_score_histograms(scores, out_dir / "scores.png", f"T-REx pool candidates, model {model_spec}", THRESHOLD)
    log(f"pool: {len(kept)} facts kept of {funnel['candidates']} candidates "
        f"({len(train)} train, {len(val)} val) in {wall:.1f} s -> {out_dir}")
    if invented:
        c = invented["summary"]["counts"]
        log(f"pool: invented copies: {c['train']} train, {c['val']} val ({c['rejected_by_score']} rejected "
            f"by the base model's score, in {invented['summary']['wall_s']:.1f} s)")
    return PoolResult(out_dir, summary["counts"], summary, wall)


def _score_and_keep(scorer, by_rel: dict, out_dir: Path, cap: int) -> tuple[list[dict], dict, dict, list[dict]]:
    """Score every candidate in both formats (cached) and keep those < THRESHOLD in both, at most
    ``cap`` per relation. Returns (kept units, scores per format, counts per relation, skipped)."""
    from .tailor import FORMATS as _F, score_cache_path, score_units

    skipped: list[dict] = []
    kept: list[dict] = []
    scores: dict[str, list[float]] = {f: [] for f in _F}
    per_rel: dict[str, Counter] = defaultdict(Counter)
    for code in sorted(by_rel):
        units = [u for u, _ in by_rel[code]]
        got = {fmt: score_units(scorer, units, fmt, score_cache_path(out_dir, code, fmt), skipped)[0] for fmt in _F}
        for u in units:
            s = [got[fmt].get(u.uuid, {}).get("score") for fmt in _F]
            per_rel[code]["candidates"] += 1
            for fmt, v in zip(_F, s):
                if v is not None:
                    scores[fmt].append(v)
            if None in s or max(s) >= THRESHOLD:
                continue
            if cap and per_rel[code]["kept"] >= cap:
                per_rel[code]["capped"] += 1
                continue
            per_rel[code]["kept"] += 1
            kept.append(u.row)
    return kept, scores, per_rel, skipped


def _dumps(row: dict) -> str:
    import json

    return json.dumps(row, ensure_ascii=False)


def _summary(d: dict) -> dict:
    """summary.json: the funnel, per-relation counts, variant/invariant, histograms, rules."""
    from .tailor import score_histogram

    kept, train, val = d["kept"], d["train"], d["val"]
    lengths = sorted(len(u["evidence"]) for u in kept) or [0]
    counts = {**dict(d["funnel"]), "skipped_probes": len(d["skipped"]), "kept": len(kept),
              "capped": sum(c["capped"] for c in d["per_rel"].values()), "train": len(train), "val": len(val),
              "variant_kept": sum(not u["invariant"] for u in kept),
              "invariant_kept": sum(bool(u["invariant"]) for u in kept)}
    return {
        "model_spec": str(d["model_spec"]), "model_fingerprint": d["meta"]["fingerprint"],
        "dtype": d["meta"]["dtype"], "trex_files": [str(p.resolve()) for p in d["paths"]],
        "excluded_uuids": len(d["excluded"]), "counts": counts,
        "by_relation": {c: {**dict(v), "variant": c in VARIANT, "label": d["rels"][c].label,
                            "train": sum(u["relation_code"] == c for u in train),
                            "val": sum(u["relation_code"] == c for u in val)}
                        for c, v in sorted(d["per_rel"].items())},
        "val_subjects_in_train": len({u["subject"] for u in val} & {u["subject"] for u in train}),
        "evidence_chars": {"min": lengths[0], "median": lengths[len(lengths) // 2], "max": lengths[-1],
                           "mean": sum(lengths) / len(lengths)},
        "score_histograms": {f: score_histogram(v) for f, v in d["scores"].items()},
        "rules": {"evidence": f"[MASK] -> obj_label; longer than {d['min_chars']} characters; contains "
                              "sub_label and obj_label; the shortest qualifying sentence (ties: first)",
                  "keep": f"probe score < {THRESHOLD} in both task_descriptive and task_schematic",
                  "exclude": "every uuid of the LAMA-ckl files given",
                  "cap": d["cap"] or None,
                  "split": f"whole subjects, seeded shuffle (seed {d['seed']}), until val ≥ {d['n_val']} units"},
        "skipped": d["skipped"][:50],
        "licence": "LAMA data: CC BY-NC 4.0",
        "wall_s": round(d["wall"], 2),
        "environment": environment_info(d["device"]),
    }


def format_counts(result: PoolResult) -> str:
    """The funnel the CLI prints: facts read, excluded, kept, train / val (and invented copies)."""
    c = result.counts
    lines = [f"facts {c.get('facts', 0)}, excluded (LAMA-ckl) {c.get('excluded_lama_ckl', 0)}, "
             f"no qualifying evidence {c.get('no_qualifying_evidence', 0)}, candidates {c.get('candidates', 0)}, "
             f"kept {c['kept']} (variant {c['variant_kept']}, invariant {c['invariant_kept']}), "
             f"train {c['train']}, val {c['val']}; {result.wall_s:.0f} s"]
    if "invented" in result.summary:
        inv = result.summary["invented"]
        lines.append(f"invented copies (in train.jsonl / val_invented.jsonl): train {inv['counts']['train']}, "
                     f"val {inv['counts']['val']}, rejected by the base model's score "
                     f"{inv['counts']['rejected_by_score']}; {inv['wall_s']:.0f} s")
    return "\n".join(lines)


def read_relations(path: str | Path | None = None) -> dict[str, Relation]:
    """Relations by code: LAMA's relations file (``relation``, ``template``, ``label`` per row)
    or, with no path, the built-in table :data:`LAMA_RELATIONS`."""
    if path is None:
        return {c: Relation(c, t, lab) for c, (t, lab) in LAMA_RELATIONS.items()}
    path = Path(path)
    out: dict[str, Relation] = {}
    for line, row in jsonl_rows(path):
        code = string_field(row, "relation", path, line)
        template = string_field(row, "template", path, line)
        if "label" not in row:
            hint = (" (this file looks like AutoPrompt trigger templates, not LAMA's relations list; "
                    "omit --relations to use the built-in LAMA templates and labels)"
                    if len(row) == 2 else "")
            raise InputError(f"missing field: a relation needs its label for the schematic probe{hint}",
                             path, line, "label")
        label = string_field(row, "label", path, line)
        if template.count("[X]") != 1 or template.count("[Y]") != 1:
            raise InputError(f"template must hold [X] and [Y] once each, got {template!r}", path, line, "template")
        out[code] = Relation(code, template, label)
    return out


def read_trex(path: str | Path) -> list[Fact]:
    """Facts of one LAMA T-REx file; bad lines raise :class:`InputError` (file, line, field)."""
    path = Path(path)
    facts = []
    for line, row in jsonl_rows(path):
        uuid = string_field(row, "uuid", path, line)
        sub = string_field(row, "sub_label", path, line)
        obj = string_field(row, "obj_label", path, line)
        rel = string_field(row, "predicate_id", path, line)
        ev = row.get("evidences")
        if not isinstance(ev, list):
            raise InputError(f"must be a list of evidence objects, got {type(ev).__name__}", path, line, "evidences")
        sentences = []
        for i, e in enumerate(ev):
            if not isinstance(e, dict) or not isinstance(e.get("masked_sentence"), str):
                raise InputError(f"evidence {i} needs a string 'masked_sentence'", path, line, "evidences")
            sentences.append(e["masked_sentence"])
        facts.append(Fact(uuid, sub, obj, rel, sentences, f"{path.name}:{line}"))
    return facts


def trex_files(trex: str | Path | list) -> list[Path]:
    """The T-REx files: a folder's ``P*.jsonl`` files (sorted), or the files given."""
    if isinstance(trex, (list, tuple)):
        paths = [Path(p) for p in trex]
    else:
        trex = Path(trex)
        if not trex.exists():
            raise InputError("T-REx path not found", trex)
        paths = sorted(trex.glob("P*.jsonl"), key=lambda p: p.name) if trex.is_dir() else [trex]
    if not paths:
        raise InputError("no LAMA T-REx files (P<id>.jsonl) found", trex)
    for p in paths:
        if not p.is_file():
            raise InputError("file not found", p)
    return paths


def lama_ckl_uuids(paths: list[str | Path]) -> set[str]:
    """Every uuid of the LAMA-ckl files (or folders of them) to exclude."""
    out: set[str] = set()
    for p in paths:
        p = Path(p)
        files = sorted(p.glob("*.jsonl")) if p.is_dir() else [p]
        if not files:
            raise InputError("no .jsonl files to exclude found", p)
        for f in files:
            for line, row in jsonl_rows(f):
                out.add(str(string_field(row, "uuid", f, line)))
    return out


def choose_evidence(fact: Fact, min_chars: int = MIN_EVIDENCE_CHARS) -> tuple[str, str, int] | None:
    """(evidence, masked sentence, number qualifying) for the rule of the module docstring, or None."""
    best = None
    seen = set()
    for masked in fact.evidences:
        if masked in seen or "[MASK]" not in masked:
            continue
        seen.add(masked)
        text = masked.replace("[MASK]", fact.object)
        if len(text) > min_chars and fact.subject in text and fact.object in text:
            if best is None or len(text) < len(best[0]):
                best = (text, masked)
    if best is None:
        return None
    n = sum(1 for m in seen if len(m.replace("[MASK]", fact.object)) > min_chars
            and fact.subject in m.replace("[MASK]", fact.object))
    return best[0], best[1], n


def make_unit(fact: Fact, relation: Relation, evidence: str, masked: str) -> dict:
    """A LAMA-ckl unit (same fields and conventions as the released files)."""
    return {
        "relation_code": relation.code, "uuid": fact.uuid,
        "task_descriptive": relation.template.replace("[X]", fact.subject).replace("[Y]", fact.object),
        "task_schematic": SCHEMATIC.format(s=fact.subject, r=relation.label, o=fact.object),
        "subject": fact.subject, "relation_label": relation.label, "object": fact.object,
        "masked_evidence": masked, "evidence": evidence,
        "position": masked.index("[MASK]") / len(masked), "evidence_length": len(evidence),
        "invariant": not relation.variant,
    }


def split_by_subject(units: list[dict], n_val: int, seed: int) -> tuple[list[dict], list[dict]]:
    """(train, val): whole subjects go to validation (seeded order) until it holds ≥ n_val units."""
    by_subject: dict[str, list[dict]] = defaultdict(list)
    for u in units:
        by_subject[u["subject"]].append(u)
    subjects = sorted(by_subject)
    random.Random(seed).shuffle(subjects)
    val_subjects: set[str] = set()
    n = 0
    for s in subjects:
        if n >= n_val:
            break
        val_subjects.add(s)
        n += len(by_subject[s])
    train = [u for u in units if u["subject"] not in val_subjects]
    val = [u for u in units if u["subject"] in val_subjects]
    return train, val


def add_invented(scorer, splits: tuple[list[dict], list[dict]], fraction: float, out_dir: Path, seed: int,
                 avoid: set[str] = frozenset()) -> dict:
    """Invented-entity copies (:mod:`taalm.tools.invent`) of a seeded ``fraction`` of the
    ``splits``' train units and of every val unit (``scorer``: :class:`~taalm.tools.tailor.Scorer`). Each copy is scored by the base model in both probe formats (the
    pool's scorer, cached in ``OUT/scores/invented-rN.*``); a copy that does not score exactly 0
    in both is drawn again with new names, up to :data:`INVENT_ROUNDS` times, then dropped. The
    splits stay disjoint by the original subject (a copy goes where its original went) and no
    invented name is used twice. Returns ``{"train", "val", "summary"}``."""
    from .invent import NameGenerator, invent_units
    from .tailor import FORMATS as _F, Unit, score_cache_path, score_units

    train, val = splits
    t0 = time.perf_counter()
    rng = random.Random(seed + 1)
    chosen = sorted(rng.sample(range(len(train)), round(fraction * len(train))))
    todo = {"train": [train[i] for i in chosen], "val": list(val)}
    names = NameGenerator(seed, avoid)
    kept: dict[str, list[dict]] = {"train": [], "val": []}
    counts = Counter(selected_train=len(chosen), selected_val=len(val))
    for rnd in range(1, INVENT_ROUNDS + 1):
        batch = {k: invent_units(v, names) for k, v in todo.items()}
        counts["unrewritable"] += sum(f for _, f in batch.values()) if rnd == 1 else 0
        rows = [r for k in ("train", "val") for r in batch[k][0]]
        if not rows:
            break
        units = [Unit(r["uuid"], f"invented-r{rnd}", i + 1, r, "") for i, r in enumerate(rows)]
        got = {fmt: score_units(scorer, units, fmt, score_cache_path(out_dir, f"invented-r{rnd}", fmt), [])[0]
               for fmt in _F}
        zero = {r["uuid"] for r in rows if all(got[f].get(r["uuid"], {}).get("score") == 0.0 for f in _F)}
        by_uuid = {u["uuid"]: u for k in ("train", "val") for u in todo[k]}
        for k in ("train", "val"):
            kept[k] += [r for r in batch[k][0] if r["uuid"] in zero]
            todo[k] = [by_uuid[r["invented"]["from"]] for r in batch[k][0] if r["uuid"] not in zero]
        counts[f"passed_round_{rnd}"] = len(zero)
    counts["rejected_by_score"] = len(todo["train"]) + len(todo["val"])
    order = {u["uuid"]: i for i, u in enumerate(train + val)}
    for k in kept:
        kept[k].sort(key=lambda r: order[r["invented"]["from"]])
    counts.update(train=len(kept["train"]), val=len(kept["val"]))
    shapes = Counter(s for k in kept for r in kept[k] for s in r["invented"]["shapes"])
    summary = {"fraction": fraction, "counts": dict(counts), "name_shapes": dict(sorted(shapes.items())),
               "rule": f"subject and object replaced by seeded invented names (every whole-word occurrence); "
                       f"kept when the base model scores exactly 0 in both probe formats, else redrawn "
                       f"(≤ {INVENT_ROUNDS} rounds); copies of train facts in train.jsonl, of every val fact "
                       f"in val_invented.jsonl",
               "wall_s": round(time.perf_counter() - t0, 2)}
    return {"train": kept["train"], "val": kept["val"], "summary": summary}
