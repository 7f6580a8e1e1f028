"""The tables of numbers in README.md and docs/*.md equal their committed result files
(scripts/readme_tables.py)."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def load_script():
    spec = importlib.util.spec_from_file_location("readme_tables", ROOT / "scripts" / "readme_tables.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_every_table_stands_in_exactly_one_page():
    rt = load_script()
    pages = rt.pages()
    assert pages[0] == ROOT / "README.md" and ROOT / "docs" / "benchmarks.md" in pages
    where = rt.locate()
    assert sorted(where) == sorted(rt.TABLES), "a table the script knows is missing, or a page names an unknown one"
    assert {name: len(ps) for name, ps in where.items() if len(ps) != 1} == {}
    assert where["demo"] == [ROOT / "README.md"]  # the first screen's table stays in the README


@pytest.mark.parametrize("page", load_script().pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_generated_table_equals_its_result_files(page):
    rt = load_script()
    _, changed = rt.render(page.read_text(encoding="utf-8"), str(page.relative_to(ROOT)))
    assert changed == [], f"run python scripts/readme_tables.py: {changed} in {page.name} differ from their result files"


def _stale(text: str, name: str) -> str:
    """``text`` with the first number of table ``name``'s first row replaced by 0.999."""
    start = text.index(f"<!-- table:{name} -->")
    row = text.index("\n| ", text.index("\n|---", start) + 1) + 1
    cell = text.index(" 0.", row)
    return text[:cell] + " 0.999" + text[cell + 6:]


@pytest.mark.parametrize("name", ["lama-ckl-cpu", "stream-cpu"])
def test_a_stale_number_is_caught_in_a_docs_page(name):
    rt = load_script()
    (page,) = rt.locate()[name]
    text = page.read_text(encoding="utf-8")
    fixed, changed = rt.render(_stale(text, name))
    assert changed == [name] and fixed == text


def test_a_stale_number_is_caught_in_the_readme():
    rt = load_script()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    fixed, changed = rt.render(_stale(readme, "demo"))
    assert changed == ["demo"] and fixed == readme


def test_a_table_that_cannot_be_rendered_is_reported_not_fatal(monkeypatch):
    rt = load_script()

    def broken():
        raise KeyError("learned")

    monkeypatch.setitem(rt.TABLES, "demo", broken)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    errors: list[str] = []
    out, changed = rt.render(readme, "README.md", errors)
    assert out == readme and "demo" not in changed
    assert errors == ["README.md: table 'demo' cannot be rendered (KeyError: 'learned')"]
    with pytest.raises(KeyError):
        rt.render(readme)


def test_a_table_in_two_pages_is_refused(tmp_path):
    rt = load_script()
    block = "<!-- table:fresh-clone -->\nx\n<!-- /table:fresh-clone -->\n"
    a, b = tmp_path / "a.md", tmp_path / "b.md"
    a.write_text(block)
    b.write_text(block)
    where = rt.locate([a, b])
    assert where == {"fresh-clone": [a, b]}
    problems = rt._problems_with_placement(where)
    assert any("fresh-clone' stands in 2 places" in p for p in problems)
