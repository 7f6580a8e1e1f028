"""STM, selective token masking: tokens the base model finds too perplexing are not trained."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ...core.config import Rules, option
from .base import WEIGHTINGS, PrepareContext, WeightingMethod, document_token_losses


@dataclass
class StmConfig:
    """The `stm` weighting method (selective token masking)."""

    threshold: float = option(2.5, "mask tokens whose perplexity exp(ℓ_t) under θ0 exceeds this (the authors' default 2.5)")

    def _rules(self, r: Rules) -> None:
        r.finite("threshold", 1.0, 1e12)


@WEIGHTINGS.register("stm", config=StmConfig)
class SelectiveTokenMasking(WeightingMethod):
    """STM (arXiv 2501.14315): w_t = 1 if exp(ℓ_t(θ0)) ≤ τ else 0, τ = 2.5.

    The paper finds that high-perplexity tokens of the training data drive forgetting, and masks
    the tokens whose perplexity under the base model exceeds a threshold (its released training
    script defaults to τ = 2.5). The base model's per-token losses are read once, before
    training (static weights: later epochs cost what fine-tuning costs); the kept tokens train
    with the weighted mean of SPEC 2.1. A new fact is, almost by definition, perplexing to θ0: STM
    protects old knowledge by not learning such tokens, the opposite bet of TAALM's.
    """

    def __init__(self, cfg, seed=0):
        super().__init__(cfg, seed)
        self._losses: list[torch.Tensor] = []

    def prepare(self, ctx: PrepareContext) -> None:
        self._losses = document_token_losses(ctx.model, ctx.tokenizer, ctx.encoded, ctx.device, ctx.batch_size)

    def document_weights(self, doc_index, encoded):
        log_tau = math.log(self.cfg.stm.threshold)
        return (self._losses[doc_index] <= log_tau).float()
