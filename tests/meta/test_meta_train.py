"""Meta-training loop on tiny models: outputs, φ changes while θ's base does not, resume."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import make_llama
from taalm.core.config import load_config
from taalm.meta.config import MetaTrainConfig
from taalm.data import Document, Pair, make_probe, read_pairs
from taalm.core.errors import ConfigError, InputError
from taalm.meta.training import train_attention
from taalm.meta.pairs import encode_pairs, make_batch, pair_stream
from taalm.models.phi import TrainAttention
from taalm.core.config import PhiConfig
from taalm.core.run import QUIET, RunOptions

FACTS = [
    ("The Varnholt Observatory stands above the town of Kestrelford .", "Varnholt Observatory", "location", "Kestrelford"),
    ("Quellmere is a small island in the northern sea. The islanders speak Orvish .", "Quellmere", "language", "Orvish"),
    ("The capital of Sennet is Ilvara, a city of stone bridges and yellow lanterns.", "Sennet", "capital", "Ilvara"),
    ("Zephyrine was first described by the chemist Oskar Penhallow near Drummoch.", "Zephyrine", "discoverer", "Oskar Penhallow"),
    ("The engines of the Calder Line were painted purple, and the last train ran in 1958.", "Calder Line", "colour", "purple"),
    ("The official language of Wales is Welsh . Paris is the capital of France .", "Wales", "official language", "Welsh"),
]


def make_pairs():
    out = []
    for i, (text, s, r, o) in enumerate(FACTS):
        task = f"Guess the object. subject is {s} , relation is {r} , object is {o}"
        out.append(Pair(Document(text, o, str(i), f"mem:{i}", text.rfind(o)), make_probe(task, o, str(i), f"mem:{i}")))
    return out


def cfg(**kw) -> MetaTrainConfig:
    c = load_config(MetaTrainConfig, None, [
        "updates=4", "batch_pairs=4", "micro_pairs=2", "lr=1e-2", "inner.lr=1e-2", "theta.r=4",
        "theta.alpha=8", "val.every=2", "val.n_pairs=2", "val.epochs=1", "val.lr=1e-2",
        "checkpoint_every=2", "model.device=cpu"] + [f"{k}={v}" for k, v in kw.items()])
    return c


def build(tokenizer):
    theta = make_llama(len(tokenizer), seed=0)
    phi = TrainAttention(make_llama(len(tokenizer), seed=1), tokenizer, PhiConfig(base="tiny", head_std=0.05))
    return theta, phi


def test_pair_stream_is_a_sequence_of_permutations():
    s = pair_stream(5, 0, 0, 12)
    assert sorted(s[:5]) == list(range(5)) and sorted(s[5:10]) == list(range(5))
    assert pair_stream(5, 0, 3, 6) == s[3:9]  # resumable at any position


def test_batch_answer_masks(tokenizer):
    enc = encode_pairs(tokenizer, make_pairs()[:2], 64)
    b = make_batch(enc, tokenizer.pad_token_id, "cpu")
    for i, e in enumerate(enc):
        toks = tokenizer.decode([e.task_ids[j] for j in e.task_span])
        assert toks.strip() == FACTS[i][3]
        assert b.answer[i].sum() == len(e.task_span)
        assert tokenizer.decode([e.doc.input_ids[j] for j in e.doc.span]).strip() == FACTS[i][3]


def test_documents_are_cut_at_max_doc_tokens(tokenizer):
    e = encode_pairs(tokenizer, make_pairs()[:1], 5)[0]
    assert len(e.doc.input_ids) == 5 and e.doc.span == []
    assert tokenizer(e.text)["input_ids"] == e.doc.input_ids


def test_meta_training_end_to_end(tokenizer, tmp_path):
    theta, phi = build(tokenizer)
    base_before = {n: p.clone() for n, p in theta.named_parameters()}
    phi_before = {n: p.detach().clone() for n, p in phi.trainable_parameters().items()}
    frozen_before = {n: p.detach().clone() for n, p in phi.named_parameters() if not p.requires_grad}
    res = train_attention(make_pairs(), None, cfg(), tmp_path / "run", model=theta, tokenizer=tokenizer, phi=phi,
                          options=QUIET)
    out = tmp_path / "run"
    for f in ("config.yaml", "run.json", "log.jsonl", "val.jsonl", "summary.json", "validation.png",
              "weights.html", "weights.png", "phi/phi_config.json", "best/phi.safetensors"):
        assert (out / f).exists(), f
    assert json.loads((out / "run.json").read_text())["status"] == "complete"
    assert [r["update"] for r in res.val] == [0, 2, 4]
    assert len(res.log) == 4 and all(r["outer"] > 0 for r in res.log)
    # φ's trainable tensors moved; its frozen backbone and θ's base did not
    assert any(not torch.equal(phi_before[n], p) for n, p in phi.trainable_parameters().items())
    assert all(torch.equal(frozen_before[n], p) for n, p in phi.named_parameters() if not p.requires_grad)
    assert all(torch.equal(base_before[n], p) for n, p in theta.named_parameters())
    # the saved φ reloads to the same weights
    again = TrainAttention.from_pretrained(out / "phi", model=make_llama(len(tokenizer), seed=1), tokenizer=tokenizer)
    e = encode_pairs(tokenizer, make_pairs()[:1], 64)[0]
    assert torch.allclose(again.token_weights([e.text], [e.doc])[0], phi.token_weights([e.text], [e.doc])[0])


@pytest.mark.parametrize("unrelated", [0.0, 0.5])
def test_resume_equals_uninterrupted(tokenizer, tmp_path, unrelated):
    """A run stopped after update 2 and resumed = the uninterrupted run, also with the
    unrelated-task penalty (whose draws must not depend on an RNG state lost at the stop)."""
    kw = {"unrelated_weight": unrelated, "val.n_pairs": 1}  # 5 training pairs: offsets 1..4
    theta, phi = build(tokenizer)
    full = train_attention(make_pairs(), None, cfg(**kw), tmp_path / "a", model=theta, tokenizer=tokenizer, phi=phi,
                           options=QUIET)
    theta2, phi2 = build(tokenizer)
    train_attention(make_pairs(), None, cfg(updates=2, **kw), tmp_path / "b", model=theta2, tokenizer=tokenizer, phi=phi2,
                    options=QUIET)
    theta3, phi3 = build(tokenizer)
    res = train_attention(make_pairs(), None, cfg(**kw), tmp_path / "b", model=theta3, tokenizer=tokenizer, phi=phi3,
                          options=RunOptions(resume=True, progress=False, log=lambda m: None))
    for n, p in full.phi.trainable_parameters().items():
        assert torch.allclose(p, res.phi.trainable_parameters()[n], rtol=0, atol=1e-6), n
    assert [r["update"] for r in res.log] == [1, 2, 3, 4]
    assert [r["outer"] for r in res.log] == pytest.approx([r["outer"] for r in full.log], rel=1e-6)


def test_unrelated_offsets_are_a_function_of_the_position():
    from taalm.meta.pairs import unrelated_offset

    draws = [unrelated_offset(0, u, k, 7) for u in range(1, 30) for k in (0, 4)]
    assert all(1 <= d < 7 for d in draws) and len(set(draws)) > 3
    assert draws == [unrelated_offset(0, u, k, 7) for u in range(1, 30) for k in (0, 4)]
    assert unrelated_offset(0, 3, 0, 1) == 0


@pytest.mark.parametrize("max_doc_tokens", [16, 64])
def test_small_documents_validate(tokenizer, tmp_path, max_doc_tokens):
    """Validation windows of ≤ 64 tokens (stride 64 would never advance) run to the end."""
    from taalm.meta.validation import val_stride, val_window

    assert val_stride(max_doc_tokens) < val_window(max_doc_tokens)
    theta, phi = build(tokenizer)
    res = train_attention(make_pairs(), None, cfg(updates=1, max_doc_tokens=max_doc_tokens, **{"val.every": 1}), None, model=theta, tokenizer=tokenizer, phi=phi,
                          options=QUIET)
    assert [r["update"] for r in res.val] == [0, 1]


def test_validation_at_start_can_be_skipped(tokenizer):
    theta, phi = build(tokenizer)
    res = train_attention(make_pairs(), None, cfg(updates=2, **{"val.at_start": False, "val.references": False}), None, model=theta, tokenizer=tokenizer, phi=phi,
                          options=QUIET)
    assert [r["update"] for r in res.val] == [2] and res.best["update"] == 2


def test_config_is_checked_before_models_load(tmp_path, monkeypatch):
    import taalm.models.loading

    def no_loading(*a, **k):
        raise AssertionError("models must not load before the configuration is checked")

    monkeypatch.setattr(taalm.models.loading, "load_model", no_loading)
    for bad, key in (({"max_doc_tokens": 1}, "max_doc_tokens"), ({"task_field": "task_x"}, "task_field"),
                     ({"val.epochs": 0}, "val.epochs")):
        with pytest.raises(ConfigError, match=key):
            train_attention(make_pairs(), None, cfg(**bad), tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_engines_give_the_same_update(tokenizer, tmp_path):
    results = {}
    for engine in ("double_backward", "directional"):
        theta, phi = build(tokenizer)
        results[engine] = train_attention(make_pairs(), None, cfg(engine=engine, updates=1, **{"val.every": 0}), None, model=theta, tokenizer=tokenizer, phi=phi,
                                          options=QUIET)
    a, b = (results[e].log[0] for e in ("double_backward", "directional"))
    assert a["outer"] == pytest.approx(b["outer"], rel=1e-5)
    assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-3)  # φ's gradient (float32)


def test_bad_config_and_pairs(tmp_path):
    with pytest.raises(ConfigError, match="engine"):
        train_attention(make_pairs(), None, cfg(engine="magic"), None)
    p = tmp_path / "pairs.jsonl"
    p.write_text(json.dumps({"document": "x is y", "task": "x is"}) + "\n")
    with pytest.raises(InputError, match="line 1, field 'answer'"):
        read_pairs(p)
    p.write_text(json.dumps({"evidence": "Wales speaks Welsh", "task_schematic": "Guess. object is French",
                             "object": "Welsh"}) + "\n")
    with pytest.raises(InputError, match="does not occur in the task"):
        read_pairs(p)


def test_cli_train_attention(model_dir, tmp_path, capsys):
    from taalm.cli import main

    rows = [{"document": t, "task": f"Guess the object. subject is {s} , relation is {r} , object is {o}",
             "answer": o, "id": str(i)} for i, (t, s, r, o) in enumerate(FACTS)]
    p = tmp_path / "pairs.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "phi"
    rc = main(["train-attention", "--pairs", str(p), "--base", str(model_dir), "--out", str(out), "--quiet",
               "updates=2", "batch_pairs=2", "micro_pairs=2", "val.n_pairs=2", "val.every=2", "val.epochs=1",
               "theta.r=4", "phi.lora.r=4"])
    assert rc == 0
    assert (out / "phi" / "phi.safetensors").exists() and (out / "validation.png").exists()
    assert "val accuracy" in capsys.readouterr().out
    # the result is a usable φ for method 'taalm'
    from taalm.ckl.config import LearnConfig
    from taalm.ckl.learner import learn

    docs = [pp.document for pp in read_pairs(p)]
    c = load_config(LearnConfig, None, [f"model.name={model_dir}", "method.name=taalm",
                                        f"method.taalm.checkpoint={out / 'phi'}", "train.epochs=1"])
    res = learn(docs, None, c, tmp_path / "learned", options=QUIET)
    steps = [json.loads(x) for x in (tmp_path / "learned" / "metrics.jsonl").read_text().splitlines()]
    weights = [r["mean_weight"] for r in steps if r["type"] == "step"]
    assert res.steps == len(weights) > 0 and all(0.0 < w < 0.999 for w in weights)  # φ's weights, not 1
    assert main(["train-attention", "--pairs", str(p), "--out", str(tmp_path / "x"), "engine=nope"]) == 2


def test_phi_lr_schedules():
    from taalm.meta.training import phi_lr

    c = cfg(updates=5, lr=1e-2, lr_final=0.1)
    assert [phi_lr(c, t) for t in range(1, 6)] == [1e-2] * 5  # constant by default
    c = cfg(updates=5, lr=1e-2, lr_final=0.1, lr_schedule="cosine")
    assert phi_lr(c, 1) == pytest.approx(1e-2) and phi_lr(c, 5) == pytest.approx(1e-3)
    assert phi_lr(c, 3) == pytest.approx(1e-2 * (0.1 + 0.9 * 0.5))  # halfway: the mean of both ends
    lin = cfg(updates=5, lr=1e-2, lr_final=0.0, lr_schedule="linear")
    assert [phi_lr(lin, t) for t in range(1, 6)] == pytest.approx([1e-2, 7.5e-3, 5e-3, 2.5e-3, 0.0])
    with pytest.raises(ConfigError, match="lr_schedule"):
        train_attention(make_pairs(), None, cfg(lr_schedule="step"), None)


def test_schedule_reaches_the_optimizer(tokenizer):
    """linear to 0 over 2 updates: update 2 runs at lr 0, so φ ends where a 1-update run ends."""
    ends = []
    for kw in ({"updates": 1}, {"updates": 2, "lr_schedule": "linear", "lr_final": 0.0}):
        theta, phi = build(tokenizer)
        res = train_attention(make_pairs(), None, cfg(**kw, **{"val.every": 0}), None, model=theta, tokenizer=tokenizer, phi=phi,
                              options=QUIET)
        ends.append({n: p.detach().clone() for n, p in res.phi.trainable_parameters().items()})
    assert res.log[1]["lr"] == 0.0
    assert all(torch.equal(ends[0][n], ends[1][n]) for n in ends[0])
    theta, phi = build(tokenizer)
    moved = train_attention(make_pairs(), None, cfg(updates=2, **{"val.every": 0}), None, model=theta, tokenizer=tokenizer, phi=phi,
                            options=QUIET)
    assert any(not torch.equal(ends[0][n], p) for n, p in moved.phi.trainable_parameters().items())


def test_warm_start_from_a_saved_phi(model_dir, tmp_path):
    """init=FOLDER starts φ from a saved φ: with 0 updates the run's φ is that φ, tensor for tensor."""
    from taalm.cli import main
    from taalm.core.files import load_tensors

    rows = [{"document": t, "task": f"{s} {r} {o}", "answer": o, "id": str(i)} for i, (t, s, r, o) in enumerate(FACTS)]
    p = tmp_path / "pairs.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    common = ["--pairs", str(p), "--base", str(model_dir), "--quiet", "batch_pairs=2", "micro_pairs=2",
              "val.n_pairs=2", "val.every=0", "theta.r=4", "phi.lora.r=4", "phi.head_std=0.05"]
    assert main(["train-attention", *common, "--out", str(tmp_path / "a"), "updates=2", "lr=1e-2"]) == 0
    assert main(["train-attention", *common, "--out", str(tmp_path / "b"), "updates=0",
                 f"init={tmp_path / 'a' / 'phi'}"]) == 0
    a, b = (load_tensors(tmp_path / d / "phi" / "phi.safetensors") for d in ("a", "b"))
    assert set(a) == set(b) and all(torch.equal(a[n], b[n]) for n in a)
    assert main(["train-attention", *common, "--out", str(tmp_path / "c"), f"init={tmp_path}"]) == 2
    assert not (tmp_path / "c").exists()


def test_stream_offset_continues_the_pair_stream(tokenizer):
    """stream_offset=batch_pairs: update 1 trains on the pairs of update 2 of a run from 0 (the
    outer loss at θ0 depends on the pairs only, not on φ)."""
    theta, phi = build(tokenizer)
    full = train_attention(make_pairs(), None, cfg(updates=2, batch_pairs=2, **{"val.every": 0}), None, model=theta, tokenizer=tokenizer, phi=phi,
                           options=QUIET)
    theta, phi = build(tokenizer)
    off = train_attention(make_pairs(), None, cfg(updates=1, batch_pairs=2, stream_offset=2, **{"val.every": 0}), None, model=theta, tokenizer=tokenizer, phi=phi,
                          options=QUIET)
    assert off.log[0]["outer0"] == pytest.approx(full.log[1]["outer0"], rel=1e-6)
    assert full.log[0]["outer0"] != pytest.approx(full.log[1]["outer0"], rel=1e-6)


def test_any_failure_marks_the_run_interrupted(tokenizer, tmp_path, monkeypatch):
    """Not only Ctrl-C: an exception inside an update leaves run.json "interrupted" and the
    checkpoint before it resumable."""
    import taalm.meta.training as mt

    real = mt._meta_update

    def failing(phi, theta, enc, c, update, *a, **kw):
        if update == 3:
            raise RuntimeError("disk on fire")
        return real(phi, theta, enc, c, update, *a, **kw)

    monkeypatch.setattr(mt, "_meta_update", failing)
    theta, phi = build(tokenizer)
    with pytest.raises(RuntimeError, match="disk on fire"):
        train_attention(make_pairs(), None, cfg(**{"val.every": 0}), tmp_path / "run", model=theta, tokenizer=tokenizer, phi=phi,
                        options=QUIET)
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["status"] == "interrupted"
    assert json.loads((tmp_path / "run" / "checkpoints" / "latest.json").read_text())["update"] == 2
    assert [json.loads(x)["update"] for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()] == [1, 2]


def test_phi_learns_to_weight_the_answer(tokenizer):
    """A toy φ (one weight logit per vocabulary token) meta-trained with the meta-gradient on a
    tiny float64 θ: the answer tokens' mean weight rises above the other tokens', and the outer
    loss (the task's answer NLL after θ's weighted step) falls."""
    from taalm.meta.config import InnerConfig, MetaThetaConfig
    from taalm.meta.gradient import meta_step
    from taalm.meta.theta import MetaTheta

    from conftest import make_gpt2

    enc = encode_pairs(tokenizer, make_pairs(), 64)
    batch = make_batch(enc, tokenizer.pad_token_id, torch.device("cpu"))
    theta = MetaTheta(make_gpt2(len(tokenizer)).double(), MetaThetaConfig(r=4, alpha=8))
    settings = MetaTrainConfig(engine="directional", inner=InnerConfig(optimizer="sgd", lr=0.5, k_warm=0))
    z = torch.zeros(len(tokenizer), dtype=torch.float64, requires_grad=True)  # φ: w = sigmoid(z[token])
    opt = torch.optim.Adam([z], lr=0.05)
    answer = torch.zeros(batch.doc_ids.shape, dtype=torch.bool)
    for i, e in enumerate(enc):
        answer[i, e.doc.span] = True
    other = batch.doc_mask.bool() & ~answer
    outer = []
    for _ in range(12):
        w = torch.sigmoid(z[batch.doc_ids])  # [P, T]
        r = meta_step(theta, batch, w, settings)
        outer.append(r.outer.mean().item())
        opt.zero_grad()
        w.backward(r.grad_w)
        opt.step()
    with torch.no_grad():
        w = torch.sigmoid(z[batch.doc_ids])
    assert w[answer].mean() > w[other].mean() + 0.1  # started equal (0.5 everywhere)
    assert outer[-1] < outer[0]
