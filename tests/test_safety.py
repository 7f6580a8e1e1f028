"""Never lose a user's data (issue 10): every bad input gets one line, exit 2 and no folder;
--overwrite only replaces taalm runs; a NaN guard; locking; verified resume; safe JSON."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest
import torch

from taalm.cli import main
from taalm.core.run import QUIET


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith(("learning ", "loading ", "epoch ", "note: "))]
    assert len(lines) == 1, err  # one line, no traceback
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def learn_args(model_dir, docs_file, probes_file):
    return ["learn", docs_file, "--probes", probes_file, "--quiet", f"model.name={model_dir}",
            "train.epochs=1", "train.lr=1e-2", "theta.lora.r=4", "eval.every_epoch=false"]


# --------------------------------------------------------------------------------------------
# The matrix: bad input -> its message, exit 2, no output folder
# --------------------------------------------------------------------------------------------
LEARN_CASES = {
    "lr nan": (["train.lr=nan"], "train.lr=nan: must be a finite number > 0"),
    "lr inf": (["train.lr=inf"], "train.lr=inf: must be a finite number > 0"),
    "betas": (["train.betas=[2,3]"], "train.betas=[2.0, 3.0]: must be two numbers in [0, 1)"),
    "max_length 1": (["train.max_length=1"], "train.max_length=1: must be >= 2"),
    "stride >= max_length": (["train.max_length=64", "train.stride=64"], "train.stride=64: must be below train.max_length=64"),
    "padding side": (["eval.padding_side=middle"], "eval.padding_side='middle': use one of right, left"),
    "eval batch 0": (["eval.batch_size=0"], "eval.batch_size=0: must be >= 1"),
    "grad norm -1": (["train.max_grad_norm=-1"], "train.max_grad_norm=-1.0: must be a finite number >= 0"),
    "batch tokens -5": (["train.batch_tokens=-5"], "train.batch_tokens=-5: must be >= 0"),
    "checkpoint_every 0": (["train.checkpoint_every=0"], "train.checkpoint_every=0: must be >= 1"),
    "random mean 2": (["--method", "random", "method.random.mean=2"], "method.random.mean=2.0: must be a finite number > 0 and < 1"),
    "context length": (["train.max_length=5000"], "train.max_length=5000: longer than the model's context length 1024"),
    "unknown method": (["--method", "magic"], "unknown"),
    "unknown theta form": (["theta.mode=half"], "unknown θ form 'half' (available: full, kadapter, lora, qlora)"),
    "unknown method part": (["--method", "finetune+turbo"], "method.name=finetune+turbo: 'turbo' is no method part"),
    "unknown optimizer": (["train.optimizer=lion"], "unknown optimizer 'lion' (available: adamw, recadam)"),
}


@pytest.mark.parametrize("case", sorted(LEARN_CASES))
def test_bad_learn_input_matrix(case, learn_args, tmp_path, capsys):
    extra, expected = LEARN_CASES[case]
    out = tmp_path / "out"
    code, _, err = run(capsys, *learn_args, "--out", out, *extra)
    assert code == 2
    assert expected in one_line_error(err)
    assert not out.exists() and not list(tmp_path.glob(".out.*"))  # no folder, no lock, no stage


def test_out_that_is_a_file(learn_args, tmp_path, capsys):
    f = tmp_path / "file.txt"
    f.write_text("mine")
    code, _, err = run(capsys, *learn_args, "--out", f)
    assert code == 2 and "is a file" in one_line_error(err) and f.read_text() == "mine"


def test_recipe_errors_name_the_line(learn_args, tmp_path, capsys):
    r = tmp_path / "r.yaml"
    r.write_text("train:\n  lr: 1e-3\n  epochs: [1,\n")
    code, _, err = run(capsys, *learn_args, "--out", tmp_path / "o", "--config", r)
    assert code == 2 and "r.yaml, line 4: not valid YAML" in one_line_error(err)
    r.write_text("train:\n  lr: 1e-3\n  max_grad_norm: -2\n")
    code, _, err = run(capsys, *learn_args[:-3], "--out", tmp_path / "o", "--config", r)
    assert code == 2 and "r.yaml, line 3: train.max_grad_norm=-2.0" in one_line_error(err)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("content,expected", [
    (b'[{"text": "a"},\n {"text": 3}]\n', "docs.json, line 2, field 'text': must be a string, got int"),
    (b'[{"text": "a"}\n {"text": "b"}]\n', "docs.json, line 2: invalid JSON (expected ',' or ']'"),
    (b'{"text": null}\n', "line 1, field 'text': is null"),
])
def test_document_file_messages(content, expected, model_dir, tmp_path, capsys):
    d = tmp_path / "docs.json"
    d.write_bytes(content)
    code, _, err = run(capsys, "learn", d, "--out", tmp_path / "o", f"model.name={model_dir}")
    assert code == 2 and expected in one_line_error(err) and not (tmp_path / "o").exists()


def test_eval_and_weights_arguments(model_dir, probes_file, docs_file, tmp_path, capsys):
    cases = [
        (["eval", "--model", model_dir, "--probes", probes_file, "--batch-size", "0"], "--batch-size: must be >= 1, got 0"),
        (["eval", "--model", model_dir, "--probes", probes_file, "--limit", "-3"], "--limit: must be >= 0, got -3"),
        (["eval", "--model", model_dir, "--probes", probes_file, "--json", tmp_path], "is a folder"),
        (["eval", "--model", model_dir, "--probes", probes_file, "--adapter", tmp_path / "none"], "no adapter_config.json"),
        (["weights", docs_file, "--method", "finetune", "--html", tmp_path, f"model.name={model_dir}"], "is a folder"),
    ]
    for argv, expected in cases:
        try:
            code, _, err = run(capsys, *argv)
        except SystemExit as e:  # argparse's own checks
            code, err = e.code, capsys.readouterr().err
        assert code == 2, argv
        assert expected in one_line_error(err), argv


def test_bench_refuses_non_lama_files(tmp_path, docs_file, capsys):
    code, _, err = run(capsys, "bench", "lama-ckl", "--methods", "finetune", "--to-learn", docs_file,
                       "--nf", docs_file, "--out", tmp_path / "b")
    assert code == 2 and "not LAMA-ckl units" in one_line_error(err) and not (tmp_path / "b").exists()


def test_broken_model_files(model_dir, learn_args, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    st = broken / "model.safetensors"
    st.write_bytes(st.read_bytes()[: st.stat().st_size // 2])
    fake = tmp_path / "fake.gguf"
    fake.write_text("not a model")
    for spec, expected in ((broken, "Could not load model"), (fake, "not a GGUF file")):
        out = tmp_path / "o"
        code, _, err = run(capsys, *learn_args, "--out", out, f"model.name={spec}")
        assert code == 2 and expected in one_line_error(err) and not out.exists()


def test_damaged_adapters_are_refused(learn_args, probes_file, model_dir, tmp_path, capsys):
    from safetensors.torch import load_file, save_file

    out = tmp_path / "run"
    assert run(capsys, *learn_args, "--out", out)[0] == 0
    ad = out / "adapter" / "adapter_model.safetensors"
    good = ad.read_bytes()
    tensors = load_file(str(ad))
    name = next(iter(tensors))
    tensors[name] = torch.full_like(tensors[name], float("nan"))  # bytes flipped to NaN
    save_file(tensors, str(ad))
    code, _, err = run(capsys, "eval", "--model", model_dir, "--adapter", out, "--probes", probes_file, "--quiet")
    assert code == 2 and "NaN/Inf" in one_line_error(err)
    ad.write_bytes(good[: len(good) // 3])  # truncated
    code, _, err = run(capsys, "eval", "--model", model_dir, "--adapter", out, "--probes", probes_file, "--quiet")
    assert code == 2 and "cannot load this adapter" in one_line_error(err)


def test_train_attention_small_max_doc_tokens(model_dir, tmp_path, capsys):
    p = tmp_path / "pairs.jsonl"
    p.write_text(json.dumps({"document": "Wales speaks Welsh .", "task": "Wales : Welsh", "answer": "Welsh"}) + "\n")
    code, _, err = run(capsys, "train-attention", "--pairs", p, "--base", model_dir, "--out", tmp_path / "phi",
                       "max_doc_tokens=1")
    assert code == 2 and "max_doc_tokens=1: must be >= 2" in one_line_error(err)
    assert not (tmp_path / "phi").exists()


def test_read_only_output_folder(learn_args, tmp_path, capsys, monkeypatch):
    """A folder that cannot be written is named before anything loads (root ignores chmod, so
    the permission check itself is what is exercised)."""
    import taalm.core.runfolder

    ro = tmp_path / "ro"
    ro.mkdir()
    real = os.access
    monkeypatch.setattr(taalm.core.runfolder.os, "access", lambda p, m: False if str(p) == str(ro) else real(p, m))
    code, _, err = run(capsys, *learn_args, "--out", ro / "out")
    assert code == 2 and f"{ro}: not writable" in one_line_error(err) and not (ro / "out").exists()


def test_full_disk_at_start_leaves_nothing(learn_args, tmp_path, capsys, monkeypatch):
    import errno

    import taalm.core.files

    real = taalm.core.files.atomic_write_bytes

    def full(path, data):
        if str(path).endswith("config.yaml"):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, data)

    monkeypatch.setattr(taalm.core.files, "atomic_write_bytes", full)
    code, _, err = run(capsys, *learn_args, "--out", tmp_path / "o")
    line = one_line_error(err)
    assert code == 2 and "No space left on device" in line and "config.yaml" in line
    assert not (tmp_path / "o").exists() and not list(tmp_path.glob(".o.*"))


# --------------------------------------------------------------------------------------------
# --overwrite
# --------------------------------------------------------------------------------------------
def test_overwrite_never_deletes_inputs_or_foreign_folders(model_dir, tmp_path, capsys, monkeypatch):
    d = tmp_path / "d"
    d.mkdir()
    (d / "docs.jsonl").write_text(json.dumps({"text": "Wales speaks Welsh .", "answer": "Welsh"}) + "\n")
    (d / "probes.jsonl").write_text(json.dumps({"prompt": "Wales speaks", "answer": "Welsh"}) + "\n")
    base = ["learn", d / "docs.jsonl", "--probes", d / "probes.jsonl", "--quiet", f"model.name={model_dir}",
            "train.epochs=1", "--overwrite"]
    code, _, err = run(capsys, *base, "--out", d)
    assert code == 2 and "not a taalm run folder" in one_line_error(err)
    assert sorted(p.name for p in d.iterdir()) == ["docs.jsonl", "probes.jsonl"]
    monkeypatch.chdir(d)
    code, _, err = run(capsys, *base, "--out", ".")
    assert code == 2 and sorted(p.name for p in d.iterdir()) == ["docs.jsonl", "probes.jsonl"]


def test_overwrite_keeps_the_old_run_until_the_new_one_starts(learn_args, tmp_path, capsys):
    out = tmp_path / "run"
    assert run(capsys, *learn_args, "--out", out)[0] == 0
    before = (out / "run.json").read_text()
    # fails validation after the model loaded (context length): the old run stays as it was
    code, _, err = run(capsys, *learn_args, "--out", out, "--overwrite", "train.max_length=5000")
    assert code == 2 and (out / "run.json").read_text() == before and (out / "adapter").is_dir()
    # a valid new run replaces it
    assert run(capsys, *learn_args, "--out", out, "--overwrite", "--method", "oracle")[0] == 0
    info = json.loads((out / "run.json").read_text())
    assert info["method"] == "oracle" and info["status"] == "complete" and info["schema"] == "taalm.run/1"
    assert not list(tmp_path.glob(".run.*"))


# --------------------------------------------------------------------------------------------
# NaN guard and JSON
# --------------------------------------------------------------------------------------------
def test_nan_guard_stops_and_marks_the_run_failed(learn_args, tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = run(capsys, *learn_args, "--out", out, "train.lr=1e10", "theta.mode=full", "train.epochs=3",
                       "train.max_grad_norm=0")
    assert code == 1
    line = one_line_error(err)
    assert "nan" in line.lower() or "inf" in line.lower()
    assert "lower train.lr" in line and "at epoch 2" in line
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "failed" and "train.lr" in info["error"]
    assert not (out / "summary.json").exists() and not (out / "model").exists()
    assert info["last_checkpoint_epoch"] == 1  # the last finite state stays resumable


def test_json_files_never_hold_bare_nan(tmp_path):
    from taalm.core.files import atomic_write_json, write_jsonl

    def strict(text):
        return json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in JSON"))

    atomic_write_json(tmp_path / "a.json", {"acc": float("nan"), "rows": [1.0, float("inf")]})
    a = strict((tmp_path / "a.json").read_text())
    assert a["acc"] is None and a["rows"] == [1.0, None]
    assert a["nonfinite"]["keys"] == ["acc", "rows[1]"]
    write_jsonl(tmp_path / "b.jsonl", [{"loss": float("-inf")}])
    assert strict((tmp_path / "b.jsonl").read_text())["loss"] is None


def test_meta_training_nan_guard(tokenizer, tmp_path):
    from test_meta_train import build, cfg, make_pairs

    from taalm.core.errors import TrainingDiverged
    from taalm.meta.training import train_attention

    theta, phi = build(tokenizer)
    with pytest.raises(TrainingDiverged, match="update 1"):
        train_attention(make_pairs(), None, cfg(**{"inner.lr": 1e30, "val.every": 0}), tmp_path / "m", model=theta, tokenizer=tokenizer, phi=phi,
                        options=QUIET)
    assert json.loads((tmp_path / "m" / "run.json").read_text())["status"] == "failed"


# --------------------------------------------------------------------------------------------
# Locking
# --------------------------------------------------------------------------------------------
def test_second_run_is_refused_and_stale_locks_are_taken(learn_args, tmp_path, capsys):
    out = tmp_path / "run"
    lock = tmp_path / ".run.taalm-lock"
    import socket

    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock.write_text(f"{sleeper.pid} {socket.gethostname()}\n")
        code, _, err = run(capsys, *learn_args, "--out", out)
        assert code == 2 and "another taalm run is using this folder" in one_line_error(err)
        assert not out.exists() and lock.exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    code, _, err = run(capsys, *learn_args, "--out", out)  # the owner is dead: stale
    assert code == 0, err
    assert not lock.exists()


# --------------------------------------------------------------------------------------------
# Resume
# --------------------------------------------------------------------------------------------
def test_resume_refuses_other_inputs_or_config(learn_args, tmp_path, capsys, model_dir):
    out = tmp_path / "run"
    assert run(capsys, *learn_args, "--out", out, "train.keep_checkpoints=true")[0] == 0  # resumable once complete
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"text": "Sennet has the capital Ilvara .", "answer": "Ilvara"}) + "\n")
    before = {f: (out / f).read_text() for f in ("run.json", "config.yaml")}
    args = [a if a != learn_args[1] else other for a in learn_args]
    code, _, err = run(capsys, *args, "--out", out, "--resume", "train.epochs=2")
    assert code == 2 and "other documents" in one_line_error(err)
    code, _, err = run(capsys, *learn_args, "--out", out, "--resume", "train.epochs=2", "--method", "oracle")
    assert code == 2 and "method.name: 'finetune' -> 'oracle'" in one_line_error(err)
    assert {f: (out / f).read_text() for f in before} == before  # nothing rewritten
    code, _, err = run(capsys, *learn_args, "--out", out, "--resume", "train.epochs=2")  # more epochs: allowed
    assert code == 0, err


def test_failed_resume_leaves_the_folder_intact_and_falls_back(learn_args, tmp_path, capsys):
    out = tmp_path / "run"
    assert run(capsys, *learn_args, "--out", out, "train.epochs=2", "train.keep_checkpoints=true")[0] == 0
    ck = out / "checkpoints"
    epoch1 = json.loads((ck / "epoch-0001" / "state.json").read_text())["train_seconds"]
    assert sorted(p.name for p in ck.iterdir() if p.is_dir()) == ["epoch-0001", "epoch-0002"]
    (ck / "epoch-0002" / "trainable.safetensors").write_bytes(b"truncated")
    (ck / "latest.json").write_text("")
    code, _, err = run(capsys, *learn_args, "--out", out, "--resume", "train.epochs=3")
    assert code == 0, err
    assert "resuming from the checkpoint epoch-0001 instead" in err
    summary = json.loads((out / "summary.json").read_text())
    assert [r["epoch"] for r in summary["history"]] == [0, 3]
    assert len(summary["epoch_seconds"]) == 2  # epochs 2 and 3 ran in this part
    # train_seconds = every part's training time, not only the last part's
    assert epoch1 > 0
    assert summary["train_seconds"] == pytest.approx(epoch1 + sum(summary["epoch_seconds"]), abs=0.02)
    # no usable checkpoint at all: a clear error, and the folder keeps its state
    for d in ck.glob("epoch-*"):
        (d / "trainable.safetensors").write_bytes(b"")
    before = {f: (out / f).read_text() for f in ("run.json", "config.yaml")}
    code, _, err = run(capsys, *learn_args, "--out", out, "--resume", "train.epochs=4")
    assert code == 2 and "no usable checkpoint" in one_line_error(err)
    assert {f: (out / f).read_text() for f in before} == before
    assert json.loads(before["run.json"])["status"] == "complete"


def test_sigterm_is_an_interrupt():
    from taalm.cli import _sigterm_interrupts

    old = signal.getsignal(signal.SIGTERM)
    try:
        _sigterm_interrupts()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):  # the handler runs between bytecodes of the main thread
                sum(range(100))
    finally:
        signal.signal(signal.SIGTERM, old)


# --------------------------------------------------------------------------------------------
# Remote code
# --------------------------------------------------------------------------------------------
def test_remote_code_is_never_run_unless_asked(model_dir, tmp_path):
    from taalm.core.errors import ModelLoadError
    from taalm.models.loading import load_model

    folder = tmp_path / "custom"
    shutil.copytree(model_dir, folder)
    marker = tmp_path / "code_ran.txt"
    (folder / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n"
                                    "from transformers import LlamaConfig, LlamaForCausalLM\n"
                                    "class EvilConfig(LlamaConfig):\n    model_type = 'evil'\n"
                                    "class EvilModel(LlamaForCausalLM):\n    config_class = EvilConfig\n")
    cfg = json.loads((folder / "config.json").read_text())
    cfg.update(model_type="evil", auto_map={"AutoConfig": "evil.EvilConfig", "AutoModelForCausalLM": "evil.EvilModel"})
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelLoadError):
        load_model(str(folder), "cpu", "fp32")
    assert not marker.exists()


@pytest.mark.parametrize("command", ["learn", "train-attention"])
def test_a_run_killed_before_its_first_checkpoint_resumes_from_the_beginning(command, learn_args, tmp_path, capsys,
                                                                               monkeypatch, model_dir):
    """SIGTERM / kill -9 / a full disk during the first epoch (update): --resume starts the run
    again with the same verified inputs and configuration, and ends as an uninterrupted run."""
    from taalm.core import checkpoint

    if command == "learn":
        args = [*learn_args, "train.epochs=2"]
    else:
        pairs = tmp_path / "pairs.jsonl"
        pairs.write_text("".join(json.dumps({"document": f"Doc {i}: the capital of Sennet{i} is Ilvara{i} .",
                                             "task": f"The capital of Sennet{i} is", "answer": f"Ilvara{i}"}) + "\n"
                                 for i in range(6)))
        args = ["train-attention", "--pairs", pairs, "--base", model_dir, "--quiet", "updates=2", "batch_pairs=2",
                "micro_pairs=2", "val.n_pairs=0", "phi.lora.r=2", "theta.r=2"]
    ref, out = tmp_path / "ref", tmp_path / "run"
    assert run(capsys, *args, "--out", ref)[0] == 0
    save = checkpoint.Checkpointer.save

    def killed(self, *a, **k):
        raise KeyboardInterrupt  # as SIGTERM arrives: before the first checkpoint is written

    monkeypatch.setattr(checkpoint.Checkpointer, "save", killed)
    code, _, err = run(capsys, *args, "--out", out)
    assert code == 130 and "--resume" in err
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"
    assert not (out / "checkpoints").exists() or not any((out / "checkpoints").iterdir())
    monkeypatch.setattr(checkpoint.Checkpointer, "save", save)
    code, _, err = run(capsys, *args, "--out", out, "--resume")
    assert code == 0 and "starting it again from the beginning" in err, err
    log = "metrics.jsonl" if command == "learn" else "log.jsonl"
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("seconds", "time")} for r in rows]  # noqa: E731
    rows = lambda d: strip([json.loads(x) for x in (d / log).read_text().splitlines()])  # noqa: E731
    assert rows(out) == rows(ref)


KILL_AT = {  # where the child process SIGKILLs itself (a real kill -9: no handler, no cleanup)
    "mid epoch 1": "taalm.ckl.learner._train_epoch",  # before the first checkpoint
    "mid checkpoint write": "taalm.core.runfolder.commit_checkpoint",  # tensors written, state.json not
    "after a checkpoint": "taalm.ckl.learner._end_of_epoch",  # epoch 1 checkpointed, then killed
}


def test_kill_9_anywhere_resumes_to_the_same_run(learn_args, tmp_path, capsys):
    """SIGKILL at each deterministic point (in a child process), then --resume in this one: every
    run ends with the same metrics as an uninterrupted one (bit-identical losses and accuracies)."""
    ref = tmp_path / "ref"
    args = [str(a) for a in learn_args] + ["train.epochs=2", "train.checkpoint_every=1"]
    assert run(capsys, *args, "--out", ref)[0] == 0
    rows = lambda d: [{k: v for k, v in json.loads(x).items() if k not in ("seconds", "time", "eval_seconds")}  # noqa: E731
                      for x in (d / "metrics.jsonl").read_text().splitlines()]
    for i, (where, target) in enumerate(KILL_AT.items()):
        out = tmp_path / f"run{i}"
        module, _, name = target.rpartition(".")
        child = f"""
import os, signal, sys, importlib
mod = importlib.import_module({module!r})
orig = getattr(mod, {name!r})
def killer(*a, **k):
    if {where!r} == "after a checkpoint":
        orig(*a, **k)  # epoch 1's checkpoint is complete; die before epoch 2 trains
    os.kill(os.getpid(), signal.SIGKILL)
setattr(mod, {name!r}, killer)
if {module!r} == "taalm.core.runfolder":
    import taalm.core.checkpoint as ck; ck.commit_checkpoint = killer
from taalm.cli import main
sys.exit(main({args + ["--out", str(out)]!r}))
"""
        res = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True)
        assert res.returncode == -signal.SIGKILL, (where, res.stderr)
        code, _, err = run(capsys, *args, "--out", out, "--resume")
        assert code == 0, (where, err)
        assert rows(out) == rows(ref), where
