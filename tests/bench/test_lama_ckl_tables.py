"""benchmarks/lama_ckl_tables.py builds Tables 1 and 6 from bench folders without retyping a number."""

import json
from pathlib import Path

import pytest
from conftest import load_benchmark


@pytest.fixture(scope="module")
def tables():
    return load_benchmark("lama_ckl_tables")


def _result(folder: Path, method: str, top: float, nf: float, wall_s: float, threads: int = 2,
            sessions: int = 1, reference_epochs: int | None = None) -> None:
    """A ``result.json`` and ``curve.jsonl`` with the fields ``taalm bench lama-ckl`` writes."""
    d = folder / method
    d.mkdir(parents=True)
    method_cfg = {"rho1": {"reference_epochs": reference_epochs}} if reference_epochs else {}
    summary = {"top_acc": top, "epoch": 3, "nf_acc": nf, "total": top + nf}
    (d / "result.json").write_text(json.dumps({
        "summary": summary, "wall_s": wall_s, "sessions": sessions, "config": {"method": method_cfg},
        "environment": {"torch_threads": threads}}))
    curve = [{"epoch": e, "to_learn_accuracy": top * e / 3, "nf_accuracy": 1.0 - (1.0 - nf) * e / 3}
             for e in range(4)]
    (d / "curve.jsonl").write_text("".join(json.dumps(c) + "\n" for c in curve))


def test_rows_deltas_wall_times_and_missing_rows(tables, tmp_path):
    main, ft, combos = tmp_path / "main", tmp_path / "rho1ft", tmp_path / "combos"
    _result(main, "finetune", 0.100, 0.500, 1692.4)
    _result(main, "taalm", 0.150, 0.900, 3052.0)
    _result(main, "kadapter", 0.020, 0.700, 888.0)
    _result(ft, "rho1", 0.055, 0.860, 4719.5, threads=1, reference_epochs=3)
    _result(combos, "taalm+kadapter", 0.065, 0.895, 2419.3, threads=1)
    _result(combos, "taalm+mixreview", 0.133, 0.910, 6904.5, sessions=2)
    out = tmp_path / "out"
    assert tables.main(["--results", str(main), "--rho1-finetuned", str(ft), "--combinations", str(combos),
                        "--out", str(out)]) == 0

    t1 = {line.split(" | ")[0].lstrip("| "): line for line in (out / "table1.md").read_text().splitlines()[2:]}
    assert "| 0.100 | 3 | 0.500 | 0.600 | 28:12 min (2 thr) | 0.115 | 16 | 0.817 | 0.932 |" in t1["Finetune"]
    assert "0.055 | 3 | 0.860 | 0.915 | 1:18:40 (1 thr)" in t1["RHO-1 (reference θ0 fine-tuned 3 epochs)"]
    assert t1["RHO-1 (reference θ0)"].split(" | ")[1] == "not run"  # main has no rho1
    assert t1["oracle (needs the answers)"].endswith("| — | — | — | — |")

    t6 = {line.split(" | ")[0].lstrip("| "): line.rstrip(" |").split(" | ")
          for line in (out / "table6.md").read_text().splitlines()[2:]}
    assert t6["finetune"][-3:] == ["+0.050", "+0.400", "+0.450"]
    assert t6["kadapter"][-3:] == ["+0.045", "+0.195", "+0.240"] and t6["kadapter"][9] == "40:19 min (1 thr)"
    assert t6["mixreview"][1] == "not run" and t6["mixreview"][9] == "1:55:04 (2 thr, 2 sessions)"
    assert t6["recadam"][6] == "not run"

    saved = json.loads((out / "tables.json").read_text())
    assert [r["combination"] for r in saved["table6"]] == ["taalm", "taalm+kadapter", "taalm+mixreview",
                                                         "taalm+recadam"]
    assert saved["table6"][1]["combination_summary"]["top_acc"] == 0.065
    assert (out / "table1_curves.png").stat().st_size > 0


def test_combinations_fall_back_to_the_main_folder(tables, tmp_path):
    main = tmp_path / "main"
    _result(main, "recadam", 0.058, 0.467, 2245.0)
    _result(main, "taalm+recadam", 0.080, 0.800, 2900.0)
    text, rows = tables.table6(main, None)
    assert rows[3]["combination_summary"]["nf_acc"] == 0.800
    assert "| +0.022 | +0.333 | +0.355 |" in text.splitlines()[-1]
