"""`taalm data pool`: evidence rule, probe strings, exclusion, score filter, cap, subject-disjoint split."""

import json

import pytest

import taalm.tools.tailor as tailor_mod
from taalm.cli import main
from taalm.core.errors import InputError
from taalm.core.run import QUIET
from taalm.evaluation.probes import EvalResult, ProbeScore
from taalm.tools.pool import Fact, PoolConfig, build_pool, choose_evidence, make_unit, read_relations, split_by_subject

LONG = " and the rest of this sentence is padding that makes it longer than two hundred characters" * 3


def fact(uuid, sub, obj, pid, sentences):
    return {"uuid": uuid, "sub_label": sub, "obj_label": obj, "sub_uri": "Q1", "obj_uri": "Q2",
            "predicate_id": pid,
            "evidences": [{"sub_surface": sub, "obj_surface": obj, "masked_sentence": s} for s in sentences]}


def test_choose_evidence_rule():
    f = Fact("u", "Ada Lovelace", "London", "P19", [
        "Ada Lovelace was born in [MASK].",                       # too short
        "Somebody was born in [MASK]." + LONG,                    # no subject
        "Ada Lovelace was born in [MASK] in 1815" + LONG + LONG,  # qualifies, longer
        "Ada Lovelace, born in [MASK]" + LONG,                    # qualifies, shortest
        "Ada Lovelace, born in [MASK]" + LONG,                    # duplicate
    ])
    text, masked, n = choose_evidence(f)
    assert text == "Ada Lovelace, born in London" + LONG and masked.startswith("Ada Lovelace, born in [MASK]")
    assert n == 2
    assert choose_evidence(Fact("u", "X", "Y", "P19", ["X and [MASK]."])) is None


def test_make_unit_matches_lama_ckl_form():
    rels = read_relations()
    f = Fact("u1", "Manuel Roxas", "governor", "P39", [])
    masked = "under Manuel Roxas the first [MASK] of the bank" + LONG
    u = make_unit(f, rels["P39"], masked.replace("[MASK]", "governor"), masked)
    assert u["task_descriptive"] == "Manuel Roxas has the position of governor ."
    assert u["task_schematic"] == ("Guess the object. \n  subject is Manuel Roxas , relation is position held , "
                                   "object is governor")
    assert u["position"] == masked.index("[MASK]") / len(masked) and u["evidence_length"] == len(u["evidence"])
    assert u["invariant"] is False and make_unit(f, rels["P19"], "x", "[MASK]")["invariant"] is True


def test_relations_file_needs_labels(tmp_path):
    trig = tmp_path / "relations.jsonl"
    trig.write_text(json.dumps({"relation": "P19", "template": "[X] slideshow hometown [Y] ."}) + "\n")
    with pytest.raises(InputError) as e:
        read_relations(trig)
    assert e.value.line == 1 and e.value.field == "label" and "AutoPrompt" in str(e.value)
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps({"relation": "P19", "template": "[X] was born in [Y] .", "label": "place of birth"})
                    + "\n" + json.dumps({"relation": "P20", "template": "[X] died", "label": "place of death"}) + "\n")
    with pytest.raises(InputError) as e:
        read_relations(good)
    assert e.value.line == 2 and e.value.field == "template"


def test_split_is_disjoint_by_subject():
    units = [{"uuid": f"u{i}", "subject": f"S{i % 7}"} for i in range(40)]
    train, val = split_by_subject(units, 10, seed=3)
    assert len(train) + len(val) == 40 and len(val) >= 10
    assert not {u["subject"] for u in train} & {u["subject"] for u in val}
    assert split_by_subject(units, 10, seed=3) == (train, val)


# descriptive / schematic scores the stub gives each uuid
PLAN = {"a": (0.0, 0.0), "b": (0.0, 0.25), "c": (0.5, 0.0), "d": (0.0, 1.0), "e": (0.0, 0.0), "f": (0.0, 0.0),
        "g": (0.0, 0.0), "x": (0.0, 0.0)}


class Stub:
    def __init__(self):
        self.probes = 0

    def __call__(self, model, tokenizer, probes, batch_size=16, padding_side="right", encoded=None,
                 progress=None):
        self.probes += len(probes)
        per = [ProbeScore(p.id, PLAN[p.id][1 if p.text.startswith("Guess") else 0], 1.0, 1) for p in probes]
        return EvalResult(0.0, 0.0, len(per), per)


def write_trex(folder):
    folder.mkdir()
    rows = {
        "P19": [fact("a", "Ann Ash", "Paris", "P19", ["Ann Ash was born in [MASK]" + LONG]),
                fact("b", "Bob Birch", "Rome", "P19", ["Bob Birch was born in [MASK]" + LONG]),
                fact("c", "Cy Cole", "Oslo", "P19", ["Cy Cole was born in [MASK]" + LONG]),
                fact("d", "Di Dunn", "Lima", "P19", ["Di Dunn was born in [MASK]" + LONG]),
                fact("x", "Xu Xi", "Kyiv", "P19", ["Xu Xi was born in [MASK]" + LONG]),  # a LAMA-ckl unit
                fact("n", "No Name", "Bern", "P19", ["short [MASK]"])],                  # no evidence
        "P39": [fact("e", "Ann Ash", "mayor", "P39", ["Ann Ash served as [MASK]" + LONG]),
                fact("f", "Fay Fox", "senator", "P39", ["Fay Fox served as [MASK]" + LONG]),
                fact("g", "Gus Gray", "judge", "P39", ["Gus Gray served as [MASK]" + LONG])],
    }
    for pid, facts in rows.items():
        (folder / f"{pid}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in facts))
    return folder


def test_build_pool(tmp_path, monkeypatch, model_dir):
    stub = Stub()
    monkeypatch.setattr(tailor_mod, "evaluate_probes", stub)
    trex = write_trex(tmp_path / "trex")
    lama = tmp_path / "lama.jsonl"
    lama.write_text(json.dumps({"uuid": "x", "evidence": "e"}) + "\n")
    out = tmp_path / "pool"
    res = build_pool(trex, out, PoolConfig(exclude=[str(lama)], model=str(model_dir), n_val=2, seed=0),
                     options=QUIET)
    train = [json.loads(l) for l in (out / "train.jsonl").read_text().splitlines()]
    val = [json.loads(l) for l in (out / "val.jsonl").read_text().splitlines()]
    kept = {u["uuid"] for u in train + val}
    assert kept == {"a", "b", "e", "f", "g"}  # c, d score ≥ 0.5 in a format; x excluded; n no evidence
    assert not {u["subject"] for u in train} & {u["subject"] for u in val} and len(val) >= 2
    assert {u["uuid"] for u in train if u["subject"] == "Ann Ash"} in (set(), {"a", "e"})  # subject kept whole
    c = res.counts
    assert (c["facts"], c["excluded_lama_ckl"], c["no_qualifying_evidence"], c["candidates"]) == (9, 1, 1, 7)
    assert (c["kept"], c["variant_kept"], c["invariant_kept"]) == (5, 3, 2)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["by_relation"]["P39"]["kept"] == 3 and summary["by_relation"]["P39"]["variant"] is True
    assert summary["val_subjects_in_train"] == 0 and "CC BY-NC 4.0" in summary["licence"]
    assert stub.probes == 14

    # rerun: every score from the cache; a cap of 1 per relation keeps the first kept fact of each
    stub.probes = 0
    res = build_pool(trex, out, PoolConfig(exclude=[str(lama)], model=str(model_dir), n_val=0, per_relation_cap=1),
                     options=QUIET)
    assert stub.probes == 0
    train = [json.loads(l)["uuid"] for l in (out / "train.jsonl").read_text().splitlines()]
    assert train == ["a", "e"] and res.counts["capped"] == 3


def test_cli_pool_bad_relations_exit_2(tmp_path, capsys, model_dir):
    trex = write_trex(tmp_path / "trex")
    rel = tmp_path / "rel.jsonl"
    rel.write_text(json.dumps({"relation": "P19", "template": "[X] hometown [Y] ."}) + "\n")
    out = tmp_path / "pool"
    code = main(["data", "pool", str(trex), "--out", str(out), "--relations", str(rel), "--model", str(model_dir)])
    err = capsys.readouterr().err
    assert code == 2 and "rel.jsonl, line 1, field 'label'" in err and not out.exists()


class InventedStub(Stub):
    """Scores invented copies: 0, except the first-round copy of ``fail_once`` (redrawn)."""

    def __init__(self, fail_once: str):
        super().__init__()
        self.fail_once, self.seen = fail_once, []

    def __call__(self, model, tokenizer, probes, batch_size=16, padding_side="right", encoded=None,
                 progress=None):
        if not probes[0].id.endswith("-inv"):
            return super().__call__(model, tokenizer, probes, batch_size, padding_side, encoded, progress)
        where = probes[0].source  # "invented-rN.jsonl:LINE": the round's cache file
        self.seen.append(where)
        first = where.startswith("invented-r1")
        per = [ProbeScore(p.id, 1.0 if first and p.id == f"{self.fail_once}-inv" else 0.0, 1.0, 1) for p in probes]
        return EvalResult(0.0, 0.0, len(per), per)


def test_build_pool_with_invented_copies(tmp_path, monkeypatch, model_dir):
    stub = InventedStub(fail_once="a")
    monkeypatch.setattr(tailor_mod, "evaluate_probes", stub)
    trex = write_trex(tmp_path / "trex")
    out = tmp_path / "pool"
    res = build_pool(trex, out, PoolConfig(model=str(model_dir), n_val=2, seed=0, invent=1.0),
                     options=QUIET)
    rows = lambda name: [json.loads(l) for l in (out / f"{name}.jsonl").read_text().splitlines()]  # noqa: E731
    train, val, inv_val = rows("train"), rows("val"), rows("val_invented")
    real = [u for u in train if "invented" not in u]
    inv_train = [u for u in train if "invented" in u]
    # every kept fact has one copy, on its original's side of the split (disjoint by original subject)
    assert sorted(u["invented"]["from"] for u in inv_train) == sorted(u["uuid"] for u in real)
    assert sorted(u["invented"]["from"] for u in inv_val) == sorted(u["uuid"] for u in val)
    for u in inv_train + inv_val:
        orig = u["invented"]
        assert orig["subject"] not in u["evidence"] and u["subject"] in u["evidence"] and u["object"] in u["evidence"]
        assert u["task_descriptive"].endswith(f"{u['object']} .")
    names = [u[k] for u in inv_train + inv_val for k in ("subject", "object")]
    assert len(set(names)) == len(names)  # never the same invented name twice
    c = res.summary["invented"]["counts"]
    assert c["passed_round_1"] == len(names) // 2 - 1 and c["passed_round_2"] == 1 and c["rejected_by_score"] == 0
    assert any(d.startswith("invented-r2") for d in stub.seen)  # a's copy failed and was drawn again
    with pytest.raises(Exception, match="invent"):
        build_pool(trex, tmp_path / "p2", PoolConfig(model=str(model_dir), invent=1.5), options=QUIET)
