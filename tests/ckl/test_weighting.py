import json

import pytest
import torch

from taalm.ckl.config import MethodConfig
from taalm.ckl.weighting.rho1 import Rho1Config
from taalm.data import collate, encode_document, prepare_windows, read_documents
from taalm.core.errors import ConfigError
from taalm.ckl.loss import token_losses
from taalm.ckl.weighting import PrepareContext, available_methods, select_top_fraction, weights_for_documents
from taalm.ckl.method import get_method
from taalm.core.run import QUIET


def test_registry_and_unknown_method():
    assert {"finetune", "oracle", "random", "rho1"} <= set(available_methods())
    with pytest.raises(ConfigError, match="unknown weighting method 'nope'.*available: .*finetune"):
        get_method("nope")


def test_static_methods(tokenizer, docs_file):
    docs = read_documents(docs_file)
    enc = encode_document(tokenizer, docs[0])
    n = len(enc.input_ids)
    assert torch.equal(get_method("finetune").document_weights(0, enc), torch.ones(n))
    w = get_method("oracle").document_weights(0, enc)
    assert w.sum() == len(enc.span) > 0 and w[enc.span].eq(1).all()
    cfg = MethodConfig(name="random")
    cfg.random.mean = 0.8
    r1 = get_method(cfg, seed=3).document_weights(0, enc)
    assert torch.equal(r1, get_method(cfg, seed=3).document_weights(0, enc))  # seeded
    assert not torch.equal(r1, get_method(cfg, seed=4).document_weights(0, enc))
    big = get_method(cfg, seed=0).document_weights(0, type(enc)(list(range(20000)), []))
    assert abs(big.mean().item() - 0.8) < 0.01 and big.min() >= 0 and big.max() <= 1


def test_select_top_fraction_is_exact_top_k():
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(4, 9, generator=g)
    valid = torch.rand(4, 9, generator=g) > 0.3
    for ratio in (0.1, 0.4, 0.75, 1.0):
        sel = select_top_fraction(scores, valid, ratio).bool()
        n_valid = int(valid.sum())
        k = max(1, round(ratio * n_valid))
        assert int(sel.sum()) == k
        assert not (sel & ~valid).any()  # never selects a pad/context position
        ranked = sorted(scores[valid].tolist(), reverse=True)
        assert sorted(scores[sel].tolist(), reverse=True) == ranked[:k]  # exactly the top k by rank
        if k < n_valid:
            assert scores[sel].min() >= scores[valid & ~sel].max()


def test_rho1_selects_top_excess_loss(tokenizer, tiny_llama, docs_file):
    """RHO-1 keeps exactly the top-k tokens by excess loss l(theta) - l(ref)."""
    from conftest import make_llama

    docs = read_documents(docs_file)
    encoded, windows = prepare_windows(tokenizer, docs, 64, 8)
    method = get_method(MethodConfig(name="rho1", rho1=Rho1Config(ratio=0.4)))
    ref_model = make_llama(len(tokenizer), seed=1)  # the reference: another model
    method.prepare(PrepareContext(ref_model, tokenizer, encoded, windows, torch.device("cpu"), 2))
    batch = collate(windows, tokenizer.pad_token_id)
    with torch.no_grad():
        lt, mask = token_losses(tiny_llama(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits,
                                batch["input_ids"], batch["attention_mask"])
        lr, _ = token_losses(ref_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits,
                             batch["input_ids"], batch["attention_mask"])
    valid = mask & batch["loss_mask"].bool()
    w = method.step_weights(lt, valid, windows)
    excess = (lt - lr)[valid]
    k = round(0.4 * int(valid.sum()))
    assert int(w.sum()) == k
    chosen = (lt - lr)[w.bool()]
    assert torch.allclose(chosen.sort(descending=True).values, excess.sort(descending=True).values[:k], atol=1e-5)


def test_weights_for_documents_dynamic_and_static(tokenizer, tiny_llama, docs_file):
    docs = read_documents(docs_file)
    pairs = weights_for_documents(get_method("oracle"), tiny_llama, tokenizer, docs)
    assert all(w.sum() == len(e.span) for e, w in pairs)
    pairs = weights_for_documents(get_method("rho1"), tiny_llama, tokenizer, docs, max_length=8, stride=2)
    for e, w in pairs:  # per window, the top 40% of its tokens (ties at theta = theta0)
        assert len(w) == len(e.input_ids) and 0 < w.sum() < len(w)


def test_salient_rule_spans():
    from taalm.ckl.weighting import salient_spans

    text = "The capital of Sennet is Ilvara, founded in 1958 by Oskar Penhallow's crew."
    words = [text[a:b] for a, b in salient_spans(text)]
    assert words == ["Sennet", "Ilvara", "1958", "Oskar", "Penhallow's"]  # "The" opens the sentence


def test_salient_weights_high_on_entities_low_elsewhere(tokenizer):
    from taalm.data import Document, encode_document

    doc = Document(text="The island Quellmere speaks Orvish since 1958 .", answer=None)
    enc = encode_document(tokenizer, doc)
    cfg = MethodConfig(name="salient")
    cfg.salient.low, cfg.salient.high = 0.2, 0.9
    m = get_method(cfg)
    m.prepare(PrepareContext(None, tokenizer, [enc], [], torch.device("cpu"), documents=[doc]))
    w = m.document_weights(0, enc)
    chars = {}
    for (s, e), wt in zip(enc.offsets, w.tolist()):
        for c in range(s, e):
            chars[c] = wt
    for word in ("Quellmere", "Orvish", "1958"):
        i = doc.text.index(word)
        assert all(chars[c] == pytest.approx(0.9) for c in range(i, i + len(word)) if doc.text[c] != " ")
    for word in ("The", "island", "speaks", "since"):
        i = doc.text.index(word)
        assert all(chars[c] == pytest.approx(0.2) for c in range(i, i + len(word)) if doc.text[c] != " ")
    bad = MethodConfig(name="salient")
    bad.salient.low = 2.0
    with pytest.raises(ConfigError, match="method.salient"):
        get_method(bad)


def test_known_tokens_marks_argmax_hits():
    from taalm.ckl.loss import known_tokens

    ids = torch.tensor([[5, 1, 2, 3], [4, 2, 2, 0]])
    am = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
    logits = torch.zeros(2, 4, 6)
    logits[0, 0, 1] = logits[0, 1, 0] = logits[0, 2, 3] = 1.0  # predicts 1 (hit), 0 (miss), 3 (hit)
    logits[1, 0, 2] = logits[1, 1, 2] = logits[1, 2, 0] = 1.0  # hit, hit, then a pad target
    k = known_tokens(logits, ids, am)
    assert k.tolist() == [[False, True, False, True], [False, True, True, False]]


@pytest.mark.parametrize("text, answer, start", [
    ("Orvish is spoken here. The islanders speak Orvish .", "Orvish", 43),  # repeated: the last one
    ("Paris has old Parisian bridges .", "Paris", 0),  # the last raw match is inside "Parisian"
])
def test_oracle_weights_the_last_standalone_occurrence(tokenizer, tmp_path, text, answer, start):
    import json

    assert text[start:start + len(answer)] == answer
    p = tmp_path / "d.jsonl"
    p.write_text(json.dumps({"text": text, "answer": answer}) + "\n")
    enc = encode_document(tokenizer, read_documents(p)[0])
    w = get_method("oracle").document_weights(0, enc)
    on = [i for i in range(len(w)) if w[i] == 1]
    assert on and w.sum() == len(on)
    covered = [(enc.offsets[i][0], enc.offsets[i][1]) for i in on]
    assert min(a for a, _ in covered) >= start - 1 and max(b for _, b in covered) == start + len(answer)


def test_ties_fall_to_the_tiebreak_then_to_position():
    scores = torch.zeros(1, 6)
    valid = torch.ones(1, 6, dtype=torch.bool)
    loss = torch.tensor([[0.1, 0.9, 0.5, 0.9, 0.2, 0.3]])
    assert select_top_fraction(scores, valid, 0.5).tolist() == [[1, 1, 1, 0, 0, 0]]  # position order
    assert select_top_fraction(scores, valid, 0.5, tiebreak=loss).tolist() == [[0, 1, 1, 1, 0, 0]]  # θ's loss
    scores = torch.tensor([[0.0, 0.0, 1.0, 0.0, 0.0, 0.0]])
    assert select_top_fraction(scores, valid, 0.34, tiebreak=loss).tolist() == [[0, 1, 1, 0, 0, 0]]  # score first


def test_rho1_finetuned_reference_gives_real_excess_losses_at_the_first_step(tokenizer, docs_file, tmp_path):
    """reference=finetuned: a copy of θ0 fine-tuned on the documents, so the first step's excess
    losses are no longer all zero (with reference θ0 they are)."""
    from conftest import make_gpt2
    from taalm.ckl.learner import learn
    from taalm.core.config import load_config
    from taalm.ckl.config import LearnConfig

    docs = read_documents(docs_file)
    model = make_gpt2(len(tokenizer))
    cfg = load_config(LearnConfig, None, ["method.name=rho1", "method.rho1.reference=finetuned",
                                          "method.rho1.reference_epochs=3", "train.epochs=1", "train.lr=1e-2",
                                          "theta.lora.r=4", "train.batch_size=3", "model.device=cpu"])
    seen = {}
    import taalm.ckl.weighting.rho1 as rho1_mod

    real = rho1_mod.select_top_fraction

    def spy(scores, valid, ratio, tiebreak=None):
        seen.setdefault("first", scores[valid.bool()].clone())
        return real(scores, valid, ratio, tiebreak)

    rho1_mod.select_top_fraction = spy
    try:
        res = learn(docs, None, cfg, tmp_path / "r", model=model, tokenizer=tokenizer, options=QUIET)
    finally:
        rho1_mod.select_top_fraction = real
    assert seen["first"].abs().max() > 1e-3  # θ0 vs its fine-tuned copy: real excess losses at step 1
    assert res.steps == 1


def test_weights_export_as_jsonl_and_npz(model_dir, docs_file, tmp_path):
    """`taalm weights --jsonl/--npz`: per-token weights with tokens and character offsets; the
    two files agree, the offsets cut the text into the tokens' spans, the oracle's weight sits
    on the answer, the first token (no loss) is null / NaN and marked, and the .npz loads
    without pickle."""
    import numpy as np

    from taalm.cli import main

    out_j, out_n = tmp_path / "w.jsonl", tmp_path / "w.npz"
    assert main(["weights", str(docs_file), "--method", "oracle", "--jsonl", str(out_j), "--npz", str(out_n),
                 f"model.name={model_dir}", "model.device=cpu"]) == 0
    rows = [json.loads(x) for x in out_j.read_text().splitlines()]
    assert len(rows) == 3 and rows[0]["method"] == "oracle"
    for r in rows:
        assert len(r["tokens"]) == len(r["token_ids"]) == len(r["offsets"]) == len(r["weights"])
        assert r["weights"][0] is None and r["no_loss"] == [0] and None not in r["weights"][1:]
        on = "".join(r["text"][s:e] for (s, e), w in zip(r["offsets"], r["weights"]) if w is not None and w > 0)
        assert on.strip() == json.loads(docs_file.read_text().splitlines()[rows.index(r)])["answer"]
    z = np.load(out_n)  # allow_pickle=False by default
    assert z["doc_start"].tolist()[-1] == len(z["weights"]) == sum(len(r["weights"]) for r in rows)
    starts = z["doc_start"][:-1]
    assert np.isnan(z["weights"][starts]).all() and not z["has_loss"][starts].any()
    assert z["has_loss"].sum() == len(z["weights"]) - len(rows) == np.isfinite(z["weights"]).sum()
    d1 = slice(int(z["doc_start"][1]), int(z["doc_start"][2]))
    assert z["weights"][d1][1:].tolist() == pytest.approx(rows[1]["weights"][1:])
    assert z["offsets"][d1].tolist() == rows[1]["offsets"] and str(z["texts"][1]) == rows[1]["text"]
    assert str(z["method"]) == "oracle" and z["doc_ids"].tolist() == [r["id"] for r in rows]
    assert main(["weights", str(docs_file), "--jsonl", str(tmp_path / "w.txt"), f"model.name={model_dir}"]) == 2
