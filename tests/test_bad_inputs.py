"""scripts/bad_input_examples.py: every bad input gets one line, exit 2, no output folder, and the
user's files stay byte-identical (each case in its own clean copy of the fixtures)."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_bad_input_example():
    spec = importlib.util.spec_from_file_location("bad_input_examples", ROOT / "scripts" / "bad_input_examples.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    results = mod.run_all()
    assert len(results) == len(mod.CASES) >= 40
    failing = [(r["case"], r["exit"], r["lines"], r["changed"]) for r in results if not r["ok"]]
    assert failing == []
