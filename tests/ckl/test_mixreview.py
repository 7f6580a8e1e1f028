"""Mix-review (data stream ``mixreview``): the replay schedule is exact, every step mixes replay
documents, the run's own windows are those of ``plain``, seeded and reproducible."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import make_gpt2
from taalm.ckl.learner import learn
from taalm.ckl.method import resolve_method, split_method_name
from taalm.ckl.streams import MixReview, Plain
from taalm.core.config import load_config
from taalm.ckl.config import LearnConfig
from taalm.core.errors import ConfigError, InputError
from taalm.data import Window, read_documents
from taalm.core.run import QUIET

POOL = ["The river Alder runs through the valley of Skarn and meets the sea at Velden .",
        "Tomas Brink wrote four novels about the lighthouse keepers of Orrin Point .",
        "The Harwick bridge was rebuilt in 1907 after the winter flood .",
        "Mount Selva is the highest peak of the Ardent range ."]


@pytest.fixture
def pool_file(tmp_path):
    p = tmp_path / "pool.jsonl"
    p.write_text("".join(json.dumps({"text": t}) + "\n" for t in POOL))
    return p


def cfg_for(pool, *over):
    return load_config(LearnConfig, None, ["train.lr=5e-3", "train.batch_size=2", "theta.lora.r=4", "model.device=cpu",
                                           "train.epochs=2", "train.stream=mixreview",
                                           f"train.mixreview.pool={pool}", *over])


def test_schedule_is_exact_and_every_step_mixes(pool_file):
    cfg = cfg_for(pool_file, "train.mixreview.ratio=4", "train.mixreview.decay=0.7", "train.batch_size=3").train
    s = MixReview(cfg)
    own = [Window(i, 0, [1] * 5, [1] * 5) for i in range(10)]
    replay = [Window(10 + i, 0, [2] * 4, [1] * 4) for i in range(7)]
    s.bind(10)
    plain = Plain(cfg)
    drawn = []
    for epoch, expected in ((1, 40), (2, 28), (3, 20)):  # round(10 · 4 · 0.7^(e−1))
        steps = s.epoch_steps(own + replay, epoch)
        flat = [i for step in steps for mb in step for i in mb]
        mine = [i for i in flat if i < 10]
        theirs = [i for i in flat if i >= 10]
        assert s.n_replay(epoch) == expected == len(theirs)
        assert mine == [i for step in plain.epoch_steps(own, epoch) for mb in step for i in mb]  # as `plain`
        assert all(any(i >= 10 for mb in step for i in mb) for step in steps)  # every step replays
        assert all(len(mb) <= 3 for step in steps for mb in step)
        assert steps == s.epoch_steps(own + replay, epoch)  # a function of (seed, epoch)
        order = s.replay_order(7, epoch)
        assert sorted(theirs) == sorted(10 + i for i in order)
        drawn += order
    # drawn without repetition: the draws across epochs are consecutive permutations of the pool
    for k in range(0, 7 * (len(drawn) // 7), 7):
        assert sorted(drawn[k:k + 7]) == list(range(7))


def test_learn_with_mixreview_is_seeded_and_trains_on_the_replay(tokenizer, docs_file, pool_file, tmp_path):
    docs = read_documents(docs_file)
    runs = []
    for name in ("a", "b"):
        res = learn(docs, None, cfg_for(pool_file), tmp_path / name, model=make_gpt2(len(tokenizer)).double(), tokenizer=tokenizer,
                    options=QUIET)
        rows = [json.loads(x) for x in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
        runs.append(([r["loss"] for r in rows if r["type"] == "step"], [r["tokens"] for r in rows if r["type"] == "step"],
                     {n: p.detach().clone() for n, p in res.model.named_parameters() if p.requires_grad}))
    assert runs[0][0] == runs[1][0] and all(torch.equal(runs[0][2][n], runs[1][2][n]) for n in runs[0][2])
    plain = learn(docs, None, cfg_for(pool_file, "train.stream=plain"), tmp_path / "p", model=make_gpt2(len(tokenizer)).double(), tokenizer=tokenizer,
                  options=QUIET)
    rows = [json.loads(x) for x in (tmp_path / "p" / "metrics.jsonl").read_text().splitlines()]
    plain_tokens = [r["tokens"] for r in rows if r["type"] == "step"]
    assert len(plain_tokens) == len(runs[0][1]) and sum(runs[0][1]) > sum(plain_tokens)  # replay tokens trained
    assert plain.steps == len(plain_tokens)


def test_bad_pools_and_combinations_are_refused(tmp_path, pool_file):
    with pytest.raises(ConfigError, match="needs train.mixreview.pool"):
        resolve_method(split_method_name(load_config(LearnConfig, None, ["train.stream=mixreview"])))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"text": 3}\n')
    with pytest.raises(InputError, match="bad.jsonl, line 2"):
        resolve_method(split_method_name(cfg_for(bad)))
    with pytest.raises(ConfigError, match="static weighting"):
        resolve_method(split_method_name(cfg_for(pool_file, "method.name=rho1")))
    m = resolve_method(split_method_name(cfg_for(pool_file, "method.name=taalm+mixreview", "train.stream=plain")))
    assert m.stream.name == "mixreview" and m.name == "taalm+mixreview"


def test_replay_can_take_the_runs_weighting(tokenizer, docs_file, pool_file, tmp_path):
    docs = read_documents(docs_file)
    for weights in ("uniform", "method"):
        learn(docs, None, cfg_for(pool_file, "method.name=salient", f"train.mixreview.replay_weights={weights}"), tmp_path / weights, model=make_gpt2(len(tokenizer)).double(), tokenizer=tokenizer,
              options=QUIET)
    mean = {w: [json.loads(x)["mean_weight"] for x in (tmp_path / w / "metrics.jsonl").read_text().splitlines()
                if json.loads(x)["type"] == "step"] for w in ("uniform", "method")}
    assert all(m < u for m, u in zip(mean["method"], mean["uniform"]))  # salient gives 0.1 to most replay tokens
