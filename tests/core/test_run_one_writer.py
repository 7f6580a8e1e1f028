"""``run.json`` has one writer (:func:`taalm.core.runfolder.write_run_json`, used through
:class:`taalm.core.run.Run`), and only ``core/distributed.py`` and ``core/strategy.py`` read the
rank: every other module asks them. Parsed from the source (no imports), as tests/test_layout.py."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

from taalm.core.run import QUIET, Run

PKG = Path(__file__).resolve().parents[2] / "src" / "taalm"
RUN_JSON_WRITERS = {"core/run.py", "core/runfolder.py"}
RANK_READERS = {"core/distributed.py", "core/strategy.py"}
#: core/devices.py picks the accelerator from LOCAL_RANK (distributed.py imports it: asking distributed
#: from there would be an import circle); that alone, never the rank
LOCAL_RANK_ONLY = {"core/devices.py": [("LOCAL_RANK",)]}
_WRITE = re.compile(r"write|dump|save|open|replace|rename|touch|copy|move", re.IGNORECASE)


def _modules():
    return sorted(PKG.rglob("*.py"))


def _rel(path: Path) -> str:
    return path.relative_to(PKG).as_posix()


def _callee(call: ast.Call) -> str:
    f = call.func
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""


def _mentions_run_json(node: ast.AST, names: set[str]) -> bool:
    return any((isinstance(n, ast.Constant) and n.value == "run.json") or (isinstance(n, ast.Name) and n.id in names)
               for n in ast.walk(node))


def run_json_writes(source: str) -> list[int]:
    """Lines of calls that write, dump, save, open, move ... ``run.json`` (the literal, or a name
    bound to an expression holding it)."""
    tree = ast.parse(source)
    names = {t.id for n in ast.walk(tree) if isinstance(n, (ast.Assign, ast.AnnAssign)) and n.value is not None
             and _mentions_run_json(n.value, set())
             for t in (n.targets if isinstance(n, ast.Assign) else [n.target]) if isinstance(t, ast.Name)}
    hits = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _WRITE.search(_callee(node)):
            parts = [*node.args, *(k.value for k in node.keywords)]
            if isinstance(node.func, ast.Attribute):  # (out / "run.json").write_text(...)
                parts.append(node.func.value)
            if any(_mentions_run_json(p, names) for p in parts):
                hits.append(node.lineno)
    return hits


def rank_reads(source: str) -> list[int]:
    """Lines that read the rank or the world size themselves: ``.rank``, ``.world_size``,
    ``get_rank()``, the ``RANK`` / ``LOCAL_RANK`` / ``WORLD_SIZE`` variables, ``current().is_main``."""
    hits = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in ("rank", "world_size", "get_rank", "get_world_size"):
            hits.append(node.lineno)
        elif isinstance(node, ast.Name) and node.id in ("get_rank", "get_world_size"):
            hits.append(node.lineno)
        elif isinstance(node, ast.Constant) and node.value in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
            hits.append(node.lineno)
        elif (isinstance(node, ast.Attribute) and node.attr == "is_main" and isinstance(node.value, ast.Call)
              and _callee(node.value) == "current"):
            hits.append(node.lineno)
    return hits


def test_the_scans_catch_what_they_look_for():
    assert run_json_writes('atomic_write_json(out / "run.json", {})') == [1]
    assert run_json_writes('p = out / "run.json"\natomic_write_json(p, {})') == [2]
    assert run_json_writes('(out / "run.json").write_text("{}")') == [1]
    assert run_json_writes('json.loads((out / "run.json").read_text())') == []
    assert run_json_writes('(out / "run.json").is_file()') == []
    assert rank_reads('os.environ.get("RANK", "0")') == [1]
    assert rank_reads('d = distributed.current()\nx = d.rank') == [2]
    assert rank_reads('distributed.current().is_main') == [1]
    assert rank_reads('distributed.is_main_process()') == []


def test_run_json_has_one_writer():
    found = {f"{_rel(p)}:{line}" for p in _modules() if _rel(p) not in RUN_JSON_WRITERS
             for line in run_json_writes(p.read_text(encoding="utf-8"))}
    assert not found, f"run.json written outside core/run.py (write through Run.write_info / Run.finish): {sorted(found)}"


def test_only_distributed_and_strategy_read_the_rank():
    found = set()
    for p in _modules():
        if _rel(p) in RANK_READERS:
            continue
        source = p.read_text(encoding="utf-8")
        if _rel(p) in LOCAL_RANK_ONLY:  # its one LOCAL_RANK (checked to be that alone)
            source = source.replace('"LOCAL_RANK"', '"LOCAL_ACCELERATOR"', 1)
        found |= {f"{_rel(p)}:{line}" for line in rank_reads(source)}
    assert not found, (f"the rank read outside core/distributed.py and core/strategy.py (ask a Strategy or "
                       f"distributed.is_main_process() / launched_as_main()): {sorted(found)}")


def test_run_writes_a_loops_run_json_running_then_complete(tmp_path):
    out = tmp_path / "run"
    with Run(out, log=QUIET.log, progress=False) as run:
        assert run.folder is not None

        def first_files(f: Path) -> None:
            run.write_info("running", {"n": 1, "config": {"a": 1}}, folder=f, kind="k")

        run.folder.start(first_files)
        started = json.loads((out / "run.json").read_text())
        assert list(started)[:2] == ["schema", "kind"] and started["status"] == "running"
        assert list(started)[-3:] == ["status", "n", "config"]
        done = run.finish({"n": 2, "config": {"a": 1}}, kind="k")
    assert json.loads((out / "run.json").read_text()) == done
    assert done["status"] == "complete" and done["n"] == 2 and done["kind"] == "k"
