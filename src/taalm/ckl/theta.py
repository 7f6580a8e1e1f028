"""How the base model θ is parameterised while it learns: LoRA (default) or full fine-tuning.

``wrap_theta`` returns the model to train; ``trainable_parameters`` names what the optimizer
updates (everything else is frozen and must not change: tested). ``save_theta`` writes only
safetensors + JSON: the LoRA adapter (peft format) or the full model.
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

import torch

from ..core.config import ThetaConfig
from ..core.errors import ConfigError, ModelLoadError

THETA_MODES = ("lora", "full")


def wrap_theta(model, cfg: ThetaConfig, seed: int = 0):
    """Make ``model`` trainable as ``cfg.mode`` says; returns the (possibly peft-wrapped) model."""
    if cfg.mode == "full":
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    if cfg.mode == "lora":
        from peft import LoraConfig, get_peft_model

        targets = cfg.lora.target_modules
        target = "all-linear" if targets == ["all-linear"] else list(targets)
        lcfg = LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                          target_modules=target, bias="none", task_type="CAUSAL_LM")
        torch.manual_seed(seed)  # LoRA A matrices are random: make θ0 reproducible
        try:
            with _quiet_peft():
                return get_peft_model(model, lcfg)
        except ValueError as e:
            raise ConfigError(f"theta.lora.target_modules={targets}: {e}") from None
    raise ConfigError(f"unknown theta.mode '{cfg.mode}' (use {' or '.join(THETA_MODES)})")


def trainable_parameters(model) -> dict[str, torch.nn.Parameter]:
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def count_parameters(model) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    return sum(p.numel() for p in model.parameters() if p.requires_grad), total


def save_theta(model, tokenizer, folder: str | Path, mode: str) -> Path:
    """Save the learned θ: ``folder/adapter`` (LoRA, peft format) or ``folder/model`` (full)."""
    from ..core.files import atomic_write_json, save_tensors

    folder = Path(folder)
    if mode == "lora":
        out = folder / "adapter"
        with warnings.catch_warnings():  # "could not find a config file" for GGUF-loaded bases
            warnings.simplefilter("ignore", UserWarning)
            model.save_pretrained(str(out), safe_serialization=True)
        return out
    from ..models.loading import save_model_folder

    return save_model_folder(model, tokenizer, folder / "model")


def adapter_folder(folder: str | Path) -> Path:
    """The LoRA adapter folder that ``folder`` names (an adapter folder or a run folder holding
    ``adapter/``); a :class:`ConfigError` when there is none. Needs no model: check it first."""
    folder = Path(folder)
    if (folder / "adapter").is_dir() and not (folder / "adapter_config.json").exists():
        folder = folder / "adapter"  # accept a run folder too
    if not (folder / "adapter_config.json").is_file():
        raise ConfigError(f"{folder}: no adapter_config.json (expected a LoRA adapter folder "
                          f"written by `taalm learn`)")
    return folder


def load_adapter(model, folder: str | Path):
    """Attach a saved LoRA adapter (peft format) to ``model`` for evaluation; a damaged adapter,
    one of another architecture or one holding NaN/Inf raises :class:`ModelLoadError`."""
    from peft import PeftModel

    folder = adapter_folder(folder)
    try:
        with _quiet_peft():
            loaded = PeftModel.from_pretrained(model, str(folder))
    except Exception as e:  # noqa: BLE001 - a corrupted file or an adapter of another architecture
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ModelLoadError(f"{folder}: cannot load this adapter onto the model ({first[:300]})") from None
    bad = [n for n, p in loaded.named_parameters() if "lora_" in n and not torch.isfinite(p).all()]
    if bad:
        raise ModelLoadError(f"{folder}: the adapter holds NaN/Inf values (in {bad[0]}); it is damaged")
    return loaded


@contextlib.contextmanager
def _quiet_peft():
    """Silence peft's use of a deprecated transformers attribute (a FutureWarning per model)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield
