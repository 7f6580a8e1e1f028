"""Experiment tracking behind the metric-logging interface: logger=jsonl,tensorboard,wandb."""

import json

import pytest

from taalm.cli import main
from taalm.core.config import load_config
from taalm.ckl.config import LearnConfig
from taalm.core.errors import ConfigError


def _learn(tmp_path, model_dir, docs_file, probes_file, out, *extra):
    return main(["learn", str(docs_file), "--probes", str(probes_file), "--method", "oracle", "--out", str(out),
                 "--quiet", f"model.name={model_dir}", "model.device=cpu", "train.epochs=2", "train.lr=5e-3",
                 "eval.every_epoch=true", *extra])


def test_tensorboard_event_files_hold_the_runs_metrics(tmp_path, model_dir, docs_file, probes_file):
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    assert _learn(tmp_path, model_dir, docs_file, probes_file, out, "logger=jsonl,tensorboard") == 0
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    acc = EventAccumulator(str(out / "tensorboard")).Reload()
    steps = [r for r in rows if r["type"] == "step"]
    loss = acc.Scalars("step/loss")
    assert [e.step for e in loss] == [r["step"] for r in steps]
    assert [e.value for e in loss] == pytest.approx([r["loss"] for r in steps], rel=1e-6)
    evals = [r for r in rows if r["type"] == "eval"]
    assert [(e.step, round(e.value, 6)) for e in acc.Scalars("eval/accuracy")] == [
        (r["epoch"], round(r["accuracy"], 6)) for r in evals]
    assert "step/lr" in acc.Tags()["scalars"] and "eval/nll" in acc.Tags()["scalars"]


def test_wandb_offline_run_and_resume_keep_one_run(tmp_path, model_dir, docs_file, probes_file, monkeypatch):
    pytest.importorskip("wandb", reason="the wandb extra is not installed")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    out = tmp_path / "run"
    assert _learn(tmp_path, model_dir, docs_file, probes_file, out, "logger=wandb", "train.keep_checkpoints=true") == 0
    run_id = (out / "wandb_run_id").read_text().strip()
    runs = list((out / "wandb").glob(f"offline-run-*-{run_id}"))
    assert len(runs) == 1 and list(runs[0].glob("run-*.wandb"))  # the offline run's data file
    assert (out / "metrics.jsonl").is_file()  # jsonl is always written
    assert _learn(tmp_path, model_dir, docs_file, probes_file, out, "logger=wandb", "train.epochs=3", "--resume") == 0
    assert (out / "wandb_run_id").read_text().strip() == run_id  # the same W&B run continues


def test_unknown_or_missing_logger_is_refused_before_a_run(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="unknown mlflow"):
        load_config(LearnConfig, None, ["logger=jsonl,mlflow"])
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(ConfigError, match=r"pip install 'taalm\[wandb\]'"):
        load_config(LearnConfig, None, ["logger=wandb"])
