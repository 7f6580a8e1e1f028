"""Run safety, round 3 (issue 37): symlinks planted in taalm's own folders are never followed,
the temporary files of interrupted writes are taalm's own, the model cache verifies content and
cleans up its unfinished folders, every reader validates what it reads, and user strings reach
the terminal escaped. The user's files are hashed before and after."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from taalm.cli import main

from test_run_lifecycle import tree_digest


def one_line_exit_2(capsys, argv, expected: str) -> str:
    code = main([str(a) for a in argv])
    _, err = capsys.readouterr()
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith(("learning ", "loading ", "tailor: "))]
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert expected in lines[0], lines[0]
    return lines[0]


def user_folder(path):
    """A user's folder of files with names taalm might write."""
    path.mkdir()
    for name in ("epoch-0001.jsonl", "epoch-0002.jsonl", "variant.descriptive.jsonl", "notes.txt"):
        (path / name).write_text(f"the user's {name}\n")
    return path


@pytest.fixture
def learn_args(model_dir, docs_file, probes_file):
    return ["learn", docs_file, "--probes", probes_file, "--quiet", f"model.name={model_dir}",
            "train.epochs=1", "train.lr=1e-2", "theta.lora.r=4"]


# --------------------------------------------------------------------------------------------
# FIX 1: symlinks inside taalm's folders
# --------------------------------------------------------------------------------------------
def test_a_symlinked_eval_folder_is_refused_on_resume_and_overwrite(learn_args, tmp_path, capsys):
    out = tmp_path / "run"
    assert main([str(a) for a in learn_args + ["--out", out]]) == 0
    capsys.readouterr()
    mine = user_folder(tmp_path / "mine")
    if (out / "eval").exists():
        for f in (out / "eval").iterdir():
            f.unlink()
        (out / "eval").rmdir()
    (out / "eval").symlink_to(mine)
    before = tree_digest(mine)
    one_line_exit_2(capsys, learn_args + ["--out", out, "--resume", "train.epochs=2"], f"{out / 'eval'}: a symlink")
    one_line_exit_2(capsys, learn_args + ["--out", out, "--overwrite"], "a symlink inside a folder taalm made")
    assert tree_digest(mine) == before and (out / "eval").is_symlink()


def test_a_symlinked_score_cache_is_refused_on_a_retailor(tmp_path, capsys, model_dir):
    from test_tailor import write_lama

    data = write_lama(tmp_path / "lama")
    out = tmp_path / "out"
    argv = ["data", "tailor", "--model", model_dir, "--data", data, "--out", out, "--quiet"]
    assert main([str(a) for a in argv]) == 0
    capsys.readouterr()
    mine = user_folder(tmp_path / "mine")
    (mine / "meta.json").write_text('{"model_spec": "other"}')
    for f in (out / "scores").iterdir():
        f.unlink()
    (out / "scores").rmdir()
    (out / "scores").symlink_to(mine)
    before = tree_digest(mine)
    one_line_exit_2(capsys, argv, f"{out / 'scores'}: a symlink")
    one_line_exit_2(capsys, argv + ["--overwrite"], f"{out / 'scores'}: a symlink")
    assert tree_digest(mine) == before


def test_a_symlink_in_a_benchmark_folder_is_refused(tmp_path):
    from taalm.core.errors import TaalmError
    from taalm.core.run import Run

    bench = tmp_path / "bench"
    (bench / "finetune").mkdir(parents=True)
    (bench / "bench.json").write_text("{}")
    mine = user_folder(tmp_path / "mine")
    (bench / "finetune" / "run").symlink_to(mine)
    with pytest.raises(TaalmError, match="a symlink inside a folder taalm made"):
        with Run(bench, folder_rule="none", log=lambda m: None, progress=False):
            pass
    assert not (tmp_path / ".bench.taalm-lock").exists()


# --------------------------------------------------------------------------------------------
# FIX 2: the temporary files of an interrupted atomic write are taalm's
# --------------------------------------------------------------------------------------------
def test_interrupted_writes_are_ours_on_overwrite_and_resume(learn_args, tmp_path, capsys, monkeypatch):
    from taalm.core import checkpoint
    from taalm.core.runfolder import interrupted_write

    assert interrupted_write(".run.json.k2j_9a0z.tmp", {"run.json"})
    assert not interrupted_write(".notes.txt.k2j_9a0z.tmp", {"run.json"})
    assert not interrupted_write(".run.json.tmp") and not interrupted_write("run.json.k2j_9a0z.tmp")
    out = tmp_path / "run"
    save = checkpoint.Checkpointer.save

    def killed(self, *a, **k):
        raise KeyboardInterrupt  # as a kill arrives, mid-way through writing files

    monkeypatch.setattr(checkpoint.Checkpointer, "save", killed)
    assert main([str(a) for a in learn_args + ["--out", out, "train.epochs=2"]]) == 130
    monkeypatch.setattr(checkpoint.Checkpointer, "save", save)
    (out / ".metrics.jsonl.ab12cd34.tmp").write_text('{"half": ')  # the temporary files of interrupted writes
    (out / "checkpoints").mkdir(exist_ok=True)
    (out / "checkpoints" / ".latest.json.zz99yy88.tmp").write_text("{")
    assert main([str(a) for a in learn_args + ["--out", out, "--resume", "train.epochs=2"]]) == 0
    assert not list(out.rglob("*.tmp"))
    (out / ".metrics.jsonl.ab12cd34.tmp").write_text("{")
    assert main([str(a) for a in learn_args + ["--out", out, "--overwrite"]]) == 0
    assert not list(out.rglob("*.tmp"))
    capsys.readouterr()
    (out / ".notes.txt.ab12cd34.tmp").write_text("the user's")  # not a file taalm writes: foreign
    one_line_exit_2(capsys, learn_args + ["--out", out, "--overwrite"], "holds .notes.txt.ab12cd34.tmp")
    assert (out / ".notes.txt.ab12cd34.tmp").read_text() == "the user's"


def test_interrupted_writes_in_a_tailor_folder_and_a_stream_folder(tmp_path, capsys, model_dir):
    from test_tailor import write_lama

    from taalm.bench.folders import check_out_dir

    data = write_lama(tmp_path / "lama")
    out = tmp_path / "out"
    argv = ["data", "tailor", "--model", model_dir, "--data", data, "--out", out, "--quiet"]
    assert main([str(a) for a in argv]) == 0
    (out / ".summary.json.ab12cd34.tmp").write_text("{")
    (out / "scores" / ".meta.json.ab12cd34.tmp").write_text("{")
    assert main([str(a) for a in argv]) == 0  # continued: its own leftovers removed
    assert not list(out.rglob("*.tmp"))
    (out / ".to_learn.jsonl.ab12cd34.tmp").write_text("{")
    assert main([str(a) for a in argv + ["--overwrite"]]) == 0
    assert not list(out.rglob("*.tmp"))
    stream = tmp_path / "stream"
    stream.mkdir()
    (stream / ".stream.json.ab12cd34.tmp").write_text("{")  # killed while writing its marker
    check_out_dir(stream, {"benchmark": "stream"}, marker="stream.json")  # not refused
    (stream / "mine.txt").write_text("x")
    with pytest.raises(Exception, match="not a benchmark folder"):
        check_out_dir(stream, {"benchmark": "stream"}, marker="stream.json")


def test_a_benchmark_folder_loses_only_its_own_interrupted_writes(tmp_path):
    from taalm.bench.folders import remove_own_interrupted_writes

    out = tmp_path / "bench"
    (out / "finetune" / "period-01" / "run").mkdir(parents=True)
    ours = [out / ".stream.json.ab12cd34.tmp", out / "finetune" / ".result.json.ab12cd34.tmp",
            out / "finetune" / "period-01" / ".theta.safetensors.ab12cd34.tmp",
            out / "finetune" / "period-01" / "run" / ".metrics.jsonl.ab12cd34.tmp"]
    theirs = [out / ".notes.txt.ab12cd34.tmp", out / "finetune" / "results.tmp", out / "finetune" / ".x.tmp"]
    for f in ours + theirs:
        f.write_text("{")
    remove_own_interrupted_writes(out, ("stream.json", "summary.json"), ["finetune"])
    assert [f.exists() for f in ours] == [False] * 4 and all(f.read_text() == "{" for f in theirs)


# --------------------------------------------------------------------------------------------
# FIX 3 (and FIX 1 for the cache): content checksums, unfinished folders, symlinks
# --------------------------------------------------------------------------------------------
from test_model_cache import cache  # noqa: E402,F401 - the fixture: an empty model cache in tmp_path


def _cached(tmp_path, cache):
    from test_model_cache import cache_folder, fake_gguf

    path = fake_gguf(tmp_path / "venv")
    return path, cache_folder(cache, path, {"config.json": b"{}", "model.safetensors": b"w" * 4096})


def test_zeroed_bytes_in_cached_weights_are_found(tmp_path, cache, monkeypatch):
    from taalm.models import loading
    from taalm.models.loading import ModelSource, cache_folder_state, gguf_cache

    path, d = _cached(tmp_path, cache)
    src = ModelSource("m", str(path.parent), path.name, "gguf")
    assert gguf_cache(src).location == str(d)
    with open(d / "model.safetensors", "r+b") as f:  # the same size, 1 KiB zeroed
        f.seek(1024)
        f.write(b"\0" * 1024)
    assert cache_folder_state(d, verify=False) == "usable"  # sizes alone do not see it
    calls = []
    monkeypatch.setattr(loading, "_write_gguf_cache", lambda *a, **k: calls.append(k) or a[4])
    gguf_cache(src)
    assert calls == [{"replace": True}]


def test_a_verified_copy_is_remembered(tmp_path, cache):
    from taalm.models.loading import CACHE_MANIFEST, cache_folder_state

    _, d = _cached(tmp_path, cache)
    os.utime(d / "model.safetensors", ns=(1, 1))  # copied: another mtime, the same content
    assert cache_folder_state(d) == "usable"
    assert json.loads((d / CACHE_MANIFEST).read_text())["files"]["model.safetensors"]["mtime_ns"] == 1


def test_a_manifest_without_checksums_is_rebuilt(tmp_path, cache):
    from taalm.models.loading import CACHE_MANIFEST, cache_folder_state

    _, d = _cached(tmp_path, cache)
    m = json.loads((d / CACHE_MANIFEST).read_text())
    m["files"] = {n: r["bytes"] for n, r in m["files"].items()}  # an older taalm's manifest
    (d / CACHE_MANIFEST).write_text(json.dumps(m))
    assert cache_folder_state(d) == "damaged"


def test_unfinished_cache_folders_are_listed_and_cleared(tmp_path, cache, capsys):
    _, d = _cached(tmp_path, cache)
    dead = cache / f".{d.name}.x1y2z3w4"  # a killed write (an older taalm: no pid)
    (dead / "model").mkdir(parents=True)
    (dead / "model" / "model.safetensors").write_bytes(b"w" * 2048)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = cache / f".{d.name}.{sleeper.pid}-a1b2c3d4"  # being written by a live process
        live.mkdir()
        hidden = cache / ".my-notes"
        hidden.mkdir()
        (hidden / "n.txt").write_text("mine")
        assert main(["cache"]) == 0
        out = capsys.readouterr().out
        assert "(unfinished)" in out and "(writing)" in out and ".my-notes" not in out
        assert main(["cache", "--clear"]) == 0
        assert not dead.exists() and not d.exists() and live.is_dir() and (hidden / "n.txt").read_text() == "mine"
    finally:
        sleeper.kill()
        sleeper.wait()


def test_cache_clear_never_follows_symlinks(tmp_path, cache, capsys):
    from test_model_cache import cache_folder, fake_gguf

    path = fake_gguf(tmp_path / "venv")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = cache_folder(elsewhere, path)  # looks like a cache entry, but not in the cache
    before = tree_digest(elsewhere)
    (cache / "m-0123456789abcdef").symlink_to(target)  # an entry that is a link
    one_line_exit_2(capsys, ["cache", "--clear"], "a symlink in the model cache")
    assert tree_digest(elsewhere) == before
    (cache / "m-0123456789abcdef").unlink()
    cache.rmdir()
    cache.symlink_to(elsewhere)  # the cache folder itself is a link
    one_line_exit_2(capsys, ["cache", "--clear"], "the model cache folder is a symlink")
    assert tree_digest(elsewhere) == before and target.is_dir()


# --------------------------------------------------------------------------------------------
# FIX 4: every reader validates what it reads
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, content, expected", [
    ("docs.jsonl", '{"text": "Paris is in France ."}\n{"text": "bad \\ud800 text"}\n',
     "docs.jsonl, line 2, field 'text': holds a lone surrogate escape (\\ud800 at character 5)"),
    ("docs.json", '[{"text": "Paris is in France ."},\n {"text": "ok", "id": "\\udc01"}]\n',
     "docs.json, line 2, field 'id': holds a lone surrogate escape"),
])
def test_lone_surrogates_are_refused_with_file_line_and_field(tmp_path, capsys, model_dir, name, content, expected):
    docs = tmp_path / name
    docs.write_text(content)
    before = tree_digest(tmp_path)
    one_line_exit_2(capsys, ["learn", docs, f"model.name={model_dir}", "--out", tmp_path / "out", "--quiet"], expected)
    assert tree_digest(tmp_path) == before


def test_fifos_are_refused_up_front(tmp_path, capsys, model_dir, learn_args):
    from taalm.bench.stream.temporalwiki import read_diffset
    from taalm.core.errors import InputError

    fifo = tmp_path / "fifo.jsonl"
    os.mkfifo(fifo)  # opening it to read would wait for a writer for ever
    one_line_exit_2(capsys, ["learn", fifo, f"model.name={model_dir}", "--out", tmp_path / "out", "--quiet"],
                    "fifo.jsonl: not a regular file (a FIFO, device or socket)")
    csv_fifo = tmp_path / "wikipedia_0910.csv"
    os.mkfifo(csv_fifo)
    with pytest.raises(InputError, match="not a regular file"):
        read_diffset(csv_fifo, "0910", 50, 0.3)
    os.mkfifo(tmp_path / ".run.taalm-lock")  # planted as the run lock
    one_line_exit_2(capsys, learn_args + ["--out", tmp_path / "run"], "the run lock of")
    assert not (tmp_path / "out").exists() and not (tmp_path / "run").exists()


def test_a_stray_quote_in_a_diff_set_is_refused(tmp_path):
    from taalm.bench.stream.temporalwiki import read_diffset
    from taalm.core.errors import InputError

    passage = "The observatory above Kestrelford was rebuilt in stone after the storm of that winter."
    good = tmp_path / "wikipedia_0910.csv"
    good.write_text(f'id,text\n1,"{passage}\nwith a second line"\n2,{passage}\n')
    docs, n = read_diffset(good, "0910", 50, 0.3)
    assert n == 2 and len(docs) == 2
    bad = tmp_path / "wikipedia_1011.csv"
    bad.write_text(f'id,text\n1,{passage}\n2,"{passage}\n3,{passage} "quoted" end\n4,{passage}\n')
    with pytest.raises(InputError, match=r"wikipedia_1011.csv, line 3: not valid CSV .*stray quote"):
        read_diffset(bad, "1011", 50, 0.3)
    commas = tmp_path / "wikipedia_1112.csv"
    commas.write_text(f"id,text\n1,{passage}, and more\n")
    with pytest.raises(InputError, match="line 2: 3 fields, the header has 2"):
        read_diffset(commas, "1112", 50, 0.3)


def _stream_folder(path, result):
    path.mkdir()
    (path / "stream.json").write_text(json.dumps({"benchmark": "stream", "stream": "lama-ckl-stream"}))
    (path / "finetune").mkdir()
    (path / "finetune" / "result.json").write_text(json.dumps(result))
    return path


def _stream_result():
    from taalm.bench.stream import stream_metrics

    R = [[0.0, 0.0], [0.5, 0.1], [0.4, 0.6]]
    return {"periods": ["p1", "p2"], "primary": "to_learn", "sets": {"to_learn": {"accuracy": R}},
            "metrics": stream_metrics(R), "nf": {"nf": [{"after_period": i, "accuracy": a} for i, a in enumerate((0.9, 0.8, 0.7))]},
            "wall_s": 60.0}


def _with(change):
    r = _stream_result()
    change(r)
    return r


STREAM_REPORT_CASES = {
    "empty metrics": (lambda r: r.update(metrics={}), "metrics.mean_learning is missing"),
    "string metrics": (lambda r: r.update(metrics="good"), "'metrics' is not an object"),
    "null metrics": (lambda r: r.update(metrics=None), "'metrics' is not an object"),
    "short metrics": (lambda r: r["metrics"].pop("final_acc"), "metrics.final_acc is missing"),
    "short seen_acc": (lambda r: r["metrics"]["seen_acc"].pop(), "metrics.seen_acc is not 2 accuracies"),
    "string metric": (lambda r: r["metrics"].update(bwt="high"), "metrics.bwt = 'high' is not a finite number"),
    "huge accuracy": (lambda r: r["sets"]["to_learn"]["accuracy"][1].__setitem__(0, 1e308),
                      "accuracy[1][0] = 1e+308 is not an accuracy"),
    "short matrix": (lambda r: r["sets"]["to_learn"]["accuracy"].pop(), "is not a 3 x 2 matrix"),
    "null nf row": (lambda r: r["nf"]["nf"].__setitem__(0, None), "'nf' is not an object of lists"),
}


@pytest.mark.parametrize("case", list(STREAM_REPORT_CASES))
def test_report_on_odd_stream_results(tmp_path, capsys, case):
    change, expected = STREAM_REPORT_CASES[case]
    stream = _stream_folder(tmp_path / "stream", _with(change))
    before = tree_digest(tmp_path)
    one_line_exit_2(capsys, ["report", stream, "--out", tmp_path / "report"], expected)
    assert tree_digest(tmp_path) == before and not (tmp_path / "report").exists()  # no run.json left behind


def test_report_refuses_a_nan_accuracy_and_renders_a_good_result(tmp_path, capsys):
    good = _stream_folder(tmp_path / "good", _stream_result())
    assert main(["report", str(good), "--out", str(tmp_path / "r1")]) == 0
    assert "| finetune | 0.550 |" in capsys.readouterr().out
    text = (good / "finetune" / "result.json").read_text().replace("0.4,", "NaN,", 1)
    (good / "finetune" / "result.json").write_text(text)  # json.loads reads a bare NaN
    one_line_exit_2(capsys, ["report", good, "--out", tmp_path / "r2"], "= nan is not an accuracy")


def test_a_damaged_stream_folder_is_one_line_on_rerun(tmp_path, capsys, tokenizer):
    import shutil

    from conftest import make_llama
    from test_bench import FACTS, QUIET, unit, write_units

    from taalm.bench.stream import run_stream
    from taalm.core.errors import TaalmError

    data = tmp_path / "tailored"
    data.mkdir()
    write_units(data / "to_learn.jsonl", [unit(i, *f) for i, f in enumerate(FACTS[:4])])
    write_units(data / "not_to_forget_descriptive.jsonl", [unit(10 + i, *f) for i, f in enumerate(FACTS[4:])])
    model = make_llama(len(tokenizer))
    out = tmp_path / "s"
    ov = [f"stream.data={data}", "stream.periods=2", "stream.n_units=4", "theta.lora.r=4", "train.lr=5e-3"]
    run = lambda: run_stream("lama-ckl-stream", ["finetune"], out, "smoke", ov, theta0=(model, tokenizer), **QUIET)  # noqa: E731
    run()
    m = out / "finetune"
    good = tmp_path / "good"
    shutil.copytree(m, good)
    result = json.loads((m / "result.json").read_text())
    del result["metrics"]["bwt"]
    (m / "result.json").write_text(json.dumps(result))
    with pytest.raises(TaalmError, match=r"result.json: not a result the benchmark wrote \(metrics.bwt is missing\)"):
        run()
    (m / "result.json").unlink()
    row = json.loads((m / "scores" / "row-01.json").read_text())
    row["sets"]["to_learn"] = row["sets"]["to_learn"][:1]  # one period's score where there are two
    (m / "scores" / "row-01.json").write_text(json.dumps(row))
    with pytest.raises(TaalmError, match=r"row-01.json: not a score row .*sets.to_learn is not 2 scores"):
        run()
    shutil.copy(good / "scores" / "row-01.json", m / "scores" / "row-01.json")
    (m / "scores" / "row-02.json").unlink()
    theta = m / "period-01" / "theta.safetensors"
    theta.write_bytes(theta.read_bytes()[:100])  # truncated
    with pytest.raises(TaalmError, match=r"theta.safetensors: damaged"):
        run()


# --------------------------------------------------------------------------------------------
# FIX 5, FIX 6 and the stream ranges
# --------------------------------------------------------------------------------------------
def test_a_yaml_alias_bomb_on_the_command_line_is_refused_at_once(tmp_path, capsys, docs_file, model_dir):
    bomb = ("x={a: &a [x, x, x, x, x, x, x, x, x], b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a], "
            "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b], d: [*c, *c, *c, *c, *c, *c, *c, *c, *c]}")
    before = tree_digest(tmp_path)
    one_line_exit_2(capsys, ["learn", docs_file, f"model.name={model_dir}", "--out", tmp_path / "out", bomb],
                    "YAML anchors and aliases (&name, *name) are not allowed in a key=value override")
    one_line_exit_2(capsys, ["config", "--for", "bench-stream", "stream.periods=-1"], "stream.periods=-1: must be >= 1")
    assert tree_digest(tmp_path) == before


def test_data_limit_stops_reading(tmp_path):
    from taalm.data import read_documents, read_probes

    docs = tmp_path / "docs.jsonl"
    docs.write_text('{"text": "one ."}\n{"text": "two ."}\n' + "{not json\n" * 3)
    assert [d.text for d in read_documents(docs, limit=2)] == ["one .", "two ."]  # the broken rest is not read
    txt = tmp_path / "docs.txt"
    txt.write_bytes(b"one .\n\ntwo .\n\n\xff\xfe not UTF-8\n")
    assert [d.text for d in read_documents(txt, limit=2)] == ["one .", "two ."]
    probes = tmp_path / "probes.jsonl"
    probes.write_text('{"prompt": "Paris is in", "answer": "France"}\n{"broken\n')
    assert len(read_probes(probes, limit=1)) == 1
    from taalm.core.errors import InputError

    with pytest.raises(InputError, match="docs.jsonl, line 3: invalid JSON"):
        read_documents(docs)


# --------------------------------------------------------------------------------------------
# FIX 7: user strings reach the terminal escaped
# --------------------------------------------------------------------------------------------
def test_terminal_escapes_in_user_data_are_shown_escaped(tmp_path, capsys, model_dir):
    from taalm.core.errors import printable

    assert printable("a\x1b[2Jb\x07\u202e\x9b") == "a\\x1b[2Jb\\x07\\u202e\\x9b"
    assert printable("two\nlines\tand tab", one_line=True) == "two\\nlines\\tand tab"
    assert printable("Kestrelford, café ✓\n") == "Kestrelford, café ✓\n"
    docs = tmp_path / "docs.jsonl"
    docs.write_text(json.dumps({"id": "doc\x1b[2J\x1b]0;owned\x07", "text": "Paris is in France ."}) + "\n")
    assert main(["weights", str(docs), "--method", "finetune", "--plain", f"model.name={model_dir}"]) == 0
    out, err = capsys.readouterr()
    assert "\x1b" not in out and "\x07" not in out and "document doc\\x1b[2J\\x1b]0;owned\\x07" in out
    evil = tmp_path / "evil\x1b[31m.jsonl"
    code = main(["learn", str(evil), f"model.name={model_dir}", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "\x1b" not in err and "evil\\x1b[31m.jsonl: file not found" in err


def test_a_lone_surrogate_in_a_recipe_or_override_names_the_key(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text('train:\n  lr: 1.0e-3\nmodel:\n  name: "x\\ud800"\n')
    before = tree_digest(tmp_path)
    one_line_exit_2(capsys, ["config", "--config", recipe], "r.yaml, line 4: 'model.name' holds a lone surrogate")
    one_line_exit_2(capsys, ["config", 'model.name="x\\udc00"'], "command line: 'model.name' holds a lone surrogate")
    assert tree_digest(tmp_path) == before


@pytest.mark.parametrize("accuracy, expected", [("NaN", "'accuracy' is not a number"),
                                                ("1e308", "'accuracy' = 1e+308 is not an accuracy (in [0, 1])")])
def test_report_on_a_learn_run_with_an_odd_accuracy(tmp_path, capsys, accuracy, expected):
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"schema": "taalm.run/1", "status": "complete"}))
    (run / "summary.json").write_text('{"history": [{"epoch": 0, "accuracy": %s, "nll": 1.0}]}' % accuracy)
    before = tree_digest(tmp_path)
    one_line_exit_2(capsys, ["report", run, "--out", tmp_path / "report"], f"history, row 1: {expected}")
    assert tree_digest(tmp_path) == before
