#!/usr/bin/env python3
"""Structure metrics of the taalm package (the redesign's before/after report).

    python scripts/code_metrics.py [SRC_DIR] [--json OUT.json]

Prints the longest functions, the functions with the most parameters (self/cls not counted,
*args/**kwargs counted once each), and the number of internal imports (``from .``/``taalm``)
per module. Pure ``ast``: nothing is imported.
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path


def _params(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    a = fn.args
    names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs]
    n = len([x for x in names if x not in ("self", "cls")])
    return n + (a.vararg is not None) + (a.kwarg is not None)


def _internal_imports(tree: ast.Module) -> int:
    n = 0
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.level > 0 or (node.module or "").startswith("taalm")):
            n += 1
        elif isinstance(node, ast.Import) and any(a.name.startswith("taalm") for a in node.names):
            n += 1
    return n


def measure(src: Path) -> dict:
    funcs, imports = [], {}
    for path in sorted(src.rglob("*.py")):
        rel = str(path.relative_to(src.parent))
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imports[rel] = _internal_imports(tree)
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                funcs.append({"function": f"{rel}:{node.name}", "line": node.lineno,
                              "lines": node.end_lineno - node.lineno + 1, "params": _params(node)})
    return {
        "longest": sorted(funcs, key=lambda f: -f["lines"])[:10],
        "most_params": sorted(funcs, key=lambda f: -f["params"])[:15],
        "over_8_params": sum(f["params"] > 8 for f in funcs),
        "over_6_params": sum(f["params"] > 6 for f in funcs),
        "over_80_lines": sum(f["lines"] > 80 for f in funcs),
        "functions": len(funcs),
        "internal_imports": dict(sorted(imports.items(), key=lambda kv: -kv[1])),
    }


def main(argv: list[str]) -> int:
    src = Path(argv[0]) if argv and not argv[0].startswith("--") else Path(__file__).resolve().parents[1] / "src" / "taalm"
    m = measure(src)
    print(f"{m['functions']} functions; > 80 lines: {m['over_80_lines']}; > 8 parameters: {m['over_8_params']}; "
          f"> 6 parameters: {m['over_6_params']}")
    print("\nlongest functions:")
    for f in m["longest"]:
        print(f"  {f['lines']:4d} lines  {f['function']} (line {f['line']})")
    print("\nmost parameters:")
    for f in m["most_params"]:
        print(f"  {f['params']:4d}        {f['function']} (line {f['line']})")
    print("\ninternal imports per module (top 15):")
    for k, v in list(m["internal_imports"].items())[:15]:
        print(f"  {v:4d}  {k}")
    if "--json" in argv:
        Path(argv[argv.index("--json") + 1]).write_text(json.dumps(m, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
