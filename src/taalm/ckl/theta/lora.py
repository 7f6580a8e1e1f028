"""θ form ``lora``: LoRA adapters (peft) on a frozen base; the default."""

from __future__ import annotations

from pathlib import Path

import torch

from ...core.config import LoraConfig
from ...core.errors import ConfigError
from ...models.loading import import_peft
from .base import THETA_FORMS, ThetaForm, quiet_peft


@THETA_FORMS.register("lora", config=LoraConfig)
class Lora(ThetaForm):
    """LoRA adapters (peft) on a frozen base: only the adapters train; saved in peft format."""

    @classmethod
    def record_passed(cls, theta_cfg, model) -> None:
        """A peft LoRA model's own adapter settings replace ``theta.lora`` left at its defaults (it
        is used as it is, never wrapped again; settings the user gave that contradict it are
        refused by :meth:`prepare`)."""

        peft_cfg = getattr(model, "peft_config", None)
        if not peft_cfg or theta_cfg.lora != LoraConfig():  # not a peft model, or settings the user gave
            return
        have = peft_cfg[getattr(model, "active_adapter", "default")]
        targets = have.target_modules
        theta_cfg.lora.r = int(have.r)
        # peft's lora_alpha may be fractional: kept as a float (the schema's int annotation drives YAML parsing)
        theta_cfg.lora.alpha = float(have.lora_alpha)
        theta_cfg.lora.dropout = float(have.lora_dropout)
        theta_cfg.lora.target_modules = sorted(targets) if isinstance(targets, (set, list)) else [str(targets)]

    def prepare(self, model):
        import_peft()
        from peft import LoraConfig, PeftModel, get_peft_model

        c = self.cfg.lora
        targets = c.target_modules
        if isinstance(model, PeftModel):  # the user's own, or an earlier learn()'s: θ as it is, not wrapped again
            have = model.peft_config[model.active_adapter]
            if (have.r, have.lora_alpha) != (c.r, c.alpha):
                raise ConfigError(f"the model already carries a LoRA adapter with r={have.r}, alpha={have.lora_alpha}; "
                                  f"theta.lora asks for r={c.r}, alpha={c.alpha}", "theta.lora")
            for name, p in model.named_parameters():  # its adapter trains (even if loaded for inference)
                if "lora_" in name:
                    p.requires_grad_(True)
            return model
        target = "all-linear" if targets == ["all-linear"] else list(targets)
        lcfg = LoraConfig(r=c.r, lora_alpha=c.alpha, lora_dropout=c.dropout, target_modules=target, bias="none",
                          task_type="CAUSAL_LM", fan_in_fan_out=_stores_weights_transposed(model))
        torch.manual_seed(self.seed)  # LoRA A matrices are random: make θ0 reproducible
        try:
            with quiet_peft():
                return get_peft_model(model, lcfg)
        except ValueError as e:
            raise ConfigError(f"theta.lora.target_modules={targets}: {e}") from None

    def save(self, model, tokenizer, folder: Path) -> Path:
        import warnings

        out = Path(folder) / "adapter"
        with warnings.catch_warnings():  # "could not find a config file" for GGUF-loaded bases
            warnings.simplefilter("ignore", UserWarning)
            model.save_pretrained(str(out), safe_serialization=True)
        return out


def _stores_weights_transposed(model) -> bool:
    """Whether the model's projections are transformers' ``Conv1D`` (GPT-2: weight [in, out]), for
    which LoRA needs ``fan_in_fan_out=True`` (peft would set it itself, with a warning per layer)."""
    try:
        from transformers.pytorch_utils import Conv1D
    except ImportError:  # pragma: no cover - transformers always has it
        return False
    return any(isinstance(m, Conv1D) for m in model.modules())

