"""K-Adapter (θ form ``kadapter``): the base stays bit-identical, scale 0 is the base, gradients
reach only the adapter, save/load round-trips, and it composes with a weighting method."""

from __future__ import annotations

import pytest
import torch

from conftest import make_gpt2, make_llama
from taalm.ckl.learner import learn
from taalm.ckl.theta import KAdapterModel, load_kadapter, trainable_parameters
from taalm.core.config import load_config
from taalm.ckl.theta.kadapter import KAdapterConfig
from taalm.ckl.config import LearnConfig
from taalm.core.errors import ConfigError
from taalm.data import read_documents
from taalm.core.run import QUIET


def cfg_for(*over):
    return load_config(LearnConfig, None, ["train.lr=1e-2", "train.batch_size=2", "model.device=cpu", "train.epochs=2",
                                           "theta.mode=kadapter", "theta.kadapter.width=16", "theta.kadapter.heads=2",
                                           *over])


@pytest.mark.parametrize("make", [make_llama, make_gpt2])
def test_training_moves_only_the_adapter(tokenizer, docs_file, tmp_path, make):
    base = make(len(tokenizer))
    before = {n: p.detach().clone() for n, p in base.named_parameters()}
    res = learn(read_documents(docs_file), None, cfg_for(), tmp_path / "run", model=base, tokenizer=tokenizer,
                options=QUIET)
    assert isinstance(res.model, KAdapterModel) and res.model.layers == [1]  # 2 layers: 1, middle 1, last 1
    assert all(torch.equal(p, before[n]) for n, p in base.named_parameters())  # the base, bit for bit
    params = trainable_parameters(res.model)
    assert params and not any(n.startswith("base.") for n in params)
    assert (tmp_path / "run" / "kadapter" / "adapter.safetensors").is_file()


def test_scale_zero_is_the_base_and_gradients_reach_only_the_adapter(tokenizer):
    base = make_llama(len(tokenizer))
    ids = torch.tensor([[5, 17, 33, 41, 9, 12]])
    att = torch.ones_like(ids)
    model = KAdapterModel(base, KAdapterConfig(width=16, heads=2, scale=0.0))
    torch.testing.assert_close(model(ids, att).logits, base(input_ids=ids, attention_mask=att).logits, rtol=0, atol=0)
    model = KAdapterModel(base, KAdapterConfig(width=16, heads=2, scale=1.0))
    # θ0 is the base: the output LayerNorm's gain starts at 0
    torch.testing.assert_close(model(ids, att).logits, base(input_ids=ids, attention_mask=att).logits, rtol=0, atol=0)
    with torch.no_grad():
        model.norm.weight.fill_(1.0)  # as after a first step: every adapter parameter gets a gradient
    model(ids, att).logits.sum().backward()
    assert all(p.grad is None for p in base.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for n, p in model.named_parameters()
               if not n.startswith("base."))


def test_adapter_does_not_look_ahead(tokenizer):
    """Causal: the logits at t do not depend on tokens after t."""
    model = KAdapterModel(make_llama(len(tokenizer)), KAdapterConfig(width=16, heads=2)).eval()
    a = model(torch.tensor([[5, 17, 33, 41]])).logits
    b = model(torch.tensor([[5, 17, 33, 99]])).logits
    torch.testing.assert_close(a[:, :3], b[:, :3])


def test_save_and_load_round_trip(tokenizer, docs_file, tmp_path):
    res = learn(read_documents(docs_file), None, cfg_for("train.epochs=1"), tmp_path / "run", model=make_llama(len(tokenizer)), tokenizer=tokenizer,
                options=QUIET)
    again = load_kadapter(make_llama(len(tokenizer)), tmp_path / "run")
    ids = torch.tensor([[5, 17, 33, 41, 9]])
    torch.testing.assert_close(again(ids).logits, res.model(ids).logits, rtol=0, atol=0)


def test_composes_with_a_weighting_and_checks_its_settings(tokenizer, docs_file, tmp_path):
    res = learn(read_documents(docs_file), None, cfg_for("method.name=oracle+kadapter", "theta.mode=lora"), model=make_llama(len(tokenizer)), tokenizer=tokenizer,
                options=QUIET)
    assert isinstance(res.model, KAdapterModel)
    with pytest.raises(ConfigError, match="theta.kadapter.width"):
        cfg_for("theta.kadapter.width=15")
    with pytest.raises(ConfigError, match="theta.kadapter.layers"):
        learn(read_documents(docs_file), None, cfg_for("theta.kadapter.layers=[7]"), model=make_llama(len(tokenizer)), tokenizer=tokenizer,
              options=QUIET)
