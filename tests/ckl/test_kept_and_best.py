"""Kept (old knowledge measured on every run), exact match, train.keep=best and φ's floor."""

import json

import pytest
import torch

from conftest import make_llama
from taalm.ckl.config import LearnConfig
from taalm.ckl.learner import LearnOptions, keep_score, learn
from taalm.core.config import load_config
from taalm.core.errors import ConfigError
from taalm.core.run import QUIET, RunOptions
from taalm.data import make_probe, read_documents, read_probes
from taalm.evaluation.keep import general_facts, outcome, select_known
from taalm.evaluation.probes import encode_probes, evaluate_probes


def cfg_for(*overrides):
    base = ["train.epochs=3", "train.lr=5e-2", "train.batch_size=2", "theta.lora.r=4", "eval.every_epoch=true"]
    return load_config(LearnConfig, None, base + list(overrides))


class Teller(torch.nn.Module):
    """A stand-in LM whose argmax at every position is the true next token, except in the rows
    ``miss`` names (by their tokens): there the last prediction is wrong ("last") or all are
    ("all"). So we choose which answers are exact."""

    def __init__(self, vocab: int, miss: dict | None = None):
        super().__init__()
        self.vocab, self.miss = vocab, miss or {}
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, attention_mask=None, position_ids=None, logits_to_keep=None):
        B, T = input_ids.shape
        logits = torch.zeros(B, T, self.vocab)
        nxt = torch.roll(input_ids, -1, dims=1)
        logits.scatter_(2, nxt[..., None], 5.0)
        for b in range(B):
            how = self.miss.get(tuple(input_ids[b][attention_mask[b].bool()].tolist()))
            if how is not None:
                last = int(attention_mask[b].sum()) - 2  # the prediction of the sequence's last token
                at = slice(0, last + 1) if how == "all" else slice(last, last + 1)
                logits[b, at] = torch.nn.functional.one_hot((nxt[b, at] + 1) % self.vocab, self.vocab) * 5.0
        return type("Out", (), {"logits": logits})()


def test_exact_match_needs_every_answer_token(tokenizer):
    probes = [make_probe("The capital of Sennet is Ilvara Kestrelford", "Ilvara Kestrelford", "two"),
              make_probe("The islanders speak Orvish", "Orvish", "one")]
    ids = [tuple(e.input_ids) for e in encode_probes(tokenizer, probes)]
    assert len(tokenizer(" Ilvara Kestrelford", add_special_tokens=False)["input_ids"]) >= 2
    right = evaluate_probes(Teller(len(tokenizer)), tokenizer, probes, answer_logits_only=False)
    assert [s.exact for s in right.per_probe] == [1.0, 1.0] and right.exact == 1.0 and right.accuracy == 1.0
    wrong = evaluate_probes(Teller(len(tokenizer), {ids[0]: "last"}), tokenizer, probes, answer_logits_only=False)
    first = wrong.per_probe[0]
    assert first.exact == 0.0 and 0.0 < first.accuracy < 1.0  # the last answer token missed, the others not
    assert wrong.per_probe[1].exact == 1.0 and wrong.exact == 0.5
    assert wrong.summary()["exact"] == 0.5


def test_select_known_keeps_exact_answers_spread_over_kinds(tokenizer):
    facts = general_facts()
    assert len(facts) >= 250 and len({p.id for p in facts}) == len(facts)
    chosen = select_known(Teller(len(tokenizer)), tokenizer, facts, limit=40)
    kinds = [p.id.split("-")[0] for p in chosen]
    assert len(chosen) == 40 and len(set(kinds)) == 5 and max(kinds.count(k) for k in set(kinds)) == 8
    missed = {tuple(e.input_ids): "all" for e in encode_probes(tokenizer, facts[:200])}
    rest = select_known(Teller(len(tokenizer), missed), tokenizer, facts, limit=500)
    kept = {p.id for p, e in zip(facts, encode_probes(tokenizer, facts)) if tuple(e.input_ids) not in missed}
    assert {p.id for p in rest} == kept and len(kept) >= 60


def test_kept_is_measured_and_reported_beside_learned(tmp_path, tokenizer, docs_file, probes_file):
    kept = tmp_path / "kept.jsonl"
    kept.write_text("".join(json.dumps({"prompt": f"The capital of Sennet is {w}", "answer": w}) + "\n"
                            for w in ("Ilvara", "Orvish")))
    docs, probes = read_documents(docs_file), read_probes(probes_file)
    res = learn(docs, probes, cfg_for(f"data.kept={kept}"), tmp_path / "run", model=make_llama(len(tokenizer)),
                tokenizer=tokenizer, options=QUIET)
    assert all(row["kept"]["n"] == 2 for row in res.history)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    last = res.history[-1]
    assert summary["result"] == outcome(last, res.history[0]) == res.result
    r = summary["result"]
    assert r["learned"] == last["accuracy"] and r["kept"] == last["kept"]["accuracy"]
    assert r["total"] == pytest.approx(r["learned"] + r["kept"]) and r["kept_before"] == res.history[0]["kept"]["accuracy"]
    assert summary["kept_epoch"] == 3 and summary["keep"] == "last"
    assert (tmp_path / "run" / "eval" / "epoch-0003.kept.jsonl").is_file()


def test_builtin_kept_set_is_skipped_with_a_note_when_the_model_knows_none(tokenizer, docs_file):
    said = []
    res = learn(read_documents(docs_file), None, cfg_for("train.epochs=1"), model=make_llama(len(tokenizer)),
                tokenizer=tokenizer, options=LearnOptions(progress=False, log=said.append))
    assert any("answers none of the built-in general facts" in m for m in said)
    assert res.history == []


def test_builtin_kept_set_is_what_the_base_model_answers(tokenizer, docs_file, probes_file, monkeypatch):
    chosen = general_facts()[:5]
    seen = []

    def fake_select(model, tok, probes, limit=100, batch_size=32):
        seen.append(next(model.parameters()).detach().clone())
        return chosen

    monkeypatch.setattr("taalm.ckl.learner.select_known", fake_select)
    model = make_llama(len(tokenizer))
    first = next(model.parameters()).detach().clone()
    res = learn(read_documents(docs_file), read_probes(probes_file), cfg_for("train.epochs=1"), model=model,
                tokenizer=tokenizer, options=QUIET)
    assert torch.equal(seen[0], first)  # selected on θ0, before any step
    assert res.history[0]["kept"]["n"] == 5 and res.history[-1]["kept"]["n"] == 5


def test_keep_best_keeps_the_best_epochs_theta_and_resumes_to_it(tmp_path, tokenizer, docs_file, probes_file):
    docs, probes = read_documents(docs_file), read_probes(probes_file)
    val = tmp_path / "val.jsonl"
    val.write_text("".join(json.dumps({"prompt": p.text, "answer": p.answer}) + "\n" for p in probes[:2]))
    cfg = cfg_for("train.keep=best", f"data.val={val}", "data.kept=none", "train.epochs=4")
    states = {}
    model = make_llama(len(tokenizer))

    def remember(event):
        states[event["epoch"]] = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}

    res = learn(docs, probes, cfg, tmp_path / "a", model=model, tokenizer=tokenizer,
                options=LearnOptions(progress=False, log=lambda m: None, callbacks=[remember]))
    scores = [keep_score(r) for r in res.history]
    best = res.history[max(range(len(scores)), key=lambda i: (scores[i], -i))]["epoch"]
    assert scores == [r["val"]["accuracy"] for r in res.history] and res.kept_epoch == best
    final = {n: p for n, p in res.model.named_parameters() if p.requires_grad}
    if best > 0:
        for n, p in final.items():
            assert torch.equal(p, states[best][n]), n
    again = evaluate_probes(res.model, tokenizer, probes)
    chosen = next(r for r in res.history if r["epoch"] == best)
    assert again.accuracy == pytest.approx(chosen["accuracy"]) and again.nll == pytest.approx(chosen["nll"], abs=1e-5)
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["kept_epoch"] == best and summary["result"]["val"] == chosen["val"]["accuracy"]

    def stop_after_two(event):
        if event["epoch"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        learn(docs, probes, cfg, tmp_path / "b", model=make_llama(len(tokenizer)), tokenizer=tokenizer,
              options=LearnOptions(progress=False, log=lambda m: None, callbacks=[stop_after_two]))
    resumed = learn(docs, probes, cfg, tmp_path / "b", model=make_llama(len(tokenizer)), tokenizer=tokenizer,
                    options=RunOptions(resume=True, progress=False, log=lambda m: None))
    assert resumed.kept_epoch == best
    for n, p in resumed.model.named_parameters():
        if p.requires_grad:
            assert torch.equal(p, final[n]), n


def test_keep_best_is_refused_without_a_score(tokenizer, docs_file):
    with pytest.raises(ConfigError, match="train.keep"):
        learn(read_documents(docs_file), None, cfg_for("train.keep=best", "data.kept=none"),
              model=make_llama(len(tokenizer)), tokenizer=tokenizer, options=QUIET)
    with pytest.raises(ConfigError, match="every_epoch"):
        cfg_for("train.keep=best", "eval.every_epoch=false")


def test_phi_floor_mixes_uniform_weight_under_phi(tokenizer, model_dir, docs_file, tmp_path):
    from taalm.ckl.method import get_method
    from taalm.ckl.weighting import weights_for_documents
    from taalm.core.config import PhiConfig
    from taalm.models.phi import TrainAttention

    phi = TrainAttention(make_llama(len(tokenizer)), tokenizer, PhiConfig(base=str(model_dir), head_std=0.5))
    ckpt = phi.save_pretrained(tmp_path / "phi")
    docs = read_documents(docs_file)
    model = make_llama(len(tokenizer))
    taalm = ["method.name=taalm", f"method.taalm.checkpoint={ckpt}"]
    plain = weights_for_documents(get_method(cfg_for(*taalm).method), model, tokenizer, docs, 64, 8)
    mixed = weights_for_documents(get_method(cfg_for(*taalm, "method.taalm.floor=0.25").method),
                                  model, tokenizer, docs, 64, 8)
    assert any(float(w0.std()) > 0 for _, w0 in plain)  # φ's weights vary, so the mix is seen
    for (_, w0), (_, w1) in zip(plain, mixed):
        assert torch.allclose(w1, 0.25 + 0.75 * w0)
    sharp = weights_for_documents(get_method(cfg_for(*taalm, "method.taalm.sharpen=3").method),
                                  model, tokenizer, docs, 64, 8)
    for (_, w0), (_, w3) in zip(plain, sharp):
        assert torch.allclose(w3, w0 ** 3)
    with pytest.raises(ConfigError, match="floor"):
        cfg_for("method.taalm.floor=1.5")
    with pytest.raises(ConfigError, match="sharpen"):
        cfg_for("method.taalm.sharpen=0")
