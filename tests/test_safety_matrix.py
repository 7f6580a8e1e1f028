"""Run safety, round 2 (issue 27): odd inputs get one line and exit 2, never a traceback, and the
user's files stay byte-identical (hashed before and after)."""

from __future__ import annotations

import json

import pytest

from taalm.cli import main

from test_run_lifecycle import tree_digest
from test_bench import tailored  # noqa: F401 - the fixture
from test_report import _bench_folder


def one_line_exit_2(capsys, argv, expected: str) -> None:
    code = main([str(a) for a in argv])
    _, err = capsys.readouterr()
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith(("learning ", "loading ", "lama-ckl"))]
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert expected in lines[0], lines[0]


BILLION_LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b, *b]\n"
RECIPES = {
    "aliases (billion laughs)": (BILLION_LAUGHS, "anchors and aliases"),
    "duplicate key": ("train:\n  lr: 1.0e-3\nmodel:\n  dtype: auto\ntrain:\n  epochs: 2\n", "given twice"),
    "duplicate nested key": ("train:\n  lr: 1.0e-3\n  lr: 1.0e-2\n", "'lr' given twice"),
    "deeply nested": ("a: " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
}


@pytest.mark.parametrize("case", list(RECIPES))
def test_odd_recipes(tmp_path, capsys, docs_file, model_dir, case):
    text, expected = RECIPES[case]
    recipe = tmp_path / "r.yaml"
    recipe.write_text(text)
    before = tree_digest(tmp_path)
    one_line_exit_2(capsys, ["learn", docs_file, "--config", recipe, f"model.name={model_dir}", "--out",
                             tmp_path / "out", "--quiet"], expected)
    assert tree_digest(tmp_path) == before


def test_documents_nested_200k_deep(tmp_path, capsys, model_dir):
    docs = tmp_path / "deep.jsonl"
    docs.write_text("[" * 200_000 + "]" * 200_000 + "\n")
    before = tree_digest(tmp_path)
    one_line_exit_2(capsys, ["learn", docs, f"model.name={model_dir}", "--out", tmp_path / "out", "--quiet"],
                    "deep.jsonl")
    assert tree_digest(tmp_path) == before


REPORT_CASES = {
    "summary is a list": (lambda d: (d / "summary.json").write_text("[1, 2]"), "a JSON list"),
    "history of [{}]": (lambda d: (d / "summary.json").write_text(json.dumps({"history": [{}]})), "row 1: 'epoch'"),
    "null accuracy": (lambda d: (d / "summary.json").write_text(json.dumps(
        {"history": [{"epoch": 0, "accuracy": None, "nll": 1.0}]})), "'accuracy' is not a number"),
    "empty summary": (lambda d: (d / "summary.json").write_text(""), "cannot read"),
}


@pytest.mark.parametrize("case", list(REPORT_CASES))
def test_report_on_odd_learn_runs(tmp_path, capsys, case):
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"schema": "taalm.run/1", "status": "complete"}))
    write, expected = REPORT_CASES[case]
    write(run)
    before = tree_digest(tmp_path)
    one_line_exit_2(capsys, ["report", run, "--out", tmp_path / "report"], expected)
    assert tree_digest(tmp_path) == before  # no empty report folder either


@pytest.mark.parametrize("content, expected", [("", "cannot read"), ("[]", "a JSON list"),
                                               (json.dumps({"curve": [{}], "summary": {}}), "curve, row 1")])
def test_report_on_odd_bench_results(tmp_path, capsys, content, expected):
    bench = _bench_folder(tmp_path / "bench", {"finetune": ([0.0, 0.1], [1.0, 0.9])})
    (bench / "finetune" / "result.json").write_text(content)
    before = tree_digest(tmp_path)
    one_line_exit_2(capsys, ["report", bench, "--out", tmp_path / "report"], expected)
    assert tree_digest(tmp_path) == before


@pytest.mark.parametrize("which, content", [("bench.json", "{broken"), ("bench.json", "[1]"),
                                            ("finetune/result.json", "{broken"), ("finetune/result.json", "[]"),
                                            ("finetune/result.json", '{"summary": 1}')])
def test_bench_on_a_damaged_folder(tmp_path, capsys, tailored, model_dir, which, content):
    bench = tmp_path / "bench"
    argv = ["bench", "lama-ckl", "--size", "smoke", "--data", tailored, "--methods", "finetune", "--out", bench,
            "--quiet", f"model.name={model_dir}", "theta.lora.r=4", "bench.n_to_learn=2", "train.epochs=1"]
    assert main([str(a) for a in argv]) == 0
    capsys.readouterr()
    (bench / which).write_text(content)
    before = tree_digest(tmp_path)
    one_line_exit_2(capsys, argv, which.split("/")[-1])
    assert tree_digest(tmp_path) == before
