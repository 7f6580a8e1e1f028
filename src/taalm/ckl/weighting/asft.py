"""ASFT, anchored supervised fine-tuning: DFT's weights plus a KL anchor to the starting model."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from ...core.config import Rules, option
from .base import WEIGHTINGS, PrepareContext
from .dft import DynamicFineTuning


@dataclass
class AsftConfig:
    """The `asft` weighting method (anchored supervised fine-tuning)."""

    alpha: float = option(0.1, "weight α of the KL(p_θ ‖ p_ref) anchor (LLaMA-Factory's asft_alpha default)")

    def _rules(self, r: Rules) -> None:
        r.finite("alpha", 0.0, 1e6)


def sequence_kl(logits: torch.Tensor, ref_logits: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``[B]``: the mean over each sequence's valid targets t of KL(p_θ(·|x_<t) ‖ p_ref(·|x_<t)),
    read at the prediction of x_t (position t−1). logits (with gradient) and ref_logits: [B, T, V];
    valid: [B, T] aligned with the tokens."""
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)  # [B, T-1, V]
    logq = torch.log_softmax(ref_logits[:, :-1].float(), dim=-1)
    kl = (logp.exp() * (logp - logq)).sum(dim=-1)  # [B, T-1]
    m = valid[:, 1:].to(kl.dtype)
    return (kl * m).sum(dim=1) / m.sum(dim=1).clamp_min(1.0)


@WEIGHTINGS.register("asft", config=AsftConfig)
class AnchoredFineTuning(DynamicFineTuning):
    """ASFT (arXiv 2509.23753): w_t = sg(p_θ(x_t)) as in DFT, plus α · KL(p_θ ‖ p_ref) to the frozen θ0.

    The paper anchors DFT, whose rescaled objective drifts, with a token-level KL divergence to
    the starting model: L_ASFT = L_DFT + α · E_t[ D_KL(π_θ(·|x_<t) ‖ π_base(·|x_<t)) ] (α = 0.1
    by default, LLaMA-Factory's ``asft_alpha``). The KL term carries θ's gradient; the reference
    runs one extra forward per micro-batch without gradients. The reference is θ0 as RHO-1 keeps
    it: a frozen copy made before the first step; for a LoRA θ the copy drops the adapters, so it
    is θ0 even when a run resumes.
    """

    def __init__(self, cfg, seed=0):
        super().__init__(cfg, seed)
        self.reference: torch.nn.Module | None = None

    def prepare(self, ctx: PrepareContext) -> None:
        ref = copy.deepcopy(ctx.model)
        if hasattr(ref, "peft_config"):  # the base weights alone: θ0, whatever the adapters learned
            ref = ref.unload()
        ref.eval()
        for p in ref.parameters():
            p.requires_grad_(False)
        self.reference = ref

    def extra_loss(self, model, batch, logits, valid):
        if self.reference is None:
            raise RuntimeError("asft: prepare() makes the reference before the first step")
        with torch.no_grad():
            ref_logits = self.reference(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        return self.cfg.asft.alpha * sequence_kl(logits, ref_logits, valid)
