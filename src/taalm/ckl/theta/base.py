"""θ forms: how the base model θ is parameterised while it learns, registered by name.

A :class:`ThetaForm` makes a loaded base model trainable (:meth:`ThetaForm.prepare`), says what
the optimizer updates (:func:`trainable_parameters`; everything else is frozen and must not
change: tested) and saves the learned θ as safetensors + JSON (:meth:`ThetaForm.save`).
``prepare`` accepts a model it already prepared and returns it unchanged, so a second
:func:`taalm.learn` call continues the same θ instead of stacking a second adapter.

Add a form with one file in ``taalm/ckl/theta/`` (imported by its ``__init__``)::

    @THETA_FORMS.register("mine")
    class Mine(ThetaForm):
        def prepare(self, model): ...
        def save(self, model, tokenizer, folder): ...
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import contextlib
import warnings
from pathlib import Path
from typing import ClassVar

import torch

from ...core.errors import ConfigError, ModelLoadError
from ...core.registry import Registry
from ...models.loading import import_peft

if TYPE_CHECKING:  # the schema imports every part: parts never import it at run time
    from ..config import ThetaConfig

THETA_FORMS: Registry["ThetaForm"] = Registry("θ form", "theta.mode")


class ThetaForm:
    """One way to parameterise θ; ``cfg`` is the run's ``theta`` section, ``seed`` its seed."""

    name: ClassVar[str] = ""
    shardable: ClassVar[bool] = False  # FSDP2 can shard it (train.fsdp): every weight trains

    def __init__(self, cfg: ThetaConfig, seed: int = 0):
        self.cfg = cfg
        self.seed = seed

    @classmethod
    def record_passed(cls, theta_cfg: ThetaConfig, model) -> None:
        """Write into ``theta_cfg`` what a model passed from Python already carries of this form
        (so config.yaml says what θ is); nothing by default."""

    def check_config(self, cfg) -> None:
        """Refuse settings this θ form cannot train with (a ConfigError before anything runs)."""
        if cfg.train.fsdp and not self.shardable:
            raise ConfigError(f"train.fsdp=true needs theta.mode=full (got '{self.name}'): an adapter θ trains "
                              "few weights, so plain data parallelism (torchrun without train.fsdp) is the tool",
                              "train.fsdp")

    def prepare(self, model):
        """The model to train (``model`` itself or a wrapper); a model this form already
        prepared comes back as it is."""
        raise NotImplementedError

    def save(self, model, tokenizer, folder: Path) -> Path:
        """Write the learned θ under ``folder``; returns the path written."""
        raise NotImplementedError


def get_theta_form(cfg: ThetaConfig, seed: int = 0) -> ThetaForm:
    return THETA_FORMS.get(cfg.mode)(cfg, seed)


def trainable_parameters(model) -> dict[str, torch.nn.Parameter]:
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def count_parameters(model) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    return sum(p.numel() for p in model.parameters() if p.requires_grad), total


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
    import_peft()
    from peft import PeftModel

    folder = adapter_folder(folder)
    try:
        with quiet_peft():
            loaded = PeftModel.from_pretrained(model, str(folder))
    except Exception as e:  # noqa: BLE001 - a corrupted file or an adapter of another architecture
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ModelLoadError(f"{folder}: cannot load this adapter onto the model ({first[:300]})") from None
    lora = [n for n, _ in loaded.named_parameters() if "lora_" in n]
    if not lora:  # e.g. layers_to_transform / target_modules that name nothing in this model
        raise ModelLoadError(f"{folder}: the adapter adapts no layer of this model (its target_modules / "
                             f"layers_to_transform match nothing); it would change nothing")
    bad = [n for n, p in loaded.named_parameters() if "lora_" in n and not torch.isfinite(p).all()]
    if bad:
        raise ModelLoadError(f"{folder}: the adapter holds NaN/Inf values (in {bad[0]}); it is damaged")
    return loaded


@contextlib.contextmanager
def quiet_peft():
    """Silence peft's use of a deprecated transformers attribute (a FutureWarning per model)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield
