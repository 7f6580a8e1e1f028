"""Tailoring LAMA-ckl to a base model: set rules, cache/resume, invalidation, CLI (tiny models)."""

import json

import pytest

import taalm.tools.tailor as tailor_mod
from taalm.cli import main
from taalm.core.errors import InputError
from taalm.core.run import RunOptions
from taalm.evaluation.probes import EvalResult, ProbeScore
from taalm.tools.tailor import SET_NAMES, TailorConfig, read_units, tailor


def unit(uuid, subject, relation, obj, schematic_obj=None, **extra):
    return {"relation_code": "P0", "uuid": uuid,
            "task_descriptive": f"The {relation} of {subject} is {obj} .",
            "task_schematic": f"Guess the object. \n  subject is {subject} , relation is {relation} , "
                              f"object is {schematic_obj or obj}",
            "subject": subject, "relation_label": relation, "object": obj,
            "evidence": f"{subject} and {obj}: the {relation} of {subject} is {obj}.", **extra}


# (uuid, file) -> (descriptive score, schematic score) given by the stub scorer
PLAN = {
    "v-both0": ("variant", 0.0, 0.0),         # To-Learn under every rule
    "v-desc0": ("variant", 0.0, 0.5),         # To-Learn only under rule 'descriptive'; 0.5 is not < 0.5
    "v-schem0": ("variant", 0.25, 0.0),       # rule 'schematic' only; else φ pool (0.0 < 0.5)
    "v-known": ("variant", 1.0, 1.0),         # in no set
    "d-known": ("invariant_descriptive", 1.0, 0.0),   # NF descriptive (schematic score irrelevant)
    "d-low": ("invariant_descriptive", 0.9, 0.3),     # φ pool (schematic < 0.5)
    "d-mid": ("invariant_descriptive", 0.5, 0.5),     # nothing
    "shared-known": ("both", 1.0, 1.0),               # in both invariant files: NF in both
    "shared-low": ("both", 0.0, 0.0),                 # in both invariant files: φ pool once
    "s-known": ("invariant_schematic", 0.0, 1.0),     # NF schematic
    "s-almost": ("invariant_schematic", 1.0, 0.75),   # nothing (NF schematic needs 1 on schematic)
}
OBJECTS = ["Kestrelford", "Orvish", "Ilvara", "Welsh", "Drummoch", "Paris", "France", "Sennet",
           "Quellmere", "Penhallow", "Wales"]


def write_lama(folder, extra_variant=()):
    folder.mkdir(parents=True, exist_ok=True)
    files = {"variant": [], "invariant_descriptive": [], "invariant_schematic": []}
    for i, (uuid, (where, _, _)) in enumerate(PLAN.items()):
        row = unit(uuid, f"Subject{i}", "official language", OBJECTS[i])
        for f in (["invariant_descriptive", "invariant_schematic"] if where == "both" else [where]):
            files[f].append(row)
    files["variant"].extend(extra_variant)
    for name, rows in files.items():
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


class StubScorer:
    """Replaces evaluate_probes: scores from PLAN (by uuid and probe format); counts probes."""

    def __init__(self, fail_after=None):
        self.calls = 0
        self.probes = 0
        self.fail_after = fail_after

    def __call__(self, model, tokenizer, probes, batch_size=16, padding_side="right", encoded=None,
                 progress=None):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt
        self.calls += 1
        self.probes += len(probes)
        per = []
        for p in probes:
            _, d, s = PLAN[p.id]
            per.append(ProbeScore(p.id, s if p.text.startswith("Guess") else d, 1.0, 1))
        return EvalResult(0.0, 0.0, len(per), per)


@pytest.fixture
def stub(monkeypatch):
    s = StubScorer()
    monkeypatch.setattr(tailor_mod, "evaluate_probes", s)
    return s


def ids(path):
    return [json.loads(line)["uuid"] for line in path.read_text().splitlines()]


def test_set_rules(tmp_path, monkeypatch, stub, model_dir):
    bad = unit("v-bad", "SubjectX", "official language", "Orvish", schematic_obj="Welsh")
    bad["object"] = "Orvish"  # occurs in the descriptive probe only
    data = write_lama(tmp_path / "lama", [bad])
    monkeypatch.setitem(PLAN, "v-bad", ("variant", 0.0, 0.0))
    out = tmp_path / "out"
    logs = []
    res = tailor(data, out, TailorConfig(model=str(model_dir)), options=RunOptions(log=logs.append, progress=False))
    assert ids(out / "to_learn.jsonl") == ["v-both0"]
    assert ids(out / "not_to_forget_descriptive.jsonl") == ["d-known", "shared-known"]
    assert ids(out / "not_to_forget_schematic.jsonl") == ["shared-known", "s-known"]
    assert ids(out / "phi_pool.jsonl") == ["v-schem0", "d-low", "shared-low"]
    # the unit whose object is missing from its schematic probe: skipped there, in no set
    assert [(s["uuid"], s["format"]) for s in res.skipped] == [("v-bad", "task_schematic")]
    assert res.to_learn_by_rule == {"both": 1, "descriptive": 3, "schematic": 2}
    assert res.counts == {"to_learn": 1, "not_to_forget_descriptive": 2, "not_to_forget_schematic": 2,
                          "phi_pool": 3}
    # To-Learn, NF and φ pool disjoint by uuid; NF files overlap only on the shared known unit
    nf = set(res.sets["not_to_forget_descriptive"]) | set(res.sets["not_to_forget_schematic"])
    assert not set(res.sets["to_learn"]) & nf and not set(res.sets["phi_pool"]) & (nf | set(res.sets["to_learn"]))
    assert res.summary["nf_overlap"] == 1
    # output rows are the original lines, unchanged
    originals = {json.loads(l)["uuid"]: l for f in data.glob("*.jsonl") for l in f.read_text().splitlines()}
    for name in SET_NAMES:
        for line in (out / f"{name}.jsonl").read_text().splitlines():
            assert line == originals[json.loads(line)["uuid"]]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"] == res.counts and summary["by_relation"]["phi_pool"] == {"official language": 3}
    h = summary["score_histograms"]["variant.task_schematic"]
    assert h["n"] == 4 and h["exact_0"] == 2 and sum(h["bin_counts"]) == 4
    assert (out / "scores.png").read_bytes()[:4] == b"\x89PNG"
    assert stub.probes == 2 * (4 + 5 + 4) + 1  # every scoreable probe once

    # another To-Learn rule: same cached scores, other set
    res = tailor(data, out, TailorConfig(model=str(model_dir), to_learn_rule="descriptive"),
                 options=RunOptions(log=logs.append, progress=False))
    assert ids(out / "to_learn.jsonl") == ["v-both0", "v-desc0", "v-bad"]  # v-bad: descriptive 0
    assert "v-schem0" in res.sets["phi_pool"]


def test_resume_and_interruption(tmp_path, monkeypatch, model_dir):
    data = write_lama(tmp_path / "lama")
    out = tmp_path / "out"
    failing = StubScorer(fail_after=3)  # interrupted after 3 chunks of 2 probes
    monkeypatch.setattr(tailor_mod, "evaluate_probes", failing)
    with pytest.raises(KeyboardInterrupt):
        tailor(data, out, TailorConfig(model=str(model_dir), chunk_size=2), options=RunOptions(log=lambda m: None, progress=False))
    assert not (out / "summary.json").exists()
    cached = sum(len(f.read_text().splitlines()) for f in (out / "scores").glob("*.jsonl"))
    assert cached == 6

    stub = StubScorer()
    monkeypatch.setattr(tailor_mod, "evaluate_probes", stub)
    res = tailor(data, out, TailorConfig(model=str(model_dir), chunk_size=2), options=RunOptions(log=lambda m: None, progress=False))
    assert stub.probes == 26 - 6 and res.n_cached == 6 and res.n_scored == 20
    first = (out / "phi_pool.jsonl").read_text()

    stub.probes = stub.calls = 0
    res = tailor(data, out, TailorConfig(model=str(model_dir)), options=RunOptions(log=lambda m: None, progress=False))
    assert stub.calls == 0 and res.n_scored == 0 and res.n_cached == 26
    assert (out / "phi_pool.jsonl").read_text() == first

    # a changed probe is rescored, the rest is not
    rows = [json.loads(l) for l in (data / "variant.jsonl").read_text().splitlines()]
    rows[0]["task_descriptive"] = rows[0]["task_descriptive"].replace("The ", "Indeed the ")
    (data / "variant.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    tailor(data, out, TailorConfig(model=str(model_dir)), options=RunOptions(log=lambda m: None, progress=False))
    assert stub.probes == 1


def test_model_change_invalidates_cache(tmp_path, stub, model_dir):
    from conftest import build_tokenizer, make_llama

    other = tmp_path / "other-model"
    tok = build_tokenizer()
    make_llama(len(tok), seed=1).save_pretrained(other)
    tok.save_pretrained(other)
    data = write_lama(tmp_path / "lama")
    out = tmp_path / "out"
    logs = []
    tailor(data, out, TailorConfig(model=str(model_dir)), options=RunOptions(log=logs.append, progress=False))
    assert stub.probes == 26
    meta = json.loads((out / "scores" / "meta.json").read_text())
    tailor(data, out, TailorConfig(model=str(other)), options=RunOptions(log=logs.append, progress=False))
    assert stub.probes == 52  # everything scored again
    new = json.loads((out / "scores" / "meta.json").read_text())
    assert new["fingerprint"] != meta["fingerprint"] and new["model_spec"] == str(other)
    assert any("discarding 6 cached score files" in m for m in logs)

    # same weights under another label: the spec alone also invalidates
    from taalm.models.loading import load_model

    model, tk = load_model(str(other))
    tailor(data, out, TailorConfig(model="my-model"), theta0=(model, tk), options=RunOptions(log=logs.append, progress=False))
    assert stub.probes == 78
    tailor(data, out, TailorConfig(model="my-model"), theta0=(model, tk), options=RunOptions(log=logs.append, progress=False))
    assert stub.probes == 78


def test_bad_inputs(tmp_path, model_dir):
    data = write_lama(tmp_path / "lama")
    with open(data / "invariant_schematic.jsonl", "a") as f:
        f.write('{"uuid": "x", "object": \n')
    with pytest.raises(InputError, match=r"invariant_schematic.jsonl, line 5: invalid JSON"):
        tailor(data, tmp_path / "out", TailorConfig(model=str(model_dir)), options=RunOptions(log=lambda m: None))
    assert not (tmp_path / "out").exists()

    p = tmp_path / "dup.jsonl"
    p.write_text(json.dumps(unit("a", "S", "r", "Welsh")) + "\n" + json.dumps(unit("a", "T", "r", "Paris")) + "\n")
    with pytest.raises(InputError, match=r"line 2, field 'uuid': duplicate uuid 'a' \(first on line 1\)"):
        read_units(p)
    row = unit("b", "S", "r", "Welsh")
    del row["task_schematic"]
    p.write_text(json.dumps(row) + "\n")
    with pytest.raises(InputError, match=r"line 1, field 'task_schematic': missing field"):
        read_units(p)


def test_cli_end_to_end(tmp_path, capsys, model_dir):
    """The real scorer on the tiny random model: a random model knows nothing, so every variant
    unit is To-Learn and nothing is Not-To-Forget."""
    data = write_lama(tmp_path / "lama")
    out = tmp_path / "out"
    code = main(["data", "tailor", "--model", str(model_dir), "--data", str(data), "--out", str(out),
                 "--batch-size", "4", "--quiet"])
    stdout, err = capsys.readouterr()
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    c = summary["counts"]
    assert "to_learn" in stdout and "phi_pool" in stdout and f"{c['phi_pool']:>7}" in stdout
    assert summary["probes_scored_this_run"] == 26 and summary["skipped"]["count"] == 0
    for name in SET_NAMES:
        assert len((out / f"{name}.jsonl").read_text().splitlines()) == c[name]
    scores = summary["score_histograms"]
    assert all(h["n"] == len((data / f"{k.split('.')[0]}.jsonl").read_text().splitlines())
               for k, h in scores.items())
    assert c["to_learn"] == summary["to_learn_by_rule"]["both"]

    code = main(["data", "tailor", "--model", str(model_dir), "--data", str(data), "--out", str(out), "--quiet"])
    stdout, err = capsys.readouterr()
    assert code == 0 and json.loads((out / "summary.json").read_text())["probes_from_cache"] == 26

    code = main(["data", "tailor", "--data", str(tmp_path / "nowhere"), "--out", str(out)])
    _, err = capsys.readouterr()
    assert code == 2 and "LAMA-ckl data folder not found" in err and err.count("\n") == 1
