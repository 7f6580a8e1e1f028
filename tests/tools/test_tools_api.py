"""The library behind `taalm eval` and `taalm weights` (taalm.tools), called as a notebook would:
on the tiny local model folder of conftest (no download)."""

import json

import numpy as np
import pytest

from taalm.core.config import ProbeEvalConfig, load_config
from taalm.core.errors import TaalmError
from taalm.core.run import QUIET, RunOptions
from taalm.ckl.config import LearnConfig
from taalm.data import Document, find_answer
from taalm.tools.evaluate import evaluate_model
from taalm.tools.weights import TokenWeights, token_weights


def eval_config(model_dir, *extra):
    return load_config(ProbeEvalConfig, None, [f"model.name={model_dir}", "model.device=cpu", *extra])


def test_evaluate_model_scores_like_evaluate_probes_and_writes_its_files(tmp_path, model_dir, probes_file):
    from taalm.data import read_probes
    from taalm.evaluation.probes import evaluate_probes
    from taalm.models.loading import load_model

    out, samples = tmp_path / "e.json", tmp_path / "samples.jsonl"
    res = evaluate_model(probes_file, eval_config(model_dir), json_path=out, samples_path=samples, options=QUIET)
    model, tok = load_model(str(model_dir), "cpu")
    plain = evaluate_probes(model, tok, read_probes(probes_file))
    assert res.n == 3 and res.accuracy == plain.accuracy and res.nll == pytest.approx(plain.nll, rel=1e-5)
    saved = json.loads(out.read_text())
    assert saved["model"] == str(model_dir) and saved["adapter"] is None and saved["probes"] == str(probes_file)
    assert saved["config"]["model"]["name"] == str(model_dir) and len(saved["per_probe"]) == 3
    rows = [json.loads(x) for x in samples.read_text().splitlines()]
    assert [r["answer"] for r in rows] == ["Kestrelford", "Orvish", "Ilvara"]


def test_evaluate_model_applies_an_adapter(tmp_path, model_dir, probes_file):
    """A LoRA adapter folder saved by peft (random, nonzero B) changes the scores, and is named
    in the JSON file."""
    from peft import LoraConfig, get_peft_model

    from taalm.models.loading import load_model

    model, _ = load_model(str(model_dir), "cpu")
    lora = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(model, lora).save_pretrained(tmp_path / "adapter")
    base = evaluate_model(probes_file, eval_config(model_dir), options=QUIET)
    out = tmp_path / "e.json"
    adapted = evaluate_model(probes_file, eval_config(model_dir, f"adapter={tmp_path / 'adapter'}"),
                             json_path=out, options=QUIET)
    assert adapted.n == 3 and adapted.nll != pytest.approx(base.nll, rel=1e-6)
    assert json.loads(out.read_text())["adapter"] == str(tmp_path / "adapter")


def test_evaluate_model_checks_before_loading(tmp_path, model_dir, probes_file):
    cfg = eval_config(model_dir)
    with pytest.raises(TaalmError, match="is an input of this command"):
        evaluate_model(probes_file, cfg, json_path=probes_file, options=QUIET)
    with pytest.raises(TaalmError, match="is a folder"):
        evaluate_model(probes_file, cfg, samples_path=tmp_path, options=QUIET)
    with pytest.raises(TaalmError, match="no adapter_config.json"):
        evaluate_model(probes_file, eval_config(model_dir, f"adapter={tmp_path}"), options=QUIET)
    with pytest.raises(TaalmError, match="takes no resume"):
        evaluate_model(probes_file, cfg, options=RunOptions(resume=True))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["probes.jsonl"]  # nothing written


def weights_config(model_dir):
    return load_config(LearnConfig, None, [f"model.name={model_dir}", "model.device=cpu", "method.name=oracle"])


def test_token_weights_from_a_file_writes_every_format(tmp_path, model_dir, docs_file):
    msgs = []
    html, jsonl, npz = tmp_path / "w.html", tmp_path / "w.jsonl", tmp_path / "w.npz"
    tw = token_weights(docs_file, weights_config(model_dir), html=html, jsonl=jsonl, npz=npz,
                       options=RunOptions(progress=False, log=msgs.append))
    assert isinstance(tw, TokenWeights) and tw.method == "oracle" and tw.model == str(model_dir)
    assert len(tw.documents) == len(tw.pairs) == 3
    for (enc, w), doc in zip(tw.pairs, tw.documents):  # oracle: 1 on the answer's tokens, else 0
        answer = "".join(doc.text[a:b] for (a, b), x in zip(enc.offsets, w.tolist()) if x == 1.0)
        assert answer.strip() == doc.answer and set(w.tolist()) <= {0.0, 1.0}
    assert html.read_text().startswith("<!doctype html>") and "method &#x27;oracle&#x27;" in html.read_text()
    rows = [json.loads(x) for x in jsonl.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["a", "b", "c"] and all(r["weights"][0] is None for r in rows)
    arrays = np.load(npz)
    assert arrays["weights"].shape[0] == sum(len(r["token_ids"]) for r in rows)
    assert f"heatmap: {html}" in msgs and f"weights: {jsonl}" in msgs and f"weights: {npz}" in msgs
    plain = tw.plain()
    assert len(plain) == 3 and plain[0].startswith("== document a (") and "(no loss)" in plain[0]


def test_token_weights_of_documents_in_memory_write_nothing_unasked(tmp_path, model_dir):
    text = "The capital of Sennet is Ilvara, a city of stone bridges."
    docs = [Document(text, answer="Ilvara", id="x", answer_start=find_answer(text, "Ilvara"))]
    tw = token_weights(docs, weights_config(model_dir), options=QUIET)
    assert len(tw.pairs) == 1 and max(tw.pairs[0][1].tolist()) == 1.0
    assert list(tmp_path.iterdir()) == []
    assert tw.write(tmp_path / "later.jsonl") == tmp_path / "later.jsonl"  # written afterwards, by suffix
    assert json.loads((tmp_path / "later.jsonl").read_text())["id"] == "x"


def test_token_weights_checks_its_outputs_before_loading(tmp_path, model_dir, docs_file):
    cfg = weights_config(model_dir)
    with pytest.raises(TaalmError, match=r"--html .*must end in \.html"):
        token_weights(docs_file, cfg, html=tmp_path / "w.txt", options=QUIET)
    with pytest.raises(TaalmError, match="is an input of this command"):
        token_weights(docs_file, cfg, jsonl=tmp_path / "r.jsonl", inputs=[tmp_path / "r.jsonl"], options=QUIET)
    with pytest.raises(TaalmError, match="no documents"):
        token_weights([], cfg, options=QUIET)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["docs.jsonl"]
