"""Stream benchmarks (taalm.bench.stream, `taalm bench stream NAME`): the matrix metrics by hand,
lama-ckl-stream and temporalwiki end to end on tiny models and fixture files in the official
formats, resume at a period boundary, and the refusals."""

from __future__ import annotations

import csv
import json
import shutil

import pytest
import torch

from conftest import make_llama
from test_bench import FACTS, QUIET, cli, unit, write_units
from taalm.bench.stream import STREAM_BENCHMARKS, resolve_stream_config, run_stream, stream_metrics
from taalm.bench.stream.temporalwiki import keep_passage, read_diffset, schematic_text
from taalm.core.errors import ConfigError, InputError, TaalmError

TINY = ["theta.lora.r=4", "train.lr=5e-3"]


# --------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------
def test_stream_metrics_on_a_hand_made_matrix():
    R = [[0.0, 0.1, 0.0],   # θ0
         [0.6, 0.2, 0.0],   # after period 1
         [0.4, 0.7, 0.1],   # after period 2
         [0.3, 0.5, 0.8]]   # after period 3
    m = stream_metrics(R)
    assert m["learning"] == [0.6, 0.7, 0.8]
    assert m["gain"] == pytest.approx([0.6, 0.5, 0.7])  # R[j+1][j] - R[j][j]
    assert m["forgetting"] == pytest.approx([0.3, 0.2])  # 0.6-0.3, 0.7-0.5
    assert m["bwt"] == pytest.approx(-0.25) and m["mean_forgetting"] == pytest.approx(0.25)
    assert m["fwt"] == pytest.approx(((0.2 - 0.1) + (0.1 - 0.0)) / 2)
    assert m["final_acc"] == pytest.approx(1.6 / 3)
    assert m["seen_acc"] == pytest.approx([0.6, 0.55, 1.6 / 3])
    with pytest.raises(ValueError):
        stream_metrics([[0.1, 0.2], [0.3]])


def test_registered_streams_and_sizes():
    assert {"lama-ckl-stream", "temporalwiki"} <= set(STREAM_BENCHMARKS.names())
    _, cfg = resolve_stream_config("lama-ckl-stream", "cpu")
    assert (cfg.stream.periods, cfg.stream.n_units, cfg.train.epochs) == (4, 200, 6)
    _, cfg = resolve_stream_config("temporalwiki", "paper")
    assert cfg.train.epochs == 1 and cfg.stream.min_chars == 50 and cfg.stream.min_letters == 0.3
    with pytest.raises(ConfigError, match="unknown size 'huge'"):
        resolve_stream_config("lama-ckl-stream", "huge")
    with pytest.raises(ConfigError, match="stream.period"):
        resolve_stream_config("lama-ckl-stream", "smoke", ["stream.period=3"])
    with pytest.raises(ConfigError, match="unknown stream benchmark 'nope'"):
        resolve_stream_config("nope", "smoke")


# --------------------------------------------------------------------------------------------
# lama-ckl-stream
# --------------------------------------------------------------------------------------------
@pytest.fixture
def tailored8(tmp_path):
    d = tmp_path / "tailored"
    d.mkdir()
    facts = FACTS + [("Orvell", "founder", "Mara Quint", "Orvell was founded by Mara Quint .")]
    write_units(d / "to_learn.jsonl", [unit(i, *f) for i, f in enumerate(facts)])
    write_units(d / "not_to_forget_descriptive.jsonl", [unit(10 + i, *f) for i, f in enumerate(FACTS[4:])])
    return d


def _matrix(out, method):
    return json.loads((out / method / "result.json").read_text())


def test_lama_ckl_stream_end_to_end_and_resume_at_a_period_boundary(tmp_path, tailored8, tokenizer):
    model = make_llama(len(tokenizer))
    before = {n: p.clone() for n, p in model.state_dict().items()}
    out = tmp_path / "s"
    ov = [f"stream.data={tailored8}", "stream.periods=3", "stream.n_units=6"] + TINY
    res = run_stream("lama-ckl-stream", ["finetune", "oracle"], out, "smoke", ov, theta0=(model, tokenizer), **QUIET)
    assert all(torch.equal(before[n], p) for n, p in model.state_dict().items())  # θ0 untouched
    for f in ("stream.json", "summary.json", "results.md", "matrix.png", "curves.png"):
        assert (out / f).is_file(), f
    assert (out / "matrix.png").read_bytes()[:4] == b"\x89PNG"
    rec = json.loads((out / "stream.json").read_text())
    periods = rec["inputs"]["to_learn"]["periods"]
    ids = [i for p in periods for i in p]
    assert sorted(ids) == sorted(f"u{i}" for i in range(6)) and [len(p) for p in periods] == [2, 2, 2]
    r = {m: _matrix(out, m) for m in ("finetune", "oracle")}
    for m, x in r.items():
        R = x["sets"]["to_learn"]["accuracy"]
        assert len(R) == 4 and all(len(row) == 3 for row in R)
        assert x["metrics"] == stream_metrics(R) == res["methods"][m]["metrics"]
        assert [q["after_period"] for q in x["nf"]["nf"]] == [0, 1, 2, 3]
        for i in range(1, 4):  # the diagonal = the learner's last evaluation of that period
            hist = json.loads((out / m / f"period-{i:02d}" / "run" / "summary.json").read_text())["history"]
            assert R[i][i - 1] == pytest.approx(hist[-1]["accuracy"])
            assert x["nf"]["nf"][i]["accuracy"] == pytest.approx(hist[-1]["nf"]["accuracy"])
        assert x["sets"]["to_learn"]["perplexity"][1][0] == pytest.approx(
            torch.tensor(x["sets"]["to_learn"]["nll"][1][0]).exp().item(), rel=1e-6)
    assert r["finetune"]["sets"]["to_learn"]["accuracy"][0] == r["oracle"]["sets"]["to_learn"]["accuracy"][0]
    t1 = (out / "finetune" / "period-01" / "theta.safetensors").read_bytes()
    assert r["finetune"]["sets"]["to_learn"]["accuracy"][1] != r["finetune"]["sets"]["to_learn"]["accuracy"][0] \
        or r["finetune"]["sets"]["to_learn"]["nll"][1] != r["finetune"]["sets"]["to_learn"]["nll"][0]
    assert "| finetune |" in res["table"] and "forgetting" in res["table"]

    # killed after period 1: θ is rebuilt from period 1's tensors and periods 2-3 give the same numbers
    for p in ("result.json", "scores/row-02.json", "scores/row-03.json"):
        (out / "finetune" / p).unlink()
    shutil.rmtree(out / "finetune" / "period-02")
    shutil.rmtree(out / "finetune" / "period-03")
    run_stream("lama-ckl-stream", ["finetune"], out, "smoke", ov, theta0=(model, tokenizer), **QUIET)
    again = _matrix(out, "finetune")
    assert (out / "finetune" / "period-01" / "theta.safetensors").read_bytes() == t1
    for key in ("accuracy", "nll"):
        a, b = again["sets"]["to_learn"][key], r["finetune"]["sets"]["to_learn"][key]
        assert torch.allclose(torch.tensor(a), torch.tensor(b), atol=1e-5)
    assert again["sessions"] == 2
    # another configuration in the same folder: refused before anything runs
    with pytest.raises(TaalmError, match="stream.periods differs"):
        run_stream("lama-ckl-stream", ["finetune"], out, "smoke", ov[:1] + ["stream.periods=2", "stream.n_units=6"] + TINY,
                   theta0=(model, tokenizer), **QUIET)


def test_lama_ckl_stream_bad_periods_and_missing_data(tmp_path, tailored8, tokenizer):
    with pytest.raises(ConfigError, match="stream.periods must be between 1 and the 4 units"):
        run_stream("lama-ckl-stream", ["finetune"], tmp_path / "o", "smoke", [f"stream.data={tailored8}", "stream.periods=5"])
    with pytest.raises(ConfigError, match="--data DIR"):
        run_stream("lama-ckl-stream", ["finetune"], tmp_path / "o", "smoke")
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------------------------
# TemporalWiki: fixture files in the official formats
# --------------------------------------------------------------------------------------------
PASSAGES = [f"The {f[0]} entry was revised in this month's snapshot; {f[3]}" for f in FACTS]


@pytest.fixture
def twiki(tmp_path):
    """Probes (JSONL for two periods, CSV for one) and diff sets (the official CSV with a `text`
    column, one JSONL), with rows the release's filter drops."""
    probes = tmp_path / "tw" / "probes"
    probes.mkdir(parents=True)
    diffs = tmp_path / "diffs"
    diffs.mkdir()
    for k, (p, code) in enumerate((("0901-1001", "0910"), ("1001-1101", "1011"), ("1101-1201", "1112"))):
        changed = [{"subject": s, "relation": r, "object": o} for s, r, o, _ in FACTS[k:k + 3]]
        unchanged = [{"subject": s, "relation": r, "object": o} for s, r, o, _ in FACTS[4:]]
        for name, rows in (("changed", changed), ("unchanged", unchanged)):
            if k == 2:
                with open(probes / f"{p}_{name}.csv", "w", newline="") as fh:
                    w = csv.DictWriter(fh, ["subject", "relation", "object"])
                    w.writeheader()
                    w.writerows(rows)
            else:
                write_units(probes / f"{p}_{name}.jsonl", rows)
        texts = PASSAGES[k:k + 3] + ["too short", "| 12 || 34 || 56 || 78 || 90 || 12 || 34 || 56 || 78 || 90 |"]
        if k == 1:
            write_units(diffs / f"wikipedia_{code}_gpt2.jsonl", [{"text": t} for t in texts])
        else:
            with open(diffs / f"wikipedia_{code}_gpt2.csv", "w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(["text"])
                w.writerows([[t.replace("; ", ";\n")] for t in texts])  # quoted multi-line fields
    return tmp_path / "tw", diffs


def test_release_filter_and_schematic_text(twiki):
    assert keep_passage("x" * 50) and not keep_passage("x" * 49)
    assert not keep_passage("1" * 60 + "abc") and keep_passage("a" * 30 + "1" * 70)
    assert not keep_passage("a" * 29 + "1" * 71) and not keep_passage("  " + "x" * 48 + "   ")  # stripped first
    assert keep_passage("short but fine", min_chars=5, min_letters=0.5)
    docs, n = read_diffset(twiki[1] / "wikipedia_0910_gpt2.csv", "0910", 50, 0.3)
    assert n == 5 and len(docs) == 3 and "\n" in docs[0].text and docs[0].id == "0910:2"
    assert schematic_text("Wales", "official language", "Welsh") == \
        "Guess the object. \n  subject is Wales , relation is official language , object is Welsh"


def test_temporalwiki_end_to_end_on_fixture_diff_sets(tmp_path, twiki, tokenizer):
    data, diffs = twiki
    model = make_llama(len(tokenizer))
    out = tmp_path / "tw-out"
    ov = [f"stream.data={data}", f"stream.diffsets={diffs}", "stream.max_probes=0"] + TINY
    res = run_stream("temporalwiki", ["finetune"], out, "smoke", ov, theta0=(model, tokenizer), **QUIET)
    r = _matrix(out, "finetune")
    assert r["periods"] == ["0901-1001", "1001-1101", "1101-1201"] and r["primary"] == "changed"
    assert set(r["sets"]) == {"changed", "unchanged"} and r["sets"]["changed"]["n"] == [3, 3, 3]
    assert len(r["sets"]["unchanged"]["perplexity"]) == 4 and r["nf"] == {}
    info = json.loads((out / "stream.json").read_text())["inputs"]["periods"]
    assert [info[p]["diffset"]["documents"] for p in r["periods"]] == [3, 3, 3]
    assert [info[p]["diffset"]["rows"] for p in r["periods"]] == [5, 5, 5]
    assert res["methods"]["finetune"]["metrics"] == stream_metrics(r["sets"]["changed"]["accuracy"])
    assert "`unchanged` probes" in (out / "results.md").read_text()


def test_temporalwiki_refusals_say_what_to_pass(tmp_path, capsys, twiki):
    data, diffs = twiki
    out = tmp_path / "o"
    code, _, err = cli(capsys, "bench", "stream", "temporalwiki", "--data", data, "--methods", "finetune", "--out", out)
    assert code == 2 and "stream.diffsets=DIR" in err and "TWiki_Diffsets" in err and err.count("\n") == 1
    (diffs / "wikipedia_1011_gpt2.jsonl").unlink()
    code, _, err = cli(capsys, "bench", "stream", "temporalwiki", "--data", data, "--diffsets", diffs,
                       "--methods", "finetune", "--out", out)
    assert code == 2 and "no diff set file for 1011" in err and err.count("\n") == 1
    bad = diffs / "wikipedia_1011_gpt2.jsonl"
    bad.write_text(json.dumps({"body": "x" * 80}) + "\n")
    code, _, err = cli(capsys, "bench", "stream", "temporalwiki", "--data", data, "--diffsets", diffs,
                       "--methods", "finetune", "--out", out)
    assert code == 2 and "wikipedia_1011_gpt2.jsonl, line 1" in err and "no `text` column" in err
    code, _, err = cli(capsys, "bench", "stream", "--data", data, "--methods", "finetune", "--out", out)
    assert code == 2 and "name the stream" in err and "lama-ckl-stream" in err
    assert not out.exists()


def test_cli_stream_end_to_end(tmp_path, capsys, tailored8, model_dir):
    out = tmp_path / "cli"
    code, stdout, err = cli(capsys, "bench", "stream", "lama-ckl-stream", "--data", tailored8, "--size", "smoke",
                            "--methods", "oracle", "--out", out, "--quiet", f"model.name={model_dir}",
                            "theta.lora.r=4", "train.epochs=1")
    assert code == 0, err
    assert "| oracle |" in stdout and "forgetting" in stdout
    r = _matrix(out, "oracle")
    assert r["config"]["train"]["epochs"] == 1 and len(r["sets"]["to_learn"]["accuracy"]) == 3


def test_report_reads_stream_folders(tmp_path, tailored8, tokenizer):
    from taalm.reporting.report import write_report

    model = make_llama(len(tokenizer))
    out = tmp_path / "s"
    run_stream("lama-ckl-stream", ["oracle"], out, "smoke", [f"stream.data={tailored8}", "train.epochs=1"] + TINY,
               theta0=(model, tokenizer), **QUIET)
    text = write_report([out], tmp_path / "rep")
    r = json.loads((out / "oracle" / "result.json").read_text())
    assert "## Streams" in text and f"| s | oracle | {r['metrics']['mean_learning']:.3f} |" in text
    assert (tmp_path / "rep" / "stream_matrix.png").read_bytes()[:4] == b"\x89PNG"
    (out / "oracle" / "result.json").write_text(json.dumps({**r, "sets": {"to_learn": {"accuracy": [[0.1]]}}}))
    with pytest.raises(InputError, match="not a stream result"):
        write_report([out], tmp_path / "rep2")


def _shipped_probes():
    """The TemporalWiki probes beside the repository (../shared/data/temporalwiki) or at $TAALM_TEMPORALWIKI."""
    import os
    from pathlib import Path

    here = Path(__file__).resolve().parents[2]
    for cand in (os.environ.get("TAALM_TEMPORALWIKI"), here.parent / "shared" / "data" / "temporalwiki"):
        if cand and (Path(cand) / "probes" / "0901-1001_changed.jsonl").is_file():
            return Path(cand)
    return None


@pytest.mark.skipif(_shipped_probes() is None, reason="the shipped TemporalWiki probes are not beside the repository")
def test_temporalwiki_on_the_shipped_probes_with_fixture_diff_sets(tmp_path, twiki, tokenizer):
    data = _shipped_probes()
    from taalm.bench.stream.temporalwiki import TemporalWiki

    _, cfg = resolve_stream_config("temporalwiki", "paper", [f"stream.data={data}", f"stream.diffsets={twiki[1]}"])
    full = TemporalWiki().load(cfg)  # every shipped probe, as it is
    assert [len(p.probes["changed"]) for p in full.periods] == [1732, 1108, 1701]
    assert [len(p.probes["unchanged"]) for p in full.periods] == [7090, 7063, 7043]
    p0 = full.periods[0].probes["changed"][0]
    assert p0.text.startswith("Guess the object. \n  subject is The Witches of Eastwick , relation is character role")
    assert p0.text[p0.answer_start:] == "devil" == p0.answer
    model = make_llama(len(tokenizer))
    out = tmp_path / "o"
    run_stream("temporalwiki", ["finetune"], out, "smoke", [f"stream.data={data}", f"stream.diffsets={twiki[1]}"] + TINY,
               theta0=(model, tokenizer), **QUIET)
    r = _matrix(out, "finetune")
    assert r["sets"]["changed"]["n"] == [4, 4, 4] and len(r["sets"]["changed"]["accuracy"]) == 4


# --------------------------------------------------------------------------------------------
# A new stream is one registered class with its own options; lama-ckl-stream on two unit files
# --------------------------------------------------------------------------------------------
def test_a_new_stream_benchmark_is_one_registered_class(tmp_path, tailored8, tokenizer, capsys, model_dir):
    from dataclasses import dataclass

    from taalm.bench.stream import StreamBenchmark, StreamData, StreamOptions, Period, stream_flags, stream_option
    from taalm.bench.stream.base import require_data_folder
    from taalm.data import read_documents, read_probes

    @dataclass
    class EchoOptions(StreamOptions):
        """echo-test's options."""

        per_period: int = stream_option(2, "units per period", flag="--per-period")

        def _rules(self, r) -> None:
            r.at_least("per_period", 1)

    class EchoStream(StreamBenchmark):
        """The tailored units, ``stream.per_period`` per period, in file order."""

        sizes = {"smoke": ("tiny", ["train.epochs=1", "train.batch_size=2", "eval.batch_size=8"])}

        def load(self, cfg):
            path = require_data_folder(cfg, "a tailored folder") / "to_learn.jsonl"
            docs, probes = read_documents(path), read_probes(path, cfg.data.probe_field)
            k = cfg.stream.per_period
            periods = [Period(f"q{i // k + 1}", docs[i:i + k], {"to_learn": probes[i:i + k]})
                       for i in range(0, len(docs), k)]
            return StreamData(periods, "to_learn", {}, {"n": len(docs), "per_period": k})

    STREAM_BENCHMARKS.register("echo-test", config=EchoOptions)(EchoStream)
    try:
        assert stream_flags("echo-test") == {"--data": "stream.data", "--per-period": "stream.per_period"}
        _, cfg = resolve_stream_config("echo-test", "smoke", ["stream.per_period=3"])
        assert cfg.stream.per_period == 3 and not hasattr(cfg.stream, "diffsets")
        with pytest.raises(ConfigError, match="stream.per_period=0: must be >= 1"):  # its own rules
            resolve_stream_config("echo-test", "smoke", ["stream.per_period=0"])
        with pytest.raises(ConfigError, match="unknown configuration key 'stream.diffsets'"):  # not its option
            resolve_stream_config("echo-test", "smoke", ["stream.diffsets=x"])
        with pytest.raises(ConfigError, match="unknown configuration key 'stream.per_period'"):  # only its own
            resolve_stream_config("temporalwiki", "smoke", ["stream.per_period=3"])
        model = make_llama(len(tokenizer))
        out = tmp_path / "echo"
        run_stream("echo-test", ["finetune"], out, "smoke", [f"stream.data={tailored8}", "stream.per_period=2"] + TINY,
                   theta0=(model, tokenizer), **QUIET)
        r = _matrix(out, "finetune")
        assert r["periods"] == ["q1", "q2", "q3", "q4"] and len(r["sets"]["to_learn"]["accuracy"]) == 5
        assert r["config"]["stream"]["per_period"] == 2
        # its flag, declared on its option, works on the command line; another stream's flag does not
        code, stdout, err = cli(capsys, "bench", "stream", "echo-test", "--data", tailored8, "--per-period", "4",
                                "--methods", "oracle", "--out", tmp_path / "echo-cli", "--quiet",
                                f"model.name={model_dir}", "theta.lora.r=4")
        assert code == 0, err
        assert _matrix(tmp_path / "echo-cli", "oracle")["periods"] == ["q1", "q2"]
        code, _, err = cli(capsys, "bench", "stream", "echo-test", "--data", tailored8, "--diffsets", tmp_path,
                           "--methods", "oracle", "--out", tmp_path / "echo-x")
        assert code == 2 and "stream echo-test does not take --diffsets" in err and "--per-period" in err
        from taalm.bench.stream import AllStreamsConfig

        from taalm.core.config import field_help
        assert field_help(AllStreamsConfig.__dataclass_fields__["stream"].type)["per_period"] == \
            "echo-test: units per period"
    finally:
        STREAM_BENCHMARKS._parts.pop("echo-test", None)
        STREAM_BENCHMARKS._configs.pop("echo-test", None)


def test_a_stream_file_dropped_into_the_package_registers_itself(tmp_path):
    import subprocess
    import sys
    import textwrap
    from pathlib import Path

    src = Path(__file__).resolve().parents[2] / "src" / "taalm"
    pkg = tmp_path / "pkg"
    shutil.copytree(src, pkg / "taalm", ignore=shutil.ignore_patterns("__pycache__", "phi_default"))
    (pkg / "taalm" / "bench" / "stream" / "dropped.py").write_text(textwrap.dedent('''
        from dataclasses import dataclass

        from .base import STREAM_BENCHMARKS, StreamBenchmark, StreamOptions, stream_option


        @dataclass
        class DroppedOptions(StreamOptions):
            """dropped's options."""

            months: int = stream_option(12, "months", flag="--months")


        @STREAM_BENCHMARKS.register("dropped", config=DroppedOptions)
        class Dropped(StreamBenchmark):
            """A stream that is one file."""

            sizes = {"smoke": ("tiny", [])}
        '''))
    script = ("from taalm.bench.stream import STREAM_BENCHMARKS, stream_flags, resolve_stream_config\n"
              "print(STREAM_BENCHMARKS.names(), stream_flags('dropped'),"
              " resolve_stream_config('dropped', 'smoke', ['stream.months=3'])[1].stream.months)")
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       env={"PYTHONPATH": str(pkg), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip() == ("['dropped', 'lama-ckl-stream', 'temporalwiki'] "
                                "{'--data': 'stream.data', '--months': 'stream.months'} 3")


def test_lama_ckl_stream_on_two_unit_files(tmp_path, capsys, tailored8, model_dir):
    """--to-learn FILE --nf FILE, as `taalm bench lama-ckl` takes them: no tailor folder needed."""
    files = tmp_path / "elsewhere"
    files.mkdir()
    shutil.copy(tailored8 / "to_learn.jsonl", files / "tl.jsonl")
    shutil.copy(tailored8 / "not_to_forget_descriptive.jsonl", files / "keep.jsonl")
    common = ["--size", "smoke", "--methods", "oracle", "--quiet", f"model.name={model_dir}", "theta.lora.r=4",
              "train.epochs=1"]
    code, stdout, err = cli(capsys, "bench", "stream", "lama-ckl-stream", "--to-learn", files / "tl.jsonl",
                            "--nf", files / "keep.jsonl", "--out", tmp_path / "files", *common)
    assert code == 0, err
    assert "| oracle |" in stdout
    code, _, err = cli(capsys, "bench", "stream", "lama-ckl-stream", "--data", tailored8, "--out", tmp_path / "dir",
                       *common)
    assert code == 0, err
    by_files, by_dir = _matrix(tmp_path / "files", "oracle"), _matrix(tmp_path / "dir", "oracle")
    assert by_files["inputs"]["to_learn"]["path"] == str((files / "tl.jsonl").resolve())
    for key in ("accuracy", "nll"):  # the same units: the same numbers
        assert torch.allclose(torch.tensor(by_files["sets"]["to_learn"][key]),
                              torch.tensor(by_dir["sets"]["to_learn"][key]), atol=1e-5)
    assert [a["accuracy"] for a in by_files["nf"]["nf"]] == pytest.approx([b["accuracy"] for b in by_dir["nf"]["nf"]])

    code, _, err = cli(capsys, "bench", "stream", "lama-ckl-stream", "--to-learn", files / "tl.jsonl",
                       "--out", tmp_path / "o", *common)
    assert code == 2 and "--to-learn FILE --nf FILE" in err
    code, _, err = cli(capsys, "bench", "stream", "lama-ckl-stream", "--to-learn", files / "tl.jsonl",
                       "--nf", files / "keep.jsonl", "--data", tailored8, "--out", tmp_path / "o", *common)
    assert code == 2 and "not both" in err
    code, _, err = cli(capsys, "bench", "stream", "temporalwiki", "--to-learn", files / "tl.jsonl",
                       "--nf", files / "keep.jsonl", "--out", tmp_path / "o", *common)
    assert code == 2 and "stream temporalwiki does not take --to-learn" in err
    assert not (tmp_path / "o").exists()


def test_a_folder_written_before_each_stream_had_its_own_options_is_reused(tmp_path, tailored8, tokenizer):
    """stream.json of an older taalm records every stream's keys (min_chars, ...): not compared."""
    model = make_llama(len(tokenizer))
    out = tmp_path / "s"
    ov = [f"stream.data={tailored8}", "train.epochs=1"] + TINY
    run_stream("lama-ckl-stream", ["oracle"], out, "smoke", ov, theta0=(model, tokenizer), **QUIET)
    rec = json.loads((out / "stream.json").read_text())
    rec["config"]["stream"].update({"min_chars": 50, "min_letters": 0.3, "max_documents": 0, "max_probes": 0})
    (out / "stream.json").write_text(json.dumps(rec))
    logs: list[str] = []
    from taalm.core.run import RunOptions

    run_stream("lama-ckl-stream", ["oracle"], out, "smoke", ov, theta0=(model, tokenizer),
               options=RunOptions(progress=False, log=logs.append))
    assert any("done already" in line for line in logs)
    with pytest.raises(TaalmError, match="stream.n_units differs"):  # a key of this stream is still compared
        run_stream("lama-ckl-stream", ["oracle"], out, "smoke", ov + ["stream.n_units=2"], theta0=(model, tokenizer),
                   **QUIET)
