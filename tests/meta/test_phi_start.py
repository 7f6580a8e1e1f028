"""Invented-entity pairs, the supervised start of φ, and validation on several splits (tiny models)."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import make_llama
from taalm.tools.invent import NAME_SHAPES, NameGenerator, invent_unit, invent_units
from taalm.meta.supervised import answer_labels, auto_pos_weight, span_bce, supervised_start
from taalm.meta.training import train_attention
from taalm.meta.pairs import encode_pairs
from taalm.meta.validation import merge_splits
from test_meta_train import build, cfg, make_pairs
from taalm.core.run import QUIET

UNIT = {
    "relation_code": "P19", "uuid": "u1", "subject": "Allan Peiper", "object": "Alexandra",
    "task_descriptive": "Allan Peiper was born in Alexandra .",
    "task_schematic": "Guess the object. \n  subject is Allan Peiper , relation is place of birth , object is Alexandra",
    "evidence": "Allan Peiper (born 1960 in Alexandra, Australia) is a cyclist; Allan Peiper won in Alexandra2.",
    "masked_evidence": "Allan Peiper (born 1960 in [MASK], Australia) is a cyclist; Allan Peiper won in Alexandra2.",
}


def test_names_are_seeded_unique_and_of_every_shape():
    a, b = NameGenerator(3), NameGenerator(3)
    names = [a.name(s) for s in NAME_SHAPES for _ in range(50)]
    assert names == [b.name(s) for s in NAME_SHAPES for _ in range(50)]  # seeded
    assert len({n.lower() for n in names}) == len(names)  # never twice
    assert names[0] != NameGenerator(4).name(NAME_SHAPES[0])
    by = dict(zip(NAME_SHAPES, [names[i * 50:(i + 1) * 50] for i in range(len(NAME_SHAPES))]))
    assert all(" " in n for n in by["person"]) and all(n.islower() and " " not in n for n in by["word"])
    assert all("-" in n and n.count(" ") == 1 for n in by["long"])
    avoid = NameGenerator(3, avoid={names[0]})
    assert avoid.name(NAME_SHAPES[0]) != names[0]


def test_invented_copy_replaces_every_whole_word_occurrence():
    row = invent_unit(UNIT, NameGenerator(0))
    s, o = row["subject"], row["object"]
    assert (s, o) != ("Allan Peiper", "Alexandra")
    for key in ("evidence", "masked_evidence", "task_descriptive", "task_schematic"):
        assert "Allan Peiper" not in row[key]
    assert row["evidence"].count(s) == 2 and row["evidence"].count(o) == 1
    assert "Alexandra2" in row["evidence"]  # not a whole-word occurrence: left alone
    assert row["task_descriptive"] == f"{s} was born in {o} ."
    assert row["task_schematic"].endswith(f"subject is {s} , relation is place of birth , object is {o}")
    assert "[MASK]" in row["masked_evidence"] and row["uuid"] == "u1-inv"
    assert row["invented"]["from"] == "u1" and row["invented"]["shapes"] == ["person", "place"]


def test_units_that_cannot_be_rewritten_are_counted():
    bad = dict(UNIT, object="Allan")  # the object inside the subject's name
    rows, failed = invent_units([UNIT, bad], NameGenerator(0))
    assert len(rows) == 1 and failed == 1


def test_answer_labels_skip_position_zero_and_pads(tokenizer):
    enc = encode_pairs(tokenizer, make_pairs()[:3], 64)
    T = max(len(e.doc.input_ids) for e in enc) + 2
    y, m = answer_labels(enc, T)
    for i, e in enumerate(enc):
        n = len(e.doc.input_ids)
        assert m[i, 0] == 0 and m[i, 1:n].all() and not m[i, n:].any()
        assert y[i].nonzero().flatten().tolist() == sorted(e.doc.span)
    pw = auto_pos_weight(enc)
    pos = sum(len(e.doc.span) for e in enc)
    assert pw == pytest.approx((sum(len(e.doc.input_ids) - 1 for e in enc) - pos) / pos)


def test_span_bce_is_the_weighted_binary_cross_entropy():
    w = torch.tensor([[0.3, 0.8, 0.1, 0.6]], dtype=torch.float64)
    y = torch.tensor([[0.0, 1.0, 0.0, 0.0]], dtype=torch.float64)
    m = torch.tensor([[0.0, 1.0, 1.0, 1.0]], dtype=torch.float64)
    ref = torch.nn.functional.binary_cross_entropy(w[:, 1:], y[:, 1:], reduction="none")
    ref = (ref * torch.tensor([[5.0, 1.0, 1.0]], dtype=torch.float64)).mean()
    assert span_bce(w, y, m, 5.0).item() == pytest.approx(ref.item(), rel=1e-9)


def test_supervised_start_moves_weight_onto_answers_and_loads_as_init(tokenizer, tmp_path):
    theta, phi = build(tokenizer)
    pairs = make_pairs()
    # 60 steps at 1e-2: the tiny φ separates the answer after ~40 (30 at 3e-2 stalled on one machine)
    c = cfg(**{"supervised.steps": 60, "supervised.batch_size": 4, "supervised.lr": 1e-2,
               "val.references": "false"})
    before = phi.token_weights([p.document.text for p in pairs], [e.doc for e in encode_pairs(tokenizer, pairs, 64)])
    res = supervised_start(pairs[:4], {"a": pairs[4:5], "b": pairs[5:]}, c, tmp_path / "sup", model=theta, tokenizer=tokenizer, phi=phi,
                           options=QUIET)
    rows = res.log
    assert len(rows) == 60 and rows[-1]["loss"] < rows[0]["loss"]
    last = rows[-5:]  # one step's batch is noisy (it moves with the thread count): the last five
    assert sum(r["w_answer"] for r in last) > 1.5 * sum(r["w_other"] for r in last)  # the answer weighs more
    assert rows[0]["w_answer"] < 1.2 * rows[0]["w_other"]  # and did not at the start
    enc = encode_pairs(tokenizer, pairs, 64)
    after = phi.token_weights([p.document.text for p in pairs], [e.doc for e in enc])
    assert not torch.allclose(before[0], after[0])
    info = json.loads((tmp_path / "sup" / "run.json").read_text())
    assert info["status"] == "complete" and info["kind"] == "supervised_start"
    val = [json.loads(x) for x in (tmp_path / "sup" / "val.jsonl").read_text().splitlines()]
    assert set(val[0]["splits"]) == {"a", "b"}
    assert val[0]["accuracy"] == pytest.approx((val[0]["splits"]["a"]["accuracy"] + val[0]["splits"]["b"]["accuracy"]) / 2)
    # the saved φ is what meta-training's init= loads: the same weights
    from taalm.models.phi import TrainAttention
    loaded = TrainAttention.from_pretrained(tmp_path / "sup" / "phi", model=make_llama(len(tokenizer), seed=1),
                                            tokenizer=tokenizer)
    again = loaded.token_weights([p.document.text for p in pairs], [e.doc for e in enc])
    assert torch.allclose(again[0], after[0], atol=1e-6)


def test_several_validation_splits_select_by_their_mean(tokenizer, tmp_path):
    theta, phi = build(tokenizer)
    pairs = make_pairs()
    res = train_attention(pairs[:4], {"real": pairs[4:5], "invented": pairs[5:]}, cfg(updates=2, **{"val.every": 2, "val.references": "false"}), tmp_path / "run", model=theta, tokenizer=tokenizer, phi=phi,
                          options=QUIET)
    row = res.val[-1]
    assert set(row["splits"]) == {"real", "invented"} and row["n"] == 2
    assert row["accuracy"] == pytest.approx(sum(r["accuracy"] for r in row["splits"].values()) / 2)
    assert res.best["accuracy"] == max(r["accuracy"] for r in res.val)
    one = merge_splits({"x": {"accuracy": 0.5, "nll": 1.0, "accuracy_before": 0.0, "nll_before": 2.0, "n": 3}})
    assert one == {"accuracy": 0.5, "nll": 1.0, "accuracy_before": 0.0, "nll_before": 2.0, "n": 3}


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_phi_reading_the_first_layers_equals_the_truncated_model(arch, tokenizer, tmp_path):
    """phi.layers=N: φ's weights are those of a φ built on a model that has only those N layers
    (same weights), it trains only their adapters, and it saves and loads as such."""
    from conftest import make_gpt2
    from taalm.core.config import PhiConfig
    from taalm.models.phi import TrainAttention

    make = make_llama if arch == "llama" else make_gpt2
    phi = TrainAttention(make(len(tokenizer), seed=1), tokenizer, PhiConfig(base="tiny", layers=1, head_std=0.05))
    full = make(len(tokenizer), seed=1)
    ref_model = make(len(tokenizer), seed=1)
    name = "layers" if arch == "llama" else "h"
    layers = getattr(ref_model.base_model, name)
    assert len(layers) > 1 and len(getattr(phi.backbone, name)) == 1
    ref = TrainAttention(full, tokenizer, PhiConfig(base="tiny", head_std=0.05))
    # the reference: a full φ whose layers past the first are skipped by hand
    setattr(ref.backbone, name, torch.nn.ModuleList(list(getattr(ref.backbone, name))[:1]))
    ref.backbone.config.num_hidden_layers = 1
    if hasattr(ref.backbone.config, "n_layer"):
        ref.backbone.config.n_layer = 1
    enc = tokenizer(["The capital of Sennet is Ilvara .", "Quellmere is small ."], padding=True, return_tensors="pt")
    with torch.no_grad():
        assert torch.allclose(phi(enc["input_ids"], enc["attention_mask"]), ref(enc["input_ids"], enc["attention_mask"]))
    assert all(".0." in n or n.startswith("head.") for n in phi.trainable_parameters())
    folder = phi.save_pretrained(tmp_path / "phi")
    loaded = TrainAttention.from_pretrained(folder, model=make(len(tokenizer), seed=1), tokenizer=tokenizer)
    with torch.no_grad():
        assert torch.equal(loaded(enc["input_ids"], enc["attention_mask"]), phi(enc["input_ids"], enc["attention_mask"]))
    with pytest.raises(Exception, match="phi.layers=9"):
        TrainAttention(make(len(tokenizer)), tokenizer, PhiConfig(base="tiny", layers=9))


# --------------------------------------------------------------------------------------------
# The loss-aware φ (phi.features=loss)
# --------------------------------------------------------------------------------------------
def _losses(model, tokenizer, texts):
    from taalm.ckl.weighting import document_token_losses
    from taalm.data import encode

    enc = [encode(tokenizer, t) for t in texts]
    return enc, document_token_losses(model, tokenizer, enc, "cpu", batch_size=2)


def test_document_token_losses_equal_one_forward_and_windows(tokenizer):
    from taalm.ckl.loss import token_losses
    from taalm.ckl.weighting import document_token_losses
    from taalm.data import encode

    model = make_llama(len(tokenizer), seed=0).eval()
    text = " ".join(p.document.text for p in make_pairs())
    enc = [encode(tokenizer, text)]
    ids = torch.tensor([enc[0].input_ids])
    with torch.no_grad():
        ref, _ = token_losses(model(input_ids=ids).logits, ids)
    whole = document_token_losses(model, tokenizer, enc, "cpu")[0]
    assert torch.allclose(whole, ref[0], atol=1e-5) and whole[0] == 0
    windowed = document_token_losses(model, tokenizer, enc, "cpu", max_length=16, stride=8)[0]
    assert len(windowed) == len(whole) and (windowed[1:] > 0).all()
    assert torch.allclose(windowed[1:16], whole[1:16], atol=1e-5)  # the first window sees the same context


def test_loss_aware_phi_starts_as_the_text_phi_then_reads_the_loss(tokenizer):
    from taalm.core.config import PhiConfig
    from taalm.models.phi import TrainAttention, loss_feature

    theta = make_llama(len(tokenizer), seed=0).eval()
    texts = [p.document.text for p in make_pairs()[:3]]
    enc, losses = _losses(theta, tokenizer, texts)
    text_phi = TrainAttention(make_llama(len(tokenizer), seed=1), tokenizer, PhiConfig(base="tiny", head_std=0.05))
    loss_phi = TrainAttention(make_llama(len(tokenizer), seed=1), tokenizer,
                              PhiConfig(base="tiny", head_std=0.05, features="loss"))
    w0, w1 = text_phi.token_weights(texts, enc), loss_phi.token_weights(texts, enc, losses=losses)
    assert all(torch.allclose(a, b) for a, b in zip(w0, w1))  # loss head starts at 0: φ0 unchanged
    with torch.no_grad():
        loss_phi.loss_head.bias.fill_(1.0)  # z_t += 1 · log ℓ_t(θ0)
    w2 = loss_phi.token_weights(texts, enc, losses=losses)
    for a, b, loss in zip(w0, w2, losses):
        assert torch.allclose(torch.logit(b.double()) - torch.logit(a.double()), loss_feature(loss).double(), atol=1e-4)
    with pytest.raises(Exception, match="loss-aware"):
        loss_phi.token_weights(texts, enc)
    # the loss head trains: its gradient is not zero
    w = loss_phi.weights_for_texts(texts, enc, losses=losses)
    torch.cat(w).sum().backward()
    assert loss_phi.loss_head.weight.grad.abs().sum() > 0 and "loss_head.weight" in loss_phi.trainable_parameters()


def test_loss_aware_phi_refuses_another_tokenizer(tokenizer):
    from taalm.core.config import PhiConfig
    from taalm.models.phi import TrainAttention
    from test_phi import build_small_tokenizer

    other = build_small_tokenizer()
    theta = make_llama(len(other), seed=0).eval()
    texts = [make_pairs()[0].document.text]
    enc, losses = _losses(theta, other, texts)
    phi = TrainAttention(make_llama(len(tokenizer), seed=1), tokenizer, PhiConfig(base="tiny", features="loss"))
    with pytest.raises(Exception, match="tokenise identically"):
        phi.token_weights(texts, enc, losses=losses)


def test_meta_training_a_loss_aware_phi_moves_its_loss_head(tokenizer, tmp_path):
    from taalm.core.config import PhiConfig
    from taalm.models.phi import TrainAttention

    theta = make_llama(len(tokenizer), seed=0)
    phi = TrainAttention(make_llama(len(tokenizer), seed=1), tokenizer,
                         PhiConfig(base="tiny", head_std=0.05, features="loss"))
    before = {n: p.detach().clone() for n, p in phi.trainable_parameters().items()}
    pairs = make_pairs()
    res = train_attention(pairs[:4], pairs[4:], cfg(updates=2, **{"val.every": 2, "val.references": "false"}), tmp_path / "run", model=theta, tokenizer=tokenizer, phi=phi,
                          options=QUIET)
    after = res.phi.trainable_parameters()
    assert not torch.equal(before["loss_head.weight"], after["loss_head.weight"])
    assert [r["update"] for r in res.val] == [0, 2] and (tmp_path / "run" / "weights.html").is_file()


def test_cli_supervised_start_then_meta_training_on_two_splits(model_dir, tmp_path, capsys):
    """The documented workflow on a tiny model: `--supervised` writes a loadable φ validated on
    every --val split, `init=` meta-trains from it, `best/` follows the mean of the splits."""
    from taalm.cli import main
    from taalm.core.files import load_tensors
    from test_meta_train import FACTS

    rows = [{"document": t, "task": f"Guess the object. subject is {s} , relation is {r} , object is {o}",
             "answer": o, "id": str(i)} for i, (t, s, r, o) in enumerate(FACTS)]
    files = {}
    for name, part in (("train", rows[:4]), ("val", rows[4:5]), ("val_invented", rows[5:])):
        files[name] = tmp_path / f"{name}.jsonl"
        files[name].write_text("".join(json.dumps(r) + "\n" for r in part))
    common = ["--pairs", str(files["train"]), "--val", str(files["val"]), "--val", str(files["val_invented"]),
              "--base", str(model_dir), "--quiet", "theta.r=4", "phi.lora.r=4", "phi.layers=1", "val.epochs=1",
              "val.references=false", "batch_pairs=2", "micro_pairs=2"]
    assert main(["train-attention", "--supervised", *common, "--out", str(tmp_path / "sup"),
                 "supervised.steps=3", "supervised.batch_size=2"]) == 0
    out = capsys.readouterr().out
    assert "best:" not in out and "val accuracy" in out
    sup = tmp_path / "sup"
    assert json.loads((sup / "phi" / "phi_config.json").read_text())["config"]["layers"] == 1
    assert set(json.loads((sup / "val.jsonl").read_text().splitlines()[0])["splits"]) == {"val", "val_invented"}
    assert main(["train-attention", *common, "--out", str(tmp_path / "meta"), "updates=0",
                 f"init={sup / 'phi'}"]) == 0
    a, b = (load_tensors(d / "phi" / "phi.safetensors") for d in (sup, tmp_path / "meta"))
    assert set(a) == set(b) and all(torch.equal(a[n], b[n]) for n in a)  # meta-training starts there
    assert main(["train-attention", "--supervised", *common, "--out", str(tmp_path / "sup"), "--resume"]) == 2
    dup = ["--pairs", str(files["train"]), "--val", str(files["val"]), "--val", str(files["val"]),
           "--out", str(tmp_path / "dup")]
    assert main(["train-attention", *dup]) == 2 and not (tmp_path / "dup").exists()
