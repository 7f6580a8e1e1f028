"""θ form ``qlora``: LoRA adapters on a 4-bit NF4 base (QLoRA), as the paper ran Llama-2-7B.

The base model is loaded as usual (any spec: hub name, folder, the embedded GGUF), then every
``nn.Linear`` but the LM head is replaced by a bitsandbytes ``Linear4bit`` holding the same
weights quantized to NF4 with bf16 compute. LoRA adapters
(peft, the ``theta.lora`` settings) sit on top in float32: they are what trains and what is saved,
in the same peft format as the ``lora`` form (load them on a float base for evaluation anywhere).

Needs a CUDA GPU and the optional extra ``bitsandbytes`` (``pip install 'taalm[qlora]'``); elsewhere
one line says so before a run folder is written. Quantizing after loading, rather than through
``from_pretrained(quantization_config=...)``, lets every model spec taalm loads become a QLoRA base.
"""

from __future__ import annotations

import importlib.util
import torch

from ...core.config import LoraConfig
from ...core.errors import ConfigError
from ...models.loading import import_peft
from .base import THETA_FORMS
from .lora import Lora

NEEDS = "theta.mode=qlora needs a CUDA GPU and the bitsandbytes extra (pip install 'taalm[qlora]')"


def _bitsandbytes():
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError(f"{NEEDS}: bitsandbytes is not installed", "theta.mode")
    import bitsandbytes

    return bitsandbytes


def quantize_nf4(model, compute_dtype=torch.bfloat16, skip: tuple[str, ...] = ("lm_head",)) -> list[str]:
    """Replace every ``nn.Linear`` of ``model`` (but those named in ``skip``) by an NF4
    ``bitsandbytes.nn.Linear4bit`` with the same weights, on the linear's device; returns the
    names replaced. The weights are quantized when the new module moves to the device.
    Library use: :class:`QLora` calls it on CUDA only; the tests run it on CPU where
    bitsandbytes can quantize there."""
    bnb = _bitsandbytes()
    done = []
    for parent_name, parent in list(model.named_modules()):
        for child_name, child in list(parent.named_children()):
            full = f"{parent_name}.{child_name}" if parent_name else child_name
            if type(child) is not torch.nn.Linear or child_name in skip or full in skip:
                continue
            device = child.weight.device
            q = bnb.nn.Linear4bit(child.in_features, child.out_features, bias=child.bias is not None,
                                  compute_dtype=compute_dtype, quant_type="nf4", device="meta")
            q.weight = bnb.nn.Params4bit(child.weight.data.detach().to("cpu", torch.float32).contiguous(),
                                         requires_grad=False, quant_type="nf4")
            if child.bias is not None:
                q.bias = torch.nn.Parameter(child.bias.data.detach().to(compute_dtype), requires_grad=False)
            setattr(parent, child_name, q.to(device))  # the move quantizes the weights
            done.append(full)
    return done


@THETA_FORMS.register("qlora", config=LoraConfig, section="lora")  # the LoRA on top reads theta.lora
class QLora(Lora):
    """LoRA (float32) on a frozen 4-bit NF4 base with bf16 compute; CUDA only."""

    def check_method(self, method) -> None:
        _bitsandbytes()  # before any model is loaded: the extra is missing

    def prepare(self, model):
        import_peft()
        from peft import PeftModel

        from ...core.devices import supports_4bit

        if isinstance(model, PeftModel):  # prepared by an earlier learn(): continue it
            return super().prepare(model)
        device = next(model.parameters()).device
        if not supports_4bit(device):
            raise ConfigError(f"{NEEDS}: this run's device is {device}", "theta.mode")
        return self.quantize_and_adapt(model)

    def quantize_and_adapt(self, model):
        """Quantize ``model``'s linears to NF4 and put float32 LoRA adapters on them (the device
        check is :meth:`prepare`'s; this is the part tests run on CPU)."""
        for p in model.parameters():
            p.requires_grad_(False)
        if not quantize_nf4(model):
            raise ConfigError("theta.mode=qlora: the model has no nn.Linear layers to quantize", "theta.mode")
        model = super().prepare(model)
        for name, p in model.named_parameters():
            if p.requires_grad and p.dtype != torch.float32:
                p.data = p.data.float()  # the adapters train in float32 whatever the base's dtype
        return model
