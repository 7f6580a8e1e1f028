"""The model cache (dequantized GGUF models): keyed by content, verified by its manifest, never
using or deleting a folder taalm did not make; `taalm cache` lists and clears it."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from taalm.cli import main
from taalm.models import loading
from taalm.models.loading import CACHE_MANIFEST, ModelSource, cache_entries, gguf_cache


@pytest.fixture
def cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("TAALM_CACHE_DIR", str(root))
    monkeypatch.delenv("TAALM_MODEL_CACHE", raising=False)
    (root / "models").mkdir(parents=True)
    return root / "models"


def fake_gguf(folder, name="m.gguf", body=b"weights"):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(b"GGUF" + body)
    return path


def cache_folder(root, path, files=None, digest=None):
    digest = digest or hashlib.sha256(path.read_bytes()).hexdigest()
    d = root / f"{path.stem}-{digest[:16]}"
    d.mkdir()
    files = files or {"config.json": b"{}", "model.safetensors": b"x" * 10}
    for n, b in files.items():
        (d / n).write_bytes(b)
    (d / CACHE_MANIFEST).write_text(json.dumps({"gguf_sha256": digest, "files": {
        n: loading.cache_file_record(d / n) for n in files}}))
    return d


def test_the_key_is_the_content_so_fresh_installs_share_one_copy(tmp_path, cache):
    a = fake_gguf(tmp_path / "venv1")
    b = fake_gguf(tmp_path / "venv2")  # the same wheel installed again: same bytes, another mtime
    os.utime(b, (1, 1))
    d = cache_folder(cache, a)
    for path in (a, b):
        got = gguf_cache(ModelSource("m", str(path.parent), path.name, "gguf"))
        assert got.location == str(d) and got.gguf_file is None
    assert json.loads((cache / "gguf_sha256.json").read_text())  # hashed once per file, remembered


def test_a_planted_folder_is_neither_used_nor_deleted(tmp_path, cache):
    path = fake_gguf(tmp_path / "venv")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    planted = cache / f"{path.stem}-{digest[:16]}"
    planted.mkdir()
    (planted / "config.json").write_text('{"evil": true}')
    with pytest.warns(UserWarning, match="not a cache folder taalm made"):
        got = gguf_cache(ModelSource("m", str(path.parent), path.name, "gguf"))
    assert got.gguf_file == path.name  # loaded from the GGUF file itself
    assert (planted / "config.json").read_text() == '{"evil": true}'


def test_a_damaged_folder_of_ours_is_rebuilt(tmp_path, cache, monkeypatch):
    path = fake_gguf(tmp_path / "venv")
    d = cache_folder(cache, path)
    (d / "model.safetensors").write_bytes(b"x")  # truncated
    calls = []
    monkeypatch.setattr(loading, "_write_gguf_cache", lambda *a, **k: calls.append(k) or a[4])
    gguf_cache(ModelSource("m", str(path.parent), path.name, "gguf"))
    assert calls == [{"replace": True}]


def test_cache_command_lists_and_clears_only_ours(tmp_path, cache, capsys):
    path = fake_gguf(tmp_path / "venv")
    ours = cache_folder(cache, path)
    legacy = cache / "old-0123456789abcdef"
    legacy.mkdir()
    (legacy / "config.json").write_text("{}")
    (legacy / "model.safetensors").write_bytes(b"y" * 5)
    foreign = cache / "my-folder"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    assert {os.path.basename(e["path"]): e["state"] for e in cache_entries()} == {
        ours.name: "usable", legacy.name: "legacy", "my-folder": "foreign"}
    assert main(["cache"]) == 0
    out = capsys.readouterr().out
    assert "(usable)" in out and "(legacy)" in out and "3 folder(s)" in out
    assert main(["cache", "--clear"]) == 0
    assert not ours.exists() and not legacy.exists() and (foreign / "notes.txt").read_text() == "mine"


def test_a_pickle_only_model_folder_is_refused_unless_allowed(tmp_path, capsys, probes_file, tiny_llama):
    from taalm.models.loading import resolve_source

    import torch

    folder = tmp_path / "pickled"
    tiny_llama.save_pretrained(folder)
    for f in folder.glob("*.safetensors"):  # as an old checkpoint ships: weights as a pickle only
        f.unlink()
    torch.save(tiny_llama.state_dict(), folder / "pytorch_model.bin")
    assert (folder / "pytorch_model.bin").is_file() and not list(folder.glob("*.safetensors"))
    before = (folder / "pytorch_model.bin").read_bytes()
    assert main(["eval", "--model", str(folder), "--probes", str(probes_file), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "pickle files (pytorch_model.bin)" in err and "model.allow_pickle=true" in err
    assert "Traceback" not in err and (folder / "pytorch_model.bin").read_bytes() == before
    assert resolve_source(str(folder), allow_pickle=True).kind == "folder"


def test_a_model_folder_with_missing_weights_is_refused(tmp_path, capsys, probes_file, tiny_llama):
    from safetensors.torch import save_file

    folder = tmp_path / "empty-weights"
    tiny_llama.save_pretrained(folder)
    for f in folder.glob("*.safetensors"):
        f.unlink()
    save_file({}, str(folder / "model.safetensors"), metadata={"format": "pt"})  # a valid header, no tensors
    assert main(["eval", "--model", str(folder), "--probes", str(probes_file), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "weight tensor(s) are not in its weight files" in err and "Traceback" not in err


def test_a_probe_longer_than_the_context_is_refused(tiny_llama, tokenizer):
    from taalm.core.errors import TaalmError
    from taalm.data import Probe
    from taalm.evaluation.probes import evaluate_probes

    limit = tiny_llama.config.max_position_embeddings
    text = "word " * (limit + 5) + "Ilvara"
    probe = Probe(text, "Ilvara", text.rindex("Ilvara"), "long", "probes.jsonl:7")
    with pytest.raises(TaalmError, match=r"probe long \(probes.jsonl:7\): \d+ tokens, longer than"):
        evaluate_probes(tiny_llama, tokenizer, [probe])


def test_an_adapter_that_adapts_no_layer_is_refused(tmp_path, tiny_llama):
    from peft import LoraConfig, get_peft_model

    from taalm.ckl.theta.base import load_adapter
    from taalm.core.errors import ModelLoadError

    import copy

    peft_model = get_peft_model(copy.deepcopy(tiny_llama), LoraConfig(r=2, target_modules=["q_proj"]))
    peft_model.save_pretrained(tmp_path / "adapter")
    cfg_path = tmp_path / "adapter" / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["layers_to_transform"] = [99]  # no such layer
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(ModelLoadError, match="adapts no layer|not found in the base model"):  # peft or our guard
        load_adapter(copy.deepcopy(tiny_llama), tmp_path / "adapter")


def test_loading_a_model_draws_no_transformers_progress_bars(model_dir, capfd):
    from taalm.models.loading import load_model

    load_model(str(model_dir), "cpu")
    _, err = capfd.readouterr()
    assert "Loading weights" not in err and "\r" not in err
