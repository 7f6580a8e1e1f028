"""The rule-based token losses users pick from mainstream trainers (DFT, ASFT, EAFT, STM): each
against a hand-computed example, in the learner with every kind of part, and the learner's
promise to dynamic weightings (detached inputs, declared normalisation)."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import make_llama
from taalm.ckl.config import LearnConfig
from taalm.ckl.learner import learn
from taalm.ckl.loss import per_sequence_weighted_loss
from taalm.ckl.method import get_method
from taalm.ckl.weighting import WEIGHTINGS, WeightingMethod, describe_methods, dynamic_weights
from taalm.ckl.weighting.asft import sequence_kl
from taalm.ckl.weighting.eaft import topk_entropy_weights
from taalm.core.config import load_config
from taalm.core.errors import ConfigError
from taalm.core.run import QUIET
from taalm.data import read_documents


def cfg_for(*overrides):
    return load_config(LearnConfig, None, ["train.epochs=1", "train.lr=5e-3", "train.batch_size=2",
                                           "theta.lora.r=4", "model.device=cpu", "data.kept=none", *overrides])


def method(name, *overrides):
    return get_method(cfg_for(f"method.name={name}", *overrides).method)


def test_taalm_methods_lists_the_four_with_one_line_each():
    d = describe_methods()
    for name, paper in (("dft", "2508.05629"), ("asft", "2509.23753"), ("eaft", "2601.02151"), ("stm", "2501.14315")):
        assert paper in d[name] and "\n" not in d[name]


def test_dft_weighs_by_the_token_probability_and_averages_over_tokens():
    losses = torch.tensor([[0.0, math.log(2), math.log(4)]])
    valid = torch.tensor([[False, True, True]])
    m = method("dft")
    w = dynamic_weights(m, losses, valid, [])
    assert torch.allclose(w, torch.tensor([[0.0, 0.5, 0.25]]))
    L, _ = per_sequence_weighted_loss(losses, valid, w, normalization=m.normalization)
    assert L.item() == pytest.approx((0.5 * math.log(2) + 0.25 * math.log(4)) / 2)  # a mean over the 2 tokens
    weighted, _ = per_sequence_weighted_loss(losses, valid, w)  # the default normalisation divides by Σ w
    assert weighted.item() == pytest.approx((0.5 * math.log(2) + 0.25 * math.log(4)) / 0.75)
    ones, _ = per_sequence_weighted_loss(losses, valid, torch.ones(1, 3), normalization="tokens")
    assert ones.item() == pytest.approx(per_sequence_weighted_loss(losses, valid)[0].item())  # w = 1: the same


def test_eaft_weighs_by_the_normalised_top_k_entropy():
    # position 0 predicts x_1: top-2 of [0, 0, -9] is uniform, H = ln 2, w = 1;
    # position 1 predicts x_2: top-2 of [ln 3, 0, -9] gives (3/4, 1/4), H = 0.5623, w = H / ln 2 = 0.8113
    logits = torch.tensor([[[0.0, 0.0, -9.0], [math.log(3), 0.0, -9.0], [0.0, 0.0, 0.0]]])
    H = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    w = topk_entropy_weights(logits, k=2, alpha=1.0)
    assert w[0].tolist() == pytest.approx([0.0, 1.0, H / math.log(2)], abs=1e-6)
    assert topk_entropy_weights(logits, k=2, alpha=2.0)[0, 2].item() == pytest.approx((H / math.log(2)) ** 2, abs=1e-6)
    m = method("eaft", "method.eaft.k=2")
    valid = torch.tensor([[False, True, True]])
    assert torch.allclose(dynamic_weights(m, torch.zeros(1, 3), valid, [], logits), w * valid)
    with pytest.raises(ConfigError, match="method.eaft.k"):
        cfg_for("method.eaft.k=1")


def test_eaft_previews_through_weights_for_documents(tokenizer, docs_file):
    """``taalm weights`` path: one forward per window, the logits reach the method."""
    from taalm.ckl.weighting import weights_for_documents

    model, docs = make_llama(len(tokenizer)), read_documents(docs_file)
    for enc, w in weights_for_documents(method("eaft"), model, tokenizer, docs):
        ids = torch.tensor([enc.input_ids])
        ref = topk_entropy_weights(model(input_ids=ids).logits.detach(), 20, 1.0)[0]
        assert torch.allclose(w[1:], ref[1:], atol=1e-5) and w[0] == 0


def test_stm_masks_tokens_the_base_model_finds_more_perplexing_than_the_threshold(tokenizer, docs_file):
    m = method("stm")
    m._losses = [torch.tensor([0.0, math.log(2.0), math.log(3.0), math.log(2.5)])]
    assert m.document_weights(0, None).tolist() == [1.0, 1.0, 0.0, 1.0]  # τ = 2.5: ppl 3 is masked
    # with a model: exactly the tokens whose perplexity under θ0 is at most τ weigh 1
    from taalm.ckl.weighting import document_token_losses, weights_for_documents

    model, docs = make_llama(len(tokenizer)), read_documents(docs_file)
    m = method("stm", "method.stm.threshold=300")
    pairs = weights_for_documents(m, model, tokenizer, docs)
    losses = document_token_losses(model, tokenizer, [e for e, _ in pairs], torch.device("cpu"))
    for (_, w), ell in zip(pairs, losses):
        assert torch.equal(w, (ell.exp() <= 300).float())
    assert 0 < sum(float(w.sum()) for _, w in pairs) < sum(len(w) for _, w in pairs)  # some masked, some not


def test_asft_kl_anchor_by_hand_and_zero_against_itself():
    p = torch.tensor([[[0.0, 0.0], [0.0, 0.0]]], requires_grad=True)  # predicts x_1 with (1/2, 1/2)
    q = torch.tensor([[[math.log(3), 0.0], [0.0, 0.0]]])  # the reference: (3/4, 1/4)
    valid = torch.tensor([[False, True]])
    kl = sequence_kl(p, q, valid)
    assert kl.item() == pytest.approx(0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25))
    kl.sum().backward()
    assert p.grad.abs().sum() > 0  # the anchor carries θ's gradient
    assert sequence_kl(q, q, valid).item() == pytest.approx(0.0, abs=1e-7)


class _Spy(WeightingMethod):
    """Records whether what the learner hands it carries gradient; returns ℓ itself as w."""

    dynamic, needs_logits = True, True
    seen: list = []

    def step_weights(self, token_losses, valid, windows, logits=None):
        _Spy.seen.append((token_losses.requires_grad, logits.requires_grad))
        return token_losses.float() * valid


def test_dynamic_weightings_get_detached_losses_and_logits(tokenizer, docs_file, monkeypatch):
    monkeypatch.setitem(WEIGHTINGS._parts, "finetune", _Spy)  # the learner builds it by name
    _Spy.seen.clear()
    learn(read_documents(docs_file), None, cfg_for(), model=make_llama(len(tokenizer)), tokenizer=tokenizer,
          options=QUIET)
    assert _Spy.seen and not any(g for pair in _Spy.seen for g in pair)


def _base_name(n: str) -> str:
    return n.replace("base_model.model.", "").replace(".base_layer", "")


@pytest.mark.parametrize("name", ["dft", "asft", "eaft", "stm", "dft+full", "eaft+recadam", "asft+kadapter",
                                  "stm+mixreview"])
def test_each_rule_trains_with_other_parts(name, tokenizer, docs_file, tmp_path):
    """Against the same run at lr 1e-12 (same θ0, same initialisation of any new parameter; an
    Adam step moves a parameter by about lr): training moves trainable parameters, and frozen
    base weights never move."""
    (tmp_path / "replay.txt").write_text("Some general text to replay.\nAnother line of it.\n")
    runs = {}
    for lr in (1e-12, 5e-3):
        model = make_llama(len(tokenizer))
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        cfg = cfg_for(f"method.name={name}", "method.stm.threshold=300", "train.epochs=2", f"train.lr={lr}",
                      f"train.mixreview.pool={tmp_path / 'replay.txt'}", "train.recadam.t0=0")
        res = learn(read_documents(docs_file), None, cfg, model=model, tokenizer=tokenizer, options=QUIET)
        assert res.steps > 0
        runs[lr] = dict(res.model.named_parameters())
    still, moved = runs[1e-12], runs[5e-3]
    assert any(float((p - still[n]).detach().abs().max()) > 1e-5 for n, p in moved.items() if p.requires_grad), name
    for n, p in moved.items():
        if not p.requires_grad and _base_name(n) in before:
            assert torch.equal(p, before[_base_name(n)]), n  # frozen weights did not move


def _base_name(n: str) -> str:
    return n.replace("base_model.model.", "").replace(".base_layer", "")


def test_asft_reference_is_theta0_even_from_a_trained_lora(tokenizer, docs_file):
    """A resumed LoRA θ has learned adapters: the reference drops them, so it is θ0 all the same."""
    from taalm.ckl.theta import wrap_theta
    from taalm.ckl.weighting import PrepareContext
    from taalm.data import prepare_windows

    cfg = cfg_for("method.name=asft")
    theta = wrap_theta(make_llama(len(tokenizer)), cfg.theta)
    with torch.no_grad():
        for n, p in theta.named_parameters():
            if "lora_B" in n:
                p.add_(0.5)  # as if trained
    ids = torch.tensor([[1, 5, 9, 13]])
    theta0 = make_llama(len(tokenizer))  # the same seed: θ0's weights
    assert not torch.allclose(theta(input_ids=ids).logits, theta0(input_ids=ids).logits, atol=1e-4)
    m = get_method(cfg.method)
    encoded, windows = prepare_windows(tokenizer, read_documents(docs_file), 64, 8)
    m.prepare(PrepareContext(theta, tokenizer, encoded, windows, torch.device("cpu")))
    assert torch.allclose(m.reference(input_ids=ids).logits, theta0(input_ids=ids).logits, atol=1e-6)
    assert not any(p.requires_grad for p in m.reference.parameters())
    assert any("lora_B" in n for n, _ in theta.named_parameters())  # θ itself keeps its adapters
