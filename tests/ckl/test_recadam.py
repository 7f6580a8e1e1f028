"""RecAdam (optimizer ``recadam``): the update against a hand-written reference in float64, plain
AdamW when the pull is off, the pull toward θ0, every trainable parameter anchored, exact resume."""

from __future__ import annotations

import json
import math

import pytest
import torch

from conftest import make_gpt2
from taalm.ckl.learner import learn
from taalm.ckl.optim import RecAdamOptimizer
from taalm.core.config import load_config
from taalm.ckl.config import LearnConfig
from taalm.data import read_documents
from taalm.core.run import QUIET, RunOptions


def _grads(n_steps: int, shape=(3, 4), seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g, dtype=torch.float64) for _ in range(n_steps)]


def reference(p0, grads, lr, b1, b2, eps, wd, coef, k, t0):
    """The RecAdam update written out from its definition, one number at a time."""
    p, m, v = p0.clone(), torch.zeros_like(p0), torch.zeros_like(p0)
    for t, g in enumerate(grads, 1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        a = (m / (1 - b1 ** t)) / (torch.sqrt(v / (1 - b2 ** t)) + eps)
        lam = 1 / (1 + math.exp(-k * (t - t0)))
        p = p * (1 - lr * wd)
        p = p - lr * lam * a - lr * (1 - lam) * coef * (p - p0)
    return p


def run(opt_cls_kwargs, p0, grads, cls=RecAdamOptimizer):
    p = torch.nn.Parameter(p0.clone())
    opt = cls([p], **opt_cls_kwargs)
    for g in grads:
        p.grad = g.clone()
        opt.step()
    return p.detach()


def test_update_equals_the_reference():
    p0 = torch.randn(3, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    grads = _grads(7)
    kw = dict(lr=0.01, betas=(0.8, 0.95), eps=1e-8, weight_decay=0.01, coef=20.0, k=0.7, t0=3)
    got = run(kw, p0, grads)
    want = reference(p0, grads, 0.01, 0.8, 0.95, 1e-8, 0.01, 20.0, 0.7, 3)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    assert not torch.allclose(got, run({**kw, "coef": 0.0}, p0, grads))  # the pull mattered


def test_without_the_pull_it_is_adamw():
    p0 = torch.randn(5, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    grads = _grads(6, shape=(5,), seed=3)
    got = run(dict(lr=0.02, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.05, coef=0.0), p0, grads)
    want = run(dict(lr=0.02, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.05), p0, grads, cls=torch.optim.AdamW)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


def test_a_parameter_pulled_away_returns_toward_its_start():
    p0 = torch.zeros(4, dtype=torch.float64)
    p = torch.nn.Parameter(p0.clone())
    opt = RecAdamOptimizer([p], lr=0.01, coef=20.0, k=0.5, t0=1000)  # λ ≈ 0: the pull dominates
    p.grad = torch.ones(4, dtype=torch.float64)
    opt.step()  # anchors p0
    with torch.no_grad():
        p.add_(1.0)  # pushed away from p0
    dist = [float((p.detach() - p0).norm())]
    for _ in range(20):
        p.grad = torch.zeros(4, dtype=torch.float64)
        opt.step()
        dist.append(float((p.detach() - p0).norm()))
    assert all(b < a for a, b in zip(dist, dist[1:])) and dist[-1] < 0.1 * dist[0]


def cfg_for(*over):
    return load_config(LearnConfig, None, ["train.lr=5e-3", "train.batch_size=2", "theta.lora.r=4", "model.device=cpu",
                                           "method.name=finetune+recadam", "train.recadam.t0=2", "train.recadam.coef=50",
                                           *over])


def test_every_trainable_parameter_is_anchored_and_resume_is_exact(tokenizer, docs_file, tmp_path):
    docs = read_documents(docs_file)
    straight = learn(docs, None, cfg_for("train.epochs=2"), tmp_path / "a", model=make_gpt2(len(tokenizer)).double(), tokenizer=tokenizer,
                     options=QUIET)
    params = [p for p in straight.model.parameters() if p.requires_grad]
    assert params and all("anchor" in straight.optimizer.state[p] for p in params)  # LoRA included
    learn(docs, None, cfg_for("train.epochs=1", "train.keep_checkpoints=true"), tmp_path / "b", model=make_gpt2(len(tokenizer)).double(), tokenizer=tokenizer,
          options=QUIET)
    resumed = learn(docs, None, cfg_for("train.epochs=2"), tmp_path / "b", model=make_gpt2(len(tokenizer)).double(), tokenizer=tokenizer,
                    options=RunOptions(resume=True, progress=False, log=lambda m: None))
    a = {n: p for n, p in straight.model.named_parameters() if p.requires_grad}
    b = {n: p for n, p in resumed.model.named_parameters() if p.requires_grad}
    for n in a:
        assert torch.equal(a[n], b[n]), n


def test_recadam_settings_are_checked():
    from taalm.core.errors import ConfigError

    with pytest.raises(ConfigError, match="train.recadam.k"):
        cfg_for("train.recadam.k=0")


def test_rho1_plus_recadam_selects_tokens_and_pulls_toward_the_start(tokenizer, docs_file, tmp_path):
    """A weighting composed with the optimizer (``rho1+recadam``): RHO-1 keeps its share of the
    tokens at every step while RecAdam anchors every adapter at its start (LoRA's B at zero)."""
    docs = read_documents(docs_file)
    res = learn(docs, None, cfg_for("method.name=rho1+recadam", "method.rho1.ratio=0.4", "train.epochs=2"), tmp_path / "r", model=make_gpt2(len(tokenizer)).double(), tokenizer=tokenizer,
                options=QUIET)
    assert type(res.optimizer).__name__ == "RecAdamOptimizer"
    steps = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()
             if json.loads(x)["type"] == "step"]
    assert steps and all(abs(s["mean_weight"] - 0.4) < 0.05 for s in steps)  # top 40% of tokens kept
    named = {n: p for n, p in res.model.named_parameters() if p.requires_grad}
    b = [p for n, p in named.items() if "lora_B" in n]
    assert b and all(torch.count_nonzero(res.optimizer.state[p]["anchor"]) == 0 for p in b)
    assert any(torch.count_nonzero(p) > 0 for p in b)  # and θ moved away from it
