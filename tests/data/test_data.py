import json

import pytest

from conftest import LAMA_DIR
from taalm.data import (encode_document, encode_probe, make_probe, read_documents, read_probes,
                        split_windows)
from taalm.core.errors import InputError


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_txt_blocks(tmp_path):
    p = write(tmp_path / "d.txt", "First doc line one.\nline two.\n\n\n  \nSecond doc.\n")
    docs = read_documents(p)
    assert [d.text for d in docs] == ["First doc line one.\nline two.", "Second doc."]
    assert docs[1].source.endswith(":6")
    assert docs[0].answer is None


def test_jsonl_documents_and_answers(docs_file):
    docs = read_documents(docs_file)
    assert len(docs) == 3 and docs[0].answer == "Kestrelford"
    assert docs[0].text[docs[0].answer_start:].startswith("Kestrelford")
    assert read_documents(docs_file, limit=2)[-1].id == "b"


def test_lama_units(tmp_path):
    unit = {"uuid": "u1", "subject": "Wales", "object": "Welsh", "relation_label": "official language",
            "evidence": "Welsh is spoken in Wales, where Welsh is official.",
            "task_descriptive": "The official language of Wales is Welsh .",
            "task_schematic": "Guess the object. \n  subject is Wales , relation is official language , object is Welsh"}
    p = write(tmp_path / "u.jsonl", json.dumps(unit) + "\n")
    (doc,) = read_documents(p)
    assert doc.answer == "Welsh" and doc.answer_start == unit["evidence"].rfind("Welsh") and doc.id == "u1"
    (pd,) = read_probes(p)
    assert pd.text == unit["task_descriptive"] and pd.answer_start == pd.text.rfind("Welsh")
    (ps,) = read_probes(p, "task_schematic")
    assert ps.text.endswith("object is Welsh")


@pytest.mark.skipif(not LAMA_DIR.is_dir(), reason="shared LAMA-ckl data not present")
def test_real_lama_files_read():
    docs = read_documents(LAMA_DIR / "variant.jsonl")
    probes = read_probes(LAMA_DIR / "invariant_schematic.jsonl", "task_schematic")
    assert len(docs) == 400 and len(probes) == 500


def test_probe_answer_appended_or_in_place():
    p = make_probe("The capital of Sennet is", "Ilvara")
    assert p.text == "The capital of Sennet is Ilvara" and p.answer_start == 25
    q = make_probe("Ilvara: the capital of Sennet is Ilvara .", "Ilvara")
    assert q.answer_start == q.text.rfind("Ilvara") > 0  # the last occurrence is scored


def test_answer_tokens_cover_answer(tokenizer, docs_file):
    for doc in read_documents(docs_file):
        enc = encode_document(tokenizer, doc)
        covered = "".join(doc.text[s:e] for s, e in (enc.offsets[i] for i in enc.span))
        assert doc.answer in covered and len(covered) <= len(doc.answer) + 1  # + a leading space
    enc = encode_probe(tokenizer, make_probe("The capital of Sennet is", "Ilvara"))
    assert tokenizer.decode([enc.input_ids[i] for i in enc.span]).strip() == "Ilvara"


@pytest.mark.parametrize("n,L,s", [(5, 8, 2), (8, 8, 2), (9, 8, 2), (50, 8, 3), (50, 8, 0), (101, 16, 15)])
def test_sliding_windows_train_every_token_once(n, L, s):
    ids = list(range(100, 100 + n))
    wins = split_windows(0, ids, L, s)
    trained, targets = [], []
    for w in wins:
        assert len(w.input_ids) <= L
        assert w.input_ids == ids[w.start:w.start + len(w.input_ids)]
        trained += [w.start + t for t, m in enumerate(w.loss_mask) if m]
        # what the loss really trains: loss mask AND target mask (a window's first token has
        # nothing before it in the window, so it is never a target)
        targets += [w.start + t for t, m in enumerate(w.loss_mask) if m and t >= 1]
    assert sorted(trained) == list(range(n))  # never truncated, nothing twice
    assert sorted(targets) == list(range(1, n))  # every token but the first is a target exactly once
    for a, b in zip(wins, wins[1:]):  # consecutive windows share max(s, 1) tokens of context
        assert a.start + len(a.input_ids) - b.start == max(s, 1)
    with pytest.raises(ValueError):
        split_windows(0, ids, 8, 8)


# ---- bad input: one clear message naming file, line and field ----------------------------------
def test_bad_inputs_name_file_line_field(tmp_path):
    cases = {
        "empty.jsonl": (b"\n  \n", read_documents, "empty.jsonl: file is empty"),
        "badjson.jsonl": (b'{"text": "ok"}\n{"text": oops}\n', read_documents, "badjson.jsonl, line 2: invalid JSON"),
        "missing.jsonl": (b'{"text": "ok"}\n{"txt": "x"}\n', read_documents, "missing.jsonl, line 2, field 'text': missing field"),
        "latin1.txt": ("ok\n\ncaf\xe9\n".encode("latin-1"), read_documents, "latin1.txt, line 3: not valid UTF-8"),
        "noans.jsonl": (b'{"text": "Paris is nice", "answer": "Rome"}\n', read_documents,
                        "noans.jsonl, line 1, field 'answer': answer 'Rome' does not occur"),
        "probe_missing.jsonl": (b'{"prompt": "x is"}\n', read_probes, "probe_missing.jsonl, line 1, field 'answer': missing"),
        "lama_probe.jsonl": (json.dumps({"evidence": "e", "object": "Welsh", "task_descriptive": "Wales speaks English ."}).encode() + b"\n",
                             read_probes, "lama_probe.jsonl, line 1, field 'task_descriptive': answer 'Welsh'"),
        "wrongtype.jsonl": (b'{"text": 3}\n', read_documents, "wrongtype.jsonl, line 1, field 'text': must be a string"),
        "array.jsonl": (b"[1, 2]\n", read_documents, "array.jsonl, line 1: expected JSON Lines (one object per line); this file holds a JSON array"),
        "number.jsonl": (b"7\n", read_documents, "number.jsonl, line 1: each line must be a JSON object"),
    }
    for name, (content, reader, expected) in cases.items():
        p = tmp_path / name
        p.write_bytes(content)
        with pytest.raises(InputError) as e:
            reader(p)
        assert expected in str(e.value), (name, str(e.value))
    with pytest.raises(InputError, match="file not found"):
        read_documents(tmp_path / "nope.jsonl")
    with pytest.raises(InputError, match="unknown document format"):
        read_documents(write(tmp_path / "d.csv", "a,b\n"))


@pytest.mark.parametrize("text,answer,expected", [
    ("Paris is big. Parisians love it", "Paris", 0),  # not inside "Parisians"
    ("Parisian food, not Paris.", "Paris", 19),
    ("He speaks Welsh and Welsh.", "Welsh", 20),  # repeated: the last occurrence
    ("x (Paris).", "Paris", 3),
    ("Parisian", "Paris", 0),  # no bounded occurrence: the last one at all
    ("nothing here", "Paris", -1),
])
def test_answers_are_found_on_word_boundaries(text, answer, expected):
    from taalm.data import find_answer

    assert find_answer(text, answer) == expected


def test_document_answer_is_not_a_substring_of_a_longer_word(tmp_path):
    p = write(tmp_path / "d.jsonl", json.dumps({"text": "Paris hosts the Parisian games.", "answer": "Paris"}) + "\n")
    assert read_documents(p)[0].answer_start == 0
    assert make_probe("The Parisian capital is Paris", "Paris").answer_start == 24


def test_json_arrays_are_read_with_line_numbers(tmp_path):
    from taalm.data import read_pairs

    d = tmp_path / "docs.json"
    d.write_text('[\n  {"text": "Kestrelford lies north .", "answer": "Kestrelford"},\n'
                 '  {"text": "Orvish is spoken here .", "id": "b"}\n]\n')
    docs = read_documents(d)
    assert [x.text for x in docs] == ["Kestrelford lies north .", "Orvish is spoken here ."]
    assert docs[0].answer == "Kestrelford" and docs[1].id == "b" and docs[1].source.endswith("docs.json:3")
    p = tmp_path / "probes.json"
    p.write_text('[{"prompt": "The capital is", "answer": "Ilvara"}]')
    assert read_probes(p)[0].text == "The capital is Ilvara"
    q = tmp_path / "pairs.json"
    q.write_text('[{"document": "A B C .", "task": "B is", "answer": "C"}]')
    assert read_pairs(q)[0].task.answer == "C"
    d.write_text('[\n  {"text": "ok"},\n  {"txt": "typo"}\n]')
    with pytest.raises(InputError, match=r"docs.json, line 3, field 'text': missing field \(fields present: txt\)"):
        read_documents(d)


def test_parquet_and_dataset_folders_with_a_text_field(tmp_path, model_dir, capsys):
    """Hugging Face ``datasets`` inputs: a Parquet file, a ``save_to_disk`` folder (a Dataset, a
    one-split DatasetDict; several splits are refused, naming them), with ``data.text_field``;
    the same precise errors (row numbers stand for lines)."""
    datasets = pytest.importorskip("datasets", reason="the datasets extra is not installed")
    from taalm.cli import main

    rows = {"content": ["Varnholt stands above Kestrelford .", "Quellmere islanders speak Orvish ."],
            "answer": ["Kestrelford", "Orvish"]}
    ds = datasets.Dataset.from_dict(rows)
    ds.to_parquet(str(tmp_path / "docs.parquet"))
    ds.save_to_disk(str(tmp_path / "ds"))
    datasets.DatasetDict({"train": ds}).save_to_disk(str(tmp_path / "dd1"))
    datasets.DatasetDict({"train": ds, "test": ds}).save_to_disk(str(tmp_path / "dd2"))
    for src in ("docs.parquet", "ds", "dd1"):
        docs = read_documents(tmp_path / src, text_field="content")
        assert [d.text for d in docs] == rows["content"] and [d.answer for d in docs] == rows["answer"], src
    with pytest.raises(InputError, match="holds the splits train, test"):
        read_documents(tmp_path / "dd2", text_field="content")
    with pytest.raises(InputError, match=r"docs.parquet, line 1, field 'text': missing field \(fields present: answer, content\)"):
        read_documents(tmp_path / "docs.parquet")
    datasets.Dataset.from_dict({"prompt": ["The capital of Sennet is"], "answer": ["Ilvara"]}).to_parquet(
        str(tmp_path / "probes.parquet"))
    assert read_probes(tmp_path / "probes.parquet")[0].answer == "Ilvara"
    out = tmp_path / "run"
    assert main(["learn", str(tmp_path / "docs.parquet"), "--text-field", "content", "--probes",
                 str(tmp_path / "probes.parquet"), "--out", str(out), "--quiet", f"model.name={model_dir}",
                 "train.epochs=1", "model.device=cpu"]) == 0
    assert (out / "config.yaml").read_text().count("text_field: content") == 1
