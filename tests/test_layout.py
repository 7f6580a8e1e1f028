"""The package layout holds: layers import only downward, no private name crosses a module, and
device types are named only in core/devices.py. Parsed from the source (no imports)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "src" / "taalm"
# layer of each top-level subpackage / module; a module may import its own layer or lower ones
LAYERS = {"core": 1, "data": 2, "models": 3, "evaluation": 4, "reporting": 4, "ckl": 5, "meta": 6,
          "tools": 6, "bench": 7, "demo": 8, "hf": 8, "cli": 9, "__main__": 9, "__init__": 9, "recipes": 1}


def modules():
    return sorted(p for p in PKG.rglob("*.py"))


def unit_of(path: Path) -> str:
    rel = path.relative_to(PKG).parts
    return rel[0] if len(rel) > 1 else rel[0][:-3]


def dotted(path: Path) -> list[str]:
    rel = list(path.relative_to(PKG).with_suffix("").parts)
    return ["taalm", *rel]


def imports(path: Path):
    """(target module dotted, imported names, line) of every taalm import in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    here = dotted(path)
    pkg = here[:-1] if path.name != "__init__.py" else here[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg[:len(pkg) - (node.level - 1)]
                target = base + (node.module.split(".") if node.module else [])
            elif node.module and node.module.startswith("taalm"):
                target = node.module.split(".")
            else:
                continue
            yield target, [a.name for a in node.names], node.lineno
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("taalm"):
                    yield a.name.split("."), [], node.lineno


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PKG)))
def test_imports_go_down_only(path):
    mine = LAYERS[unit_of(path)]
    for target, _, line in imports(path):
        if len(target) < 2:  # `from . import __version__`
            continue
        theirs = LAYERS[target[1]]
        assert theirs <= mine, f"{path.relative_to(PKG)}:{line} imports {'.'.join(target)} (layer {theirs} > {mine})"


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PKG)))
def test_no_private_names_across_modules(path):
    here = dotted(path)
    for target, names, line in imports(path):
        private = [n for n in names if n.startswith("_") and not n.startswith("__")]
        if private and target != here:
            pytest.fail(f"{path.relative_to(PKG)}:{line} imports private {private} from {'.'.join(target)}")


def test_device_types_are_named_only_in_devices():
    pattern = re.compile(r"""["'](cuda|mps)["']""")
    offenders = []
    for path in modules():
        if path.name == "devices.py":
            continue
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            if pattern.search(code) or ".type ==" in code or ".type !=" in code:
                offenders.append(f"{path.relative_to(PKG)}:{i}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_no_function_is_long():
    """No function over 80 lines (the readable-loop rule), argparse tables included."""
    long = []
    for path in modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > 80:
                    long.append(f"{path.relative_to(PKG)}:{node.lineno} {node.name} ({n} lines)")
    assert not long, "\n".join(long)


def test_every_public_name_resolves():
    """The names of ``taalm/__init__.py`` keep working after the move into subpackages."""
    import importlib

    import taalm

    for name in taalm.__all__:
        value = getattr(taalm, name)
        if name != "__version__":
            module = importlib.import_module(taalm._LAZY[name])
            assert getattr(module, name) is value, name


def test_no_import_runs_in_a_circle():
    """No chain of taalm imports that run (module-level or inside functions; not the type
    checker's ``if TYPE_CHECKING`` ones) leads back to where it started: e.g. the learner -> method -> weighting -> rho1 -> learner circle is gone (RHO-1's
    fine-tuned reference comes from ``PrepareContext.fine_tune``, supplied by the learner)."""
    names = {".".join(x for x in dotted(p) if x != "__init__"): p for p in modules()}
    edges: dict[str, set[str]] = {m: set() for m in names}
    for m, p in names.items():
        type_only = set()  # lines under `if TYPE_CHECKING:` (never run: annotations only)
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
                type_only.update(range(node.lineno, node.end_lineno + 1))
        for target, imported, line in imports(p):
            if line in type_only:
                continue
            base = ".".join(x for x in target if x != "__init__")
            for cand in [base, *(f"{base}.{n}" for n in imported)]:
                if cand in names and cand != m and not m.startswith(cand + "."):  # a package's own parent
                    edges[m].add(cand)
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for n in sorted(edges[m]):
            assert state.get(n) != 1, "import circle: " + " -> ".join(path[path.index(n):] + [n])
            if n not in state:
                visit(n, path + [n])
        state[m] = 2

    for m in sorted(names):
        if m not in state:
            visit(m, [m])
    assert len(edges["taalm.ckl.learner"]) > 5  # the graph was built
