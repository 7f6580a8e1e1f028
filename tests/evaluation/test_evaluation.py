import json
import math
from types import SimpleNamespace

import pytest
import torch

from taalm.data import encode_probe, make_probe
from taalm.evaluation.probes import evaluate_probes


class Bigram(torch.nn.Module):
    """logits at position t depend only on x_t: a model whose predictions we can write by hand."""

    def __init__(self, table):
        super().__init__()
        self.table = torch.nn.Parameter(table)

    def forward(self, input_ids, attention_mask=None, position_ids=None, **kw):
        return SimpleNamespace(logits=self.table[input_ids])


def test_hand_computed_case(tokenizer):
    probe = make_probe("The Varnholt Observatory stands above the town of", "Kestrelford")
    enc = encode_probe(tokenizer, probe)
    A = enc.span
    assert len(A) >= 2, "the test needs a multi-token answer"
    ids = enc.input_ids
    V = len(tokenizer)
    table = torch.zeros(V, V)
    # first answer token: predicted right with logit 3 over a flat row
    table[ids[A[0] - 1], ids[A[0]]] = 3.0
    # every later answer token: a wrong token wins with logit 2, the gold one gets logit 1
    wrong = (ids[A[1]] + 1) % V
    for t in A[1:]:
        table[ids[t - 1]] = 0.0
        table[ids[t - 1], wrong] = 2.0
        table[ids[t - 1], ids[t]] = 1.0
    r = evaluate_probes(Bigram(table), tokenizer, [probe])
    # by hand: accuracy = 1/|A|; NLL = mean of -log softmax
    nll_first = -(3.0 - math.log(math.exp(3.0) + (V - 1)))
    nll_rest = -(1.0 - math.log(math.exp(2.0) + math.exp(1.0) + (V - 2)))
    assert r.accuracy == pytest.approx(1 / len(A))
    assert r.nll == pytest.approx((nll_first + (len(A) - 1) * nll_rest) / len(A), rel=1e-5)
    assert r.per_probe[0].n_answer_tokens == len(A)


PROBES = [
    make_probe("The capital of Sennet is", "Ilvara"),
    make_probe("The islanders of Quellmere speak Orvish .", "Orvish"),
    make_probe("Zephyrine was first described by the chemist", "Oskar Penhallow"),
    make_probe("The engines were painted", "purple"),
    make_probe("The official language of Wales is Welsh .", "Welsh"),
]


def test_left_right_padding_and_batching_agree(tiny_model, tokenizer):
    single = evaluate_probes(tiny_model, tokenizer, PROBES, batch_size=1)
    for side in ("right", "left"):
        r = evaluate_probes(tiny_model, tokenizer, PROBES, batch_size=3, padding_side=side)
        for a, b in zip(r.per_probe, single.per_probe):
            assert a.accuracy == b.accuracy
            assert a.nll == pytest.approx(b.nll, rel=1e-4, abs=1e-5)
    assert single.n == len(PROBES)
    assert single.accuracy == pytest.approx(sum(p.accuracy for p in single.per_probe) / len(PROBES))


def test_memorised_answer_scores_one(tokenizer):
    """A model that predicts every next token of the probe perfectly gets accuracy 1."""
    probe = PROBES[2]
    ids = encode_probe(tokenizer, probe).input_ids
    table = torch.zeros(len(tokenizer), len(tokenizer))
    for a, b in zip(ids, ids[1:]):
        table[a, b] = 20.0
    r = evaluate_probes(Bigram(table), tokenizer, [probe])
    assert r.accuracy == 1.0 and r.nll < 0.1


class MaskRefusingModel(torch.nn.Module):
    """Takes ``logits_to_keep`` (an int, as older transformers models do) but fails on a [B, T]
    boolean mask with IndexError, the way slicing hidden states with it fails."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.calls = []

    def forward(self, input_ids, attention_mask=None, position_ids=None, logits_to_keep=0):
        self.calls.append(type(logits_to_keep).__name__)
        if torch.is_tensor(logits_to_keep) and logits_to_keep.dim() == 2:
            raise IndexError("too many indices for tensor of dimension 1")
        return self.inner(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids)


def test_models_that_refuse_a_logits_mask_fall_back_to_all_logits(tiny_llama, tokenizer):
    plain = evaluate_probes(tiny_llama, tokenizer, PROBES, batch_size=2)
    wrapped = MaskRefusingModel(tiny_llama)
    got = evaluate_probes(wrapped, tokenizer, PROBES, batch_size=2)
    assert "Tensor" in wrapped.calls and "int" in wrapped.calls  # tried the mask, then all logits
    for a, b in zip(got.per_probe, plain.per_probe):
        assert a.accuracy == b.accuracy and a.nll == pytest.approx(b.nll, rel=1e-5)


def test_per_probe_logs_say_what_the_model_predicts(tmp_path, model_dir, docs_file, probes_file, capsys):
    """Like lm-evaluation-harness's --log_samples: each probe's prompt, answer, the predicted
    tokens at the answer positions, accuracy and NLL; in every learn run's eval/ files and from
    `taalm eval --log-samples`. The accuracy is the share of predicted tokens that are the answer's."""
    from taalm.cli import main

    out = tmp_path / "run"
    assert main(["learn", str(docs_file), "--probes", str(probes_file), "--method", "oracle", "--out", str(out),
                 "--quiet", f"model.name={model_dir}", "model.device=cpu", "train.epochs=6", "train.lr=1e-2"]) == 0
    probes = [json.loads(x) for x in probes_file.read_text().splitlines()]
    for f in ("epoch-0000.jsonl", "epoch-0006.jsonl"):
        rows = [json.loads(x) for x in (out / "eval" / f).read_text().splitlines()]
        assert [r["answer"] for r in rows] == [p["answer"] for p in probes]
        assert rows[2]["prompt"] == "The capital of Sennet is"
        for r in rows:
            assert len(r["predicted_tokens"]) == len(r["answer_tokens"]) == r["n_answer_tokens"]
            same = sum(a == b for a, b in zip(r["predicted_tokens"], r["answer_tokens"])) / r["n_answer_tokens"]
            assert r["accuracy"] == pytest.approx(same) and r["nll"] > 0
    after = [json.loads(x) for x in (out / "eval" / "epoch-0006.jsonl").read_text().splitlines()]
    assert any(r["accuracy"] > 0 for r in after)  # it learned something it now says
    log = tmp_path / "samples.jsonl"
    assert main(["eval", "--model", str(model_dir), "--adapter", str(out), "--probes", str(probes_file),
                 "--log-samples", str(log), "--quiet", "--device", "cpu"]) == 0
    again = [json.loads(x) for x in log.read_text().splitlines()]
    assert [r["predicted_tokens"] for r in again] == [r["predicted_tokens"] for r in after]
