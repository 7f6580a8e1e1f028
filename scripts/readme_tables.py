#!/usr/bin/env python3
"""The tables of numbers in README.md and docs/*.md, generated from the committed result files.

    python scripts/readme_tables.py            # rewrite every generated table, wherever it lives
    python scripts/readme_tables.py --check    # exit 1 (and name them) when a table differs from its files

A generated table sits between two markers in README.md or in any ``docs/*.md`` page::

    <!-- table:demo -->
    | method | learned | ... |
    <!-- /table:demo -->

and :data:`TABLES` maps its name to the function that writes it from ``benchmarks/results/``.
Each table stands in exactly one page (:func:`locate` finds it; moving a table between pages needs
no change here). Prose around the tables is written by hand; ``tests/test_readme_tables.py`` fails
when a table and its files disagree, so a number in a table cannot go stale.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
LAMA_CPU = RESULTS / "lama_ckl_cpu_smollm2"


def _read(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def _f3(x) -> str:
    return "–" if x is None else f"{x:.3f}"


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def demo_table() -> str:
    """``taalm demo`` on the 2-core CPU: learned (answer-token accuracy and exact match on the
    invented facts), kept (accuracy on general facts the base model answered before) and Total,
    after the last epoch; the best epoch by learned accuracy beside."""
    d = _read(RESULTS / "demo_cpu2.json")
    epochs = max(m["after"]["epoch"] for m in d["methods"].values())
    lines = [f"| method | learned: before → after {epochs} epochs | exact match | kept | Total | "
             "best learned (epoch, kept there) | training time |", "|---|---|---|---|---|---|---|"]
    for name, m in d["methods"].items():
        b, a, best = m["before"], m["after"], m["best"]
        lines.append(f"| {name} | {_f3(b['learned'])} → {_f3(a['learned'])} | {_f3(a['learned_exact'])} | "
                     f"{_f3(a.get('kept'))} | {_f3(a.get('total'))} | {_f3(best['learned'])} "
                     f"({best['epoch']}, {_f3(best.get('kept'))}) | {m['train_seconds']:.0f} s |")
    env = d["environment"]
    lines.append(f"\nWhole demo: {d['wall_seconds']:.0f} s (model load {d['load_seconds']:.1f} s) on "
                 f"{env.get('cpu_count', '?')} CPU cores, commit {env.get('git_commit', '?')[:7]}.")
    return "\n".join(lines)


def lama_cpu_table() -> str:
    """LAMA-ckl ``cpu``: every method of the committed folder, best Total first."""
    s = _read(LAMA_CPU / "summary.json")
    rows = []
    for name, m in s["methods"].items():
        r = m["summary"]
        rows.append((r["total"], f"| {name} | {_f3(r['top_acc'])} | {r['epoch']} | {_f3(r['nf_acc'])} | "
                                 f"{_f3(r['total'])} | {_f3(r['final_to_learn_acc'])} / {_f3(r['final_nf_acc'])} | "
                                 f"{_minutes(m['wall_s'])} |"))
    head = [f"| method | Top Acc | Epoch | NF Acc at Epoch | Total | To-Learn / NF after {s['epochs']} epochs | wall time |",
            "|---|---|---|---|---|---|---|"]
    return "\n".join(head + [line for _, line in sorted(rows, key=lambda r: -r[0])])


LAMA_RULES = RESULTS / "lama_ckl_cpu_smollm2_rules"


def lama_rules_table() -> str:
    """LAMA-ckl ``cpu``: the rule-based token losses (their own folder, same size and settings)
    beside fine-tuning and taalm of the main folder; a method not yet run says so."""
    main = _read(LAMA_CPU / "summary.json")["methods"]
    rules = _read(LAMA_RULES / "summary.json")["methods"] if (LAMA_RULES / "summary.json").is_file() else {}
    lines = ["| method | Top Acc | Epoch | NF Acc at Epoch | Total | wall time | from |", "|---|---|---|---|---|---|---|"]
    for name in ("finetune", "taalm", "dft", "asft", "eaft", "stm"):
        m, where = (main.get(name), "lama_ckl_cpu_smollm2") if name in ("finetune", "taalm") else (
            rules.get(name), "lama_ckl_cpu_smollm2_rules")
        if m is None:
            lines.append(f"| {name} | not run yet | | | | | |")
            continue
        r = m["summary"]
        lines.append(f"| {name} | {_f3(r['top_acc'])} | {r['epoch']} | {_f3(r['nf_acc'])} | {_f3(r['total'])} | "
                     f"{_minutes(m['wall_s'])} | `{where}` |")
    return "\n".join(lines)


def lama_targets_table() -> str:
    """The issue's targets for TAALM on LAMA-ckl ``cpu`` (``benchmarks/lama_ckl_targets.py``)."""
    t = _read(LAMA_CPU / "targets.json")
    lines = ["| target | TAALM | reference | met |", "|---|---|---|---|"]
    for row in t["targets"]:
        ref = row["reference"]
        ref = ", ".join(f"{k} {_f3(v)}" for k, v in ref.items()) if isinstance(ref, dict) else (
            f"{ref:g}" if isinstance(ref, float) and ref == int(ref) else _f3(ref) if isinstance(ref, float) else str(ref))
        value = row["taalm"] if isinstance(row["taalm"], int) else _f3(row["taalm"])
        lines.append(f"| {row['target']} | {value} | {ref} | {'yes' if row['met'] else '**no**'} |")
    return "\n".join(lines)


def fresh_clone_table() -> str:
    """The README's two commands timed from fresh clones (``scripts/fresh_clone_check.sh``)."""
    d = _read(RESULTS / "fresh_clone.json")
    demo = _read(RESULTS / "demo_cpu2.json")
    setup = d.get("setup_seconds") or {}
    lines = ["| command | wall time | of which |", "|---|---|---|"]
    same_run = (demo.get("environment") or {}).get("git_commit") == d["commit"]  # the demo's summary of this run
    of_demo = (f"the demo {demo['wall_seconds']:.0f} s (model load with GGUF dequantization and caching "
               f"{demo['load_seconds']:.1f} s; three methods × "
               f"{max(m['after']['epoch'] for m in demo['methods'].values())} epochs, evaluation after every epoch)"
               if same_run else "the demo's own breakdown was not kept for this run")
    lines.append(f"| `{d['demo']['command']}` | {d['demo']['wall_seconds']:.0f} s | "
                 f"{'set-up ' + str(setup['demo']) + ' s; ' if setup.get('demo') else ''}{of_demo} |")
    lines.append(f"| `{d['test']['command']}` | {d['test']['wall_seconds']:.0f} s | "
                 f"{'set-up ' + str(setup['test']) + ' s; ' if setup.get('test') else ''}"
                 f"pytest: {d['pytest_summary'].strip('= ')} |")
    lines.append(f"\nMachine: {d['machine']}; commit {d['commit'][:7]}, {d['date'][:10]}; {d['conditions']}.")
    return "\n".join(lines)


STREAM_CPU = RESULTS / "stream_lama_ckl_cpu_smollm2"


def stream_cpu_table() -> str:
    """lama-ckl-stream ``cpu``: per method, learning, what period 1 keeps, forgetting, BWT, NF."""
    s = _read(STREAM_CPU / "summary.json")
    lines = ["| method | learning (mean diag.) | period 1: learned → at the end | forgetting | BWT | final acc "
             "| NF acc θ0 → end | wall time |", "|---|---|---|---|---|---|---|---|"]
    for name in s["methods"]:
        r = _read(STREAM_CPU / name / "result.json")
        R, m = r["sets"][r["primary"]]["accuracy"], r["metrics"]
        nf = next(iter(r["nf"].values()))
        lines.append(f"| {name} | {_f3(m['mean_learning'])} | {R[1][0]:.3f} → {R[-1][0]:.3f} | "
                     f"{_f3(m['mean_forgetting'])} | {_f3(m['bwt'])} | {_f3(m['final_acc'])} | "
                     f"{nf[0]['accuracy']:.3f} → {nf[-1]['accuracy']:.3f} | {_minutes(r['wall_s'])} |")
    return "\n".join(lines)


def _markdown_file(path: Path):
    return lambda: path.read_text(encoding="utf-8").strip()


TABLES = {
    "demo": demo_table,
    "lama-ckl-cpu": lama_cpu_table,
    "lama-ckl-targets": lama_targets_table,
    "table1": _markdown_file(RESULTS / "lama_ckl_tables_cpu_smollm2" / "table1.md"),
    "table6": _markdown_file(RESULTS / "lama_ckl_tables_cpu_smollm2" / "table6.md"),
    "stream-cpu": stream_cpu_table,
    "validation-keep": _markdown_file(RESULTS / "validation" / "keep_settings.md"),
    "lama-ckl-rules": lama_rules_table,
    "fresh-clone": fresh_clone_table,
}

_BLOCK = re.compile(r"(<!-- table:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(\n<!-- /table:(?P=name) -->)", re.S)


def pages() -> list[Path]:
    """The pages that may hold generated tables: README.md, then docs/*.md in name order."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def locate(files: list[Path] | None = None) -> dict[str, list[Path]]:
    """Table name -> the pages whose markers hold it (exactly one page for a healthy tree)."""
    where: dict[str, list[Path]] = {}
    for page in files if files is not None else pages():
        for m in _BLOCK.finditer(page.read_text(encoding="utf-8")):
            where.setdefault(m.group("name"), []).append(page)
    return where


def render(text: str, source: str = "README.md", errors: list[str] | None = None) -> tuple[str, list[str]]:
    """(``text`` with every generated table rewritten, names of the tables that changed).

    A table whose function fails (a result file missing or in another shape) raises, or, when
    ``errors`` is a list, is left as it stands and its one-line reason appended to ``errors``."""
    changed = []

    def one(m: re.Match) -> str:
        name = m.group("name")
        if name not in TABLES:
            raise SystemExit(f"{source}: unknown table '{name}' (known: {', '.join(TABLES)})")
        try:
            body = TABLES[name]()
        except Exception as e:  # noqa: BLE001 - reported per table, the other tables still checked
            if errors is None:
                raise
            errors.append(f"{source}: table '{name}' cannot be rendered ({type(e).__name__}: {e})")
            return m.group(0)
        if body != m.group("body"):
            changed.append(name)
        return m.group(1) + body + m.group(4)

    return _BLOCK.sub(one, text), changed


def _problems_with_placement(where: dict[str, list[Path]]) -> list[str]:
    out = [f"table '{name}' is in no page (README.md, docs/*.md)" for name in TABLES if name not in where]
    out += [f"table '{name}' stands in {len(ps)} places ({', '.join(_rel(p) for p in ps)}): keep one"
            for name, ps in where.items() if len(ps) > 1]
    return out


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def main(argv: list[str]) -> int:
    check = "--check" in argv
    problems = _problems_with_placement(locate())
    stale, rewritten = [], []
    for page in pages():
        text = page.read_text(encoding="utf-8")
        new, changed = render(text, _rel(page), problems)
        if not changed:
            continue
        if check:
            stale.append(f"{_rel(page)}: tables out of date with their result files: {', '.join(changed)}")
            continue
        tmp = page.with_name(f".{page.name}.tmp")
        tmp.write_text(new, encoding="utf-8")
        tmp.replace(page)
        rewritten.append(f"{_rel(page)} ({', '.join(changed)})")
    for line in problems + stale:
        print(line)
    if stale:
        print("(run python scripts/readme_tables.py)")
    if not check:
        print(f"{len(rewritten)} page(s) rewritten" + (f": {'; '.join(rewritten)}" if rewritten else ""))
    return 1 if problems or stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
