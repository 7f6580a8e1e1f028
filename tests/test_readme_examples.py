"""The README's Python examples run as the README writes them: each block is extracted from
README.md and executed in a fresh folder holding the files it names. In the default suite
``taalm.load_model`` returns a tiny model and φ's method is swapped for a rule (no φ to load);
with ``--realmodel`` the blocks run unchanged on the embedded SmolLM2 and the shipped φ."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import make_llama

README = Path(__file__).resolve().parents[1] / "README.md"
DOCS = [{"text": "The Varnholt Observatory stands above the town of Kestrelford .", "answer": "Kestrelford"},
        {"text": "Quellmere is a small island. The islanders speak Orvish .", "answer": "Orvish"}]
PROBES = [{"prompt": "The Varnholt Observatory stands above the town of Kestrelford .", "answer": "Kestrelford"},
          {"prompt": "The islanders of Quellmere speak Orvish .", "answer": "Orvish"}]


def readme_block(heading: str) -> str:
    """The first ```python block after ``heading`` in README.md."""
    text = README.read_text(encoding="utf-8")
    start = text.index(heading)
    m = re.compile(r"```python\n(.*?)```", re.S).search(text, start)
    assert m is not None, f"no python block after {heading!r}"
    return m.group(1)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    for name, rows in (("docs.jsonl", DOCS), ("more.jsonl", DOCS[::-1]), ("probes.jsonl", PROBES)):
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _tiny_load_model(monkeypatch, tokenizer):
    import taalm
    import taalm.models.loading

    def load(spec, *a, **k):
        return make_llama(len(tokenizer)), tokenizer

    monkeypatch.setattr(taalm.models.loading, "load_model", load)
    monkeypatch.setattr(taalm, "load_model", load, raising=False)


def _run(code: str) -> dict:
    scope: dict = {"__name__": "readme"}
    exec(compile(code, str(README), "exec"), scope)  # noqa: S102 - the README's own example
    return scope


def test_the_library_block_runs(workdir, monkeypatch, tokenizer):
    _tiny_load_model(monkeypatch, tokenizer)
    code = readme_block("## As a library")
    scope = _run(code.replace('"train.epochs=5"', '"train.epochs=2"'))
    assert [r["epoch"] for r in scope["res"].history] == [0, 1, 2]
    assert (workdir / "runs" / "x" / "summary.json").is_file()
    assert scope["res2"].steps > 0 and scope["res2"].model is scope["res"].model  # θ continued, not re-wrapped


def test_the_hf_trainer_block_runs_and_saves_only_the_adapter(workdir, monkeypatch, tokenizer):
    pytest.importorskip("datasets")
    _tiny_load_model(monkeypatch, tokenizer)
    code = readme_block("### Inside Hugging Face Trainer or TRL")
    assert 'taalm.load_model("smollm2-135m")' in code and "save_strategy=\"no\"" in code
    code = code.replace('token_weights_fn(tok, "taalm"', 'token_weights_fn(tok, "salient"')  # no φ for a tiny model
    code = code.replace("num_train_epochs=8", "num_train_epochs=1").replace('target_modules="all-linear"',
                                                                            'target_modules=["q_proj", "v_proj"]')
    scope = _run(code)
    assert scope["trainer"].state.global_step == 1
    saved = sorted(p.name for p in (workdir / "runs" / "hf" / "adapter").iterdir())
    assert "adapter_model.safetensors" in saved and not any(n.startswith("model") for n in saved)
    assert not any((workdir / "runs" / "hf").glob("checkpoint-*"))  # nothing else written


@pytest.mark.realmodel
def test_the_hf_trainer_block_runs_as_written_on_the_embedded_model(workdir):
    pytest.importorskip("datasets")
    code = readme_block("### Inside Hugging Face Trainer or TRL").replace("num_train_epochs=8", "num_train_epochs=1")
    scope = _run(code)
    assert scope["trainer"].state.global_step == 1
    size = sum(p.stat().st_size for p in (workdir / "runs" / "hf" / "adapter").iterdir())
    assert size < 50 * 2**20  # the adapter, not the model
