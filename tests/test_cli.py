"""End-to-end CLI runs on a tiny local model folder (no download)."""

import html as html_mod
import json
import re
import subprocess
import sys

import pytest

from taalm.cli import main


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_help_is_light():
    """`taalm --help` must not import torch (it has to start instantly)."""
    code = ("import sys; from taalm.cli import build_parser; build_parser().format_help(); "
            "print('torch' in sys.modules, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"
    res = subprocess.run([sys.executable, "-m", "taalm", "--help"], capture_output=True, text=True)
    assert res.returncode == 0 and "learn" in res.stdout and "weights" in res.stdout


def test_no_third_party_noise_after_import_taalm():
    """bitsandbytes' 'Failed to load CPU gemm_4bit_forward' line (peft imports it where it is
    installed) is silenced once taalm is imported, as in the README's snippets."""
    pytest.importorskip("bitsandbytes")
    code = "import taalm; from peft import PeftModel; import bitsandbytes; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok" and "gemm_4bit" not in out.stderr and "Failed to load" not in out.stderr


def test_learn_eval_weights_end_to_end(tmp_path, capsys, model_dir, docs_file, probes_file):
    out = tmp_path / "run"
    code, stdout, err = run(capsys, "learn", docs_file, "--probes", probes_file, "--method", "oracle",
                            "--out", out, "--quiet", f"model.name={model_dir}", "train.epochs=2",
                            "train.lr=1e-2", "theta.lora.r=4")
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    last = summary["history"][-1]
    assert f"after epoch 2: learned {last['accuracy']:.3f} (exact {last['exact']:.3f})" in stdout
    assert summary["method"] == "oracle" and [r["epoch"] for r in summary["history"]] == [0, 1, 2]  # every epoch

    code, stdout, err = run(capsys, "eval", "--model", model_dir, "--adapter", out, "--probes", probes_file,
                            "--quiet", "--json", tmp_path / "e.json")
    assert code == 0, err
    got = json.loads(stdout.strip().splitlines()[-1])
    assert got["accuracy"] == pytest.approx(summary["after"]["accuracy"])  # the saved adapter is the learned θ
    assert got["nll"] == pytest.approx(summary["after"]["nll"], rel=1e-5)
    assert len(json.loads((tmp_path / "e.json").read_text())["per_probe"]) == 3

    html = tmp_path / "w.html"
    code, stdout, err = run(capsys, "weights", docs_file, "--method", "oracle", "--html", html, "--plain",
                            f"model.name={model_dir}")
    assert code == 0, err
    page = html.read_text()
    assert page.startswith("<!doctype html>") and "title='1.0000'" in page and "title='0.0000'" in page
    text = html_mod.unescape(re.sub(r"<[^>]+>", "", page))
    assert "The Varnholt Observatory stands above the town of Kestrelford ." in text
    assert "1.000" in stdout and "0.000" in stdout


def test_resume_via_cli(tmp_path, capsys, model_dir, docs_file):
    out = tmp_path / "run"
    args = ["learn", docs_file, "--out", out, "--quiet", f"model.name={model_dir}", "train.keep_checkpoints=true",
            "train.epochs=1"]
    assert run(capsys, *args)[0] == 0
    code, _, err = run(capsys, *args)
    assert code == 2 and "--resume" in err
    code, _, err = run(capsys, *args[:-1], "train.epochs=2", "--resume")
    assert code == 0, err
    assert json.loads((out / "summary.json").read_text())["steps"] == 2


@pytest.mark.parametrize("content,extra,expected", [
    ('{"text": "a"}\n{"text": 1\n', [], "docs.jsonl, line 2: invalid JSON"),
    ('{"text": "no answer"}\n', ["--method", "oracle"], "docs.jsonl, line 1, field 'answer': method 'oracle' needs"),
    ('{"text": "ok"}\n', ["--method", "magic"], "unknown weighting method 'magic'"),
    ('{"text": "ok"}\n', ["train.learning_rate=1"], "unknown configuration key 'train.learning_rate'"),
    ('', [], "docs.jsonl: file is empty"),
])
def test_bad_input_exit_code_and_nothing_written(tmp_path, capsys, content, extra, expected):
    docs = tmp_path / "docs.jsonl"
    docs.write_text(content)
    code, _, err = run(capsys, "learn", docs, "--out", tmp_path / "out", *extra)
    assert code == 2
    assert expected in err and err.count("\n") == 1  # one line
    assert not (tmp_path / "out").exists()


def test_bad_probe_file(tmp_path, capsys, docs_file):
    probes = tmp_path / "p.jsonl"
    probes.write_bytes(b'{"prompt": "x", "answer": "y"}\n{"prompt": "caf\xe9"}\n')
    code, _, err = run(capsys, "learn", docs_file, "--probes", probes, "--out", tmp_path / "out")
    assert code == 2 and "p.jsonl, line 2: not valid UTF-8" in err
    assert not (tmp_path / "out").exists()


def test_help_texts_are_clean_for_a_pip_user(capsys):
    """No example line runs two commands together, every command's override example is a key it
    accepts, and no help cites the repository's spec or ../shared paths a pip user lacks."""
    import re

    from taalm.cli import build_parser
    from taalm.core.config import load_config
    from taalm.meta.config import MetaTrainConfig
    from taalm.ckl.config import LearnConfig

    parser = build_parser()
    top = parser.format_help()
    commands = [line.split("#")[0] for line in top.splitlines()]  # comments may name a command
    assert all(c.count("taalm ") <= 1 for c in commands) and not re.search(r"\S {6,}\S+=", top)
    subs = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices
    for name, sub in subs.items():
        text = sub.format_help()
        assert "SPEC" not in text and "../shared" not in text, name
        example = re.search(r"e\.g\. ((?:\S+=\S+ ?)+) \(all keys", " ".join(text.split()))
        if example and name in ("learn", "weights", "demo", "config", "train-attention"):
            schema = MetaTrainConfig if name == "train-attention" else LearnConfig
            load_config(schema, None, example.group(1).split())  # the suggested keys exist
