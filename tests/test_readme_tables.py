"""The README's tables of numbers equal their committed result files (scripts/readme_tables.py)."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load_script():
    spec = importlib.util.spec_from_file_location("readme_tables", ROOT / "scripts" / "readme_tables.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_every_generated_table_equals_its_result_files():
    rt = load_script()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in rt.TABLES:  # every table the script knows is in the README
        assert f"<!-- table:{name} -->" in readme and f"<!-- /table:{name} -->" in readme, name
    _, changed = rt.render(readme)
    assert changed == [], f"run python scripts/readme_tables.py: {changed} differ from their result files"


def test_a_stale_number_is_caught():
    rt = load_script()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("<!-- table:demo -->")
    row = readme.index("\n| ", readme.index("\n|---", start) + 1) + 1  # the demo table's first row
    cell = readme.index(" 0.", row)
    stale = readme[:cell] + " 0.999" + readme[cell + 6:]
    fixed, changed = rt.render(stale)
    assert changed == ["demo"] and fixed == readme
