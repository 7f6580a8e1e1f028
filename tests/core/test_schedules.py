"""Learning-rate schedules (θ in CKL and φ in meta-training): the formulas, the lr each CKL step
takes, and a resumed run that continues its schedule exactly."""

from __future__ import annotations

import json
import math

import pytest
import torch

from conftest import make_llama
from taalm.ckl.learner import learn
from taalm.core.config import load_config
from taalm.meta.config import MetaTrainConfig
from taalm.ckl.config import LearnConfig
from taalm.core.errors import ConfigError
from taalm.core.schedules import lr_factor
from taalm.data import read_documents, read_probes
from taalm.meta.training import phi_lr
from taalm.core.run import QUIET, RunOptions
from taalm.ckl.learner import LearnOptions


def test_factors_follow_the_formulas():
    assert [lr_factor(t, 10, "constant", warmup=4) for t in (1, 2, 4, 5, 10)] == [0.25, 0.5, 1.0, 1.0, 1.0]
    # after 2 warm-up steps the decay runs over steps 3..10: full lr at 3, final·lr at 10
    assert lr_factor(3, 10, "cosine", warmup=2, final=0.1) == pytest.approx(1.0)
    assert lr_factor(10, 10, "cosine", warmup=2, final=0.1) == pytest.approx(0.1)
    mid = 3 + 7 / 2
    assert lr_factor(mid, 10, "cosine", warmup=2, final=0.0) == pytest.approx(0.5)
    assert lr_factor(mid, 10, "linear", warmup=2, final=0.2) == pytest.approx(1 - 0.8 * 0.5)
    s = (6 - 1) / 9
    assert lr_factor(6, 10, "cosine", final=0.3) == pytest.approx(0.3 + 0.7 * 0.5 * (1 + math.cos(math.pi * s)))
    assert lr_factor(50, 10, "linear", final=0.5) == 0.5  # past the end: the last value
    with pytest.raises(ValueError, match="unknown lr schedule"):
        lr_factor(1, 10, "step")


def test_phi_schedule_with_warmup():
    cfg = MetaTrainConfig(lr=1e-3, updates=12, lr_schedule="linear", lr_final=0.0, warmup_updates=2)
    assert [phi_lr(cfg, t) for t in (1, 2, 3)] == pytest.approx([5e-4, 1e-3, 1e-3])
    assert phi_lr(cfg, 12) == pytest.approx(0.0)
    assert phi_lr(MetaTrainConfig(lr=1e-3, updates=5), 4) == 1e-3  # constant, no warm-up: as before


def test_bad_schedule_keys_are_refused():
    with pytest.raises(ConfigError, match="train.lr_schedule"):
        load_config(LearnConfig, None, ["train.lr_schedule=step"])
    with pytest.raises(ConfigError, match="train.warmup_steps"):
        load_config(LearnConfig, None, ["train.warmup_steps=-1"])


def _cfg(*extra):
    return load_config(LearnConfig, None, ["train.epochs=3", "train.lr=5e-3", "train.batch_size=2",
                                           "theta.lora.r=4", "train.lr_schedule=cosine", "train.warmup_steps=2",
                                           "train.lr_final=0.2", *extra])


def _steps(folder):
    return [r for r in map(json.loads, (folder / "metrics.jsonl").read_text().splitlines()) if r["type"] == "step"]


def test_each_step_takes_the_scheduled_lr_and_resume_continues_it(tmp_path, tokenizer, docs_file, probes_file):
    docs, probes = read_documents(docs_file), read_probes(probes_file)
    quiet = dict(tokenizer=tokenizer)
    straight = learn(docs, probes, _cfg(), tmp_path / "a", model=make_llama(len(tokenizer)), **quiet,
                     options=QUIET)
    rows = _steps(tmp_path / "a")
    total = len(rows)
    assert total >= 6
    assert [r["lr"] for r in rows] == pytest.approx([5e-3 * lr_factor(t, total, "cosine", 2, 0.2)
                                                     for t in range(1, total + 1)], rel=1e-12)
    assert rows[0]["lr"] < rows[2]["lr"] > rows[-1]["lr"] == pytest.approx(1e-3)

    def kill_after_first(event):
        if event["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        learn(docs, probes, _cfg(), tmp_path / "b", model=make_llama(len(tokenizer)), **quiet,
              options=LearnOptions(callbacks=[kill_after_first], progress=False, log=lambda m: None))
    resumed = learn(docs, probes, _cfg(), tmp_path / "b", model=make_llama(len(tokenizer)), **quiet,
                    options=RunOptions(resume=True, progress=False, log=lambda m: None))
    assert [r["lr"] for r in _steps(tmp_path / "b")] == [r["lr"] for r in rows]
    for (n, p), q in zip(straight.model.named_parameters(), resumed.model.parameters()):
        assert torch.equal(p, q), n
