"""Train-Attention: a trained φ weighs every token."""

from __future__ import annotations

from dataclasses import dataclass

from ...core.config import Rules, option
from pathlib import Path

import torch

from ...core.devices import free_cached_memory
from ...core.errors import ConfigError
from .base import WEIGHTINGS, PrepareContext, WeightingMethod, document_token_losses

def _check_phi_base(checkpoint, override: str) -> str:
    """φ's base model (``method.taalm.base``, else the one its folder records), checked to be at
    hand before any run starts: a missing one is named (φ's, not θ's) with the fix."""
    from ...core.errors import ModelLoadError
    from ...models.loading import resolve_source
    from ...models.phi import phi_base

    base, origin = phi_base(checkpoint)
    base = override or base
    try:
        resolve_source(base, fix_key="method.taalm.base")
    except ModelLoadError as e:
        was = f" (a copy of {origin})" if origin and not override else ""
        raise ConfigError(f"method 'taalm': φ ({checkpoint}) runs on its base model '{base}'{was}, which is not "
                          f"available here. {e}", "method.taalm.base") from None
    return base


@dataclass
class TaalmMethodConfig:
    """The `taalm` weighting method: weights from a trained Train-Attention model φ."""

    checkpoint: str | None = option(None, "folder written by TrainAttention.save_pretrained")
    base: str = option("", "φ's base model; default: the one in φ's phi_config.json (set it to a local copy elsewhere)")
    batch_size: int = option(8, "φ windows per forward pass (weights are computed once per document)")
    floor: float = option(0.0, "λ in w = λ + (1−λ)·φ^γ: a floor of uniform weight under φ's (0: φ alone, 1: fine-tuning)")
    sharpen: float = option(1.0, "γ in w = λ + (1−λ)·φ^γ: >1 concentrates the weight on φ's highest tokens (1: φ as it is)")

    def _rules(self, r: Rules) -> None:
        r.at_least("batch_size", 1)
        r.finite("floor", 0.0, 1.0)
        r.finite("sharpen", 0.0, 100.0, low_open=True)


def mix_weights(phi_weights: torch.Tensor, floor: float = 0.0, sharpen: float = 1.0) -> torch.Tensor:
    """w = λ + (1−λ)·φ^γ: φ's weights sharpened by γ (γ > 1 moves weight onto φ's highest tokens,
    closer to the oracle's answer-only weights) over a floor λ of uniform weight (every token keeps
    at least λ; λ = 1 is fine-tuning). λ = 0, γ = 1 return φ's weights untouched."""
    w = phi_weights if sharpen == 1.0 else phi_weights.clamp_min(0.0) ** sharpen
    return w if floor == 0.0 else floor + (1.0 - floor) * w


@WEIGHTINGS.register("taalm", config=TaalmMethodConfig)
class TaalmWeights(WeightingMethod):
    """Train-Attention: a trained φ (method.taalm.checkpoint) weighs every token, once per document.

    φ is loaded in :meth:`prepare`, scores every document once for θ's tokenization (mapped
    through character offsets when φ's tokenizer differs), and is freed before training; the
    cached weights make later epochs cost what plain fine-tuning costs.
    """

    def __init__(self, cfg, seed=0):
        super().__init__(cfg, seed)
        from ...models.phi import resolve_phi_checkpoint

        if cfg.taalm.batch_size < 1:
            raise ConfigError("method.taalm.batch_size must be >= 1", "method.taalm.batch_size")
        self.checkpoint = resolve_phi_checkpoint(cfg.taalm.checkpoint)  # fails before any run starts
        self.base = _check_phi_base(self.checkpoint, cfg.taalm.base)
        self.cached: list[torch.Tensor] | None = None
        self.phi = None  # a φ the caller keeps loaded across prepare() calls (taalm.hf maps many batches)

    def keep_loaded(self, device) -> None:
        """φ loaded once; :meth:`prepare` then reuses it."""
        from ...models.phi import TrainAttention

        self.phi = TrainAttention.from_pretrained(self.checkpoint, device=str(device), base=self.base)

    def provenance(self) -> dict:
        """Which φ runs (the shipped default or a folder) and the sha256 of its tensors."""
        import hashlib

        from ...models.phi import PHI_TENSORS_FILE, default_phi_checkpoint

        folder, default = self.checkpoint, default_phi_checkpoint()
        digest = hashlib.sha256((Path(folder) / PHI_TENSORS_FILE).read_bytes()).hexdigest()
        return {"phi_checkpoint": "shipped default (taalm/phi_default)" if default and Path(folder) == Path(default)
                else str(folder), "phi_sha256": digest}

    def prepare(self, ctx: PrepareContext) -> None:
        from ...models.phi import TrainAttention

        if ctx.documents is None or len(ctx.documents) != len(ctx.encoded):
            raise ConfigError("method 'taalm' needs the documents' texts (PrepareContext.documents)")
        own = self.phi is None
        if own and ctx.log is not None:
            ctx.log(f"loading Train-Attention φ ({self.checkpoint or 'the shipped default'}) ...")
        phi = TrainAttention.from_pretrained(self.checkpoint, device=str(ctx.device), base=self.base) if own else self.phi
        try:
            losses = None
            if phi.loss_aware:  # φ reads θ0's per-token losses too: one θ forward per document
                if ctx.model is None:
                    raise ConfigError("this φ is loss-aware (phi.features=loss): its weights need θ's model "
                                      "(pass model=)")
                losses = document_token_losses(ctx.model, ctx.tokenizer, ctx.encoded, ctx.device,
                                               self.cfg.taalm.batch_size)
            raw = phi.token_weights([d.text for d in ctx.documents], ctx.encoded, self.cfg.taalm.batch_size, losses)
            self.cached = [mix_weights(w, self.cfg.taalm.floor, self.cfg.taalm.sharpen) for w in raw]
        finally:
            if own:
                del phi  # φ is not needed once every document has its weights
                free_cached_memory(ctx.device)

    def document_weights(self, doc_index, encoded):
        if self.cached is None:
            raise RuntimeError("method 'taalm': prepare() must run before document_weights()")
        return self.cached[doc_index]
