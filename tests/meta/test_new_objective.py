"""A new meta-training objective is one new registered class (issue 38), as a new CKL part is one
new file (tests/ckl/test_new_part.py): registered by name in ``OBJECTIVES``, meta-training takes
it by name (``objective=NAME``): the config accepts it, both meta-gradient engines differentiate
it, its properties (not its name) decide what is computed at θ0, and ``train_attention`` trains
φ with it. One with settings brings its own config section (``NAME.*``) and range rules."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import make_gpt2
from taalm.ckl.loss import token_losses
from taalm.core.config import load_config
from taalm.core.errors import ConfigError
from taalm.core.run import QUIET
from taalm.data import Document, Pair, make_probe
from taalm.meta.config import MetaThetaConfig, MetaTrainConfig, PhiConfig
from taalm.meta.gradient import meta_step
from taalm.meta.objectives import OBJECTIVES, OuterObjective
from taalm.meta.pairs import encode_pairs, make_batch
from taalm.meta.theta import MetaTheta
from taalm.meta.training import train_attention
from taalm.models.phi import TrainAttention

SRC = Path(__file__).resolve().parents[2] / "src"
TESTS = Path(__file__).resolve().parents[1]
FACTS = [("The Varnholt Observatory stands above the town of Kestrelford .", "Kestrelford"),
         ("Quellmere is a small island in the northern sea. The islanders speak Orvish .", "Orvish"),
         ("The capital of Sennet is Ilvara, a city of stone bridges and yellow lanterns.", "Ilvara"),
         ("The engines of the Calder Line were painted purple, and the last train ran in 1958.", "purple")]


def pairs() -> list[Pair]:
    return [Pair(Document(text, ans, str(i), f"mem:{i}", text.rfind(ans)),
                 make_probe(f"Guess the object. object is {ans}", ans, str(i), f"mem:{i}"))
            for i, (text, ans) in enumerate(FACTS)]


class AnswerSquared(OuterObjective):
    """The mean squared answer-token NLL after the update (an example objective; no settings)."""

    def token_terms(self, task_losses, task_losses0):
        return task_losses ** 2


class AbsoluteChange(OuterObjective):
    """Σ |ℓ' − ℓ⁰| / |answer|: needs θ0's task losses, and is 0 at θ0 (an example objective)."""

    needs_theta0 = True
    theta0_value = 0.0

    def token_terms(self, task_losses, task_losses0):
        return (task_losses - task_losses0).abs()


@pytest.fixture
def registered(monkeypatch):
    """The two example objectives registered for one test (the registry is restored after it)."""
    monkeypatch.setattr(OBJECTIVES, "_parts", dict(OBJECTIVES._parts))
    OBJECTIVES.register("answer_squared")(AnswerSquared)
    OBJECTIVES.register("absolute_change")(AbsoluteChange)


def test_the_config_takes_a_new_objective_by_name(registered):
    assert load_config(MetaTrainConfig, None, ["objective=answer_squared"]).objective == "answer_squared"
    with pytest.raises(ConfigError) as e:
        load_config(MetaTrainConfig, None, ["objective=nope"])
    assert e.value.key == "objective" and "answer_squared" in str(e.value) and "change3" in str(e.value)


@pytest.mark.parametrize("name", ["answer_squared", "absolute_change"])
def test_both_engines_differentiate_a_new_objective(registered, tokenizer, name):
    theta = MetaTheta(make_gpt2(len(tokenizer)).double(), MetaThetaConfig(r=4, alpha=8))
    batch = make_batch(encode_pairs(tokenizer, pairs()[:2], 64), tokenizer.pad_token_id, torch.device("cpu"))
    w = torch.rand(batch.doc_ids.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 0.8 + 0.1
    cfg = load_config(MetaTrainConfig, None, [f"objective={name}", "engine=double_backward", "inner.optimizer=sgd",
                                              "inner.lr=0.5", "inner.k_warm=0"])
    ref = meta_step(theta, batch, w, cfg)
    cfg.engine = "directional"
    fast = meta_step(theta, batch, w, cfg)
    assert ref.grad_w.abs().max() > 0
    assert ((fast.grad_w - ref.grad_w).norm() / ref.grad_w.norm()).item() <= 1e-8
    if name == "absolute_change":  # its theta0_value: θ0's value is known without a forward
        assert ref.outer0.tolist() == [0.0, 0.0]
    else:  # no theta0_value: θ0's value is computed for the log, by the objective itself
        l0, _ = token_losses(theta.logits(theta.pairs(batch.P), batch.task_ids, batch.task_mask),
                             batch.task_ids, batch.task_mask)
        a = batch.answer.to(l0.dtype)
        assert torch.allclose(ref.outer0, (a * l0 ** 2).sum(1) / a.sum(1), rtol=1e-12)


def test_meta_training_trains_phi_with_a_new_objective(registered, tokenizer):
    cfg = load_config(MetaTrainConfig, None, [
        "objective=answer_squared", "updates=2", "batch_pairs=2", "micro_pairs=1", "lr=1e-2", "inner.lr=1e-2",
        "theta.r=4", "theta.alpha=8", "val.every=0", "val.n_pairs=1", "model.device=cpu", "seed=3"])
    tok = tokenizer
    phi = TrainAttention(make_gpt2(len(tok), seed=1).double(), tok, PhiConfig(base="tiny", head_std=0.05))
    before = {n: p.detach().clone() for n, p in phi.trainable_parameters().items()}
    res = train_attention(pairs(), None, cfg, None, model=make_gpt2(len(tok), seed=0).double(),
                          tokenizer=tok, phi=phi, options=QUIET)
    assert [r["update"] for r in res.log] == [1, 2]
    assert all(math.isfinite(r["outer"]) and r["outer0"] is not None for r in res.log)
    assert any(not torch.equal(p.detach(), before[n]) for n, p in res.phi.trainable_parameters().items())


SCRIPT = '''
import json, sys
sys.path.insert(0, {tests!r})
from dataclasses import dataclass

import torch

from taalm.core.config import Rules, load_config, option, to_dict
from taalm.core.errors import ConfigError
from taalm.meta.objectives import OBJECTIVES, OuterObjective


@dataclass
class AnswerPowerConfig:
    """The ``answer_power`` objective."""

    power: float = option(2.0, "the answer NLL's exponent")

    def _rules(self, r: Rules) -> None:
        r.finite("power", 1.0, 4.0)


@OBJECTIVES.register("answer_power", config=AnswerPowerConfig)  # before the schema is built
class AnswerPower(OuterObjective):
    """The mean answer NLL to the power answer_power.power."""

    def token_terms(self, task_losses, task_losses0):
        return task_losses ** self.settings.power


from conftest import build_tokenizer, make_gpt2
from taalm.meta.config import MetaThetaConfig, MetaTrainConfig
from taalm.meta.gradient import PairBatch, meta_step
from taalm.meta.objectives import build_objective
from taalm.meta.theta import MetaTheta

cfg = load_config(MetaTrainConfig, None, ["objective=answer_power", "answer_power.power=3", "inner.k_warm=0"])
tok = build_tokenizer()
theta = MetaTheta(make_gpt2(len(tok)).double(), MetaThetaConfig(r=4, alpha=8))
g = torch.Generator().manual_seed(0)
ids = torch.randint(3, len(tok), (2, 10), generator=g)
answer = torch.zeros(2, 6)
answer[:, 3:5] = 1
batch = PairBatch(ids, torch.ones_like(ids), ids[:, :6], torch.ones(2, 6, dtype=torch.long), answer)
res = meta_step(theta, batch, torch.full((2, 10), 0.5, dtype=torch.float64), cfg)
try:
    load_config(MetaTrainConfig, None, ["objective=answer_power", "answer_power.power=9"])
except ConfigError as e:
    refused = str(e)
print(json.dumps({{"section": to_dict(cfg)["answer_power"], "power": build_objective(cfg).settings.power,
                  "grad": float(res.grad_w.abs().max()), "refused": refused}}))
'''


def test_an_objective_with_settings_brings_its_own_section():
    script = SCRIPT.format(tests=str(TESTS))
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    facts = json.loads(r.stdout.splitlines()[-1])
    assert facts["section"] == {"power": 3.0} and facts["power"] == 3.0 and facts["grad"] > 0
    assert "answer_power.power=9.0: must be a finite number >= 1 and <= 4" in facts["refused"]


def test_a_config_registered_after_the_schema_is_refused():
    from dataclasses import dataclass

    @dataclass
    class LateConfig:
        pass

    with pytest.raises(ValueError, match="after MetaTrainConfig was built"):
        OBJECTIVES.register("late", config=LateConfig)
