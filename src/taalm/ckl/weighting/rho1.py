"""RHO-1 selective language modelling (excess loss against a reference model)."""

from __future__ import annotations

import math

import torch

from ...core.errors import ConfigError
from .base import WEIGHTINGS, PrepareContext, WeightingMethod, window_token_losses

def select_top_fraction(scores: torch.Tensor, valid: torch.Tensor, ratio: float) -> torch.Tensor:
    """0/1 mask of the top ``ratio`` of the valid positions by score (over the whole batch).

    k = max(1, round(ratio * n_valid)) positions are kept; ties are broken by position.
    scores, valid: [B, T]. Returns float [B, T].
    """
    out = torch.zeros(scores.shape, dtype=torch.float32, device=scores.device)
    n_valid = int(valid.sum())
    if n_valid == 0:
        return out
    k = min(n_valid, max(1, round(ratio * n_valid)))
    flat = scores.detach().float().masked_fill(~valid.bool(), -math.inf).flatten()
    # stable descending sort: equal scores keep position order (topk's tie order is unspecified)
    order = torch.sort(flat, descending=True, stable=True).indices[:k]
    out.view(-1)[order] = 1.0
    return out


@WEIGHTINGS.register("rho1")
class Rho1(WeightingMethod):
    """RHO-1 selective language modelling: score each token by its excess loss
    ℓ_t(θ) − ℓ_t(θ_ref) and train only on the top ``ratio`` of tokens in the batch.

    θ_ref is the frozen starting model (default) or ``method.rho1.reference``. The reference
    losses are computed once per training window; θ's losses come from the training forward.
    (The public release builds its mask from ``argsort`` positions instead of ranks and so keeps
    the wrong tokens; :func:`select_top_fraction` selects by rank and is tested.)
    """

    dynamic = True

    def __init__(self, cfg, seed=0):
        super().__init__(cfg, seed)
        if not 0.0 < cfg.rho1.ratio <= 1.0:
            raise ConfigError(f"method.rho1.ratio must be in (0, 1], got {cfg.rho1.ratio}")
        self.ref_losses: dict[tuple[int, int], torch.Tensor] = {}

    def prepare(self, ctx: PrepareContext) -> None:
        model = ctx.model
        if self.cfg.rho1.reference:
            from ...models.loading import load_model

            model = load_model(self.cfg.rho1.reference, device=str(ctx.device), with_tokenizer=False)
            if model.get_input_embeddings().num_embeddings < len(ctx.tokenizer):
                raise ConfigError("method.rho1.reference must share the base model's tokenizer")
        for chunk, losses, _ in window_token_losses(model, ctx.tokenizer, ctx.windows, ctx.device,
                                                     ctx.batch_size):
            for w, row in zip(chunk, losses):
                self.ref_losses[(w.doc_index, w.start)] = row[:len(w.input_ids)].float().cpu()

    def step_weights(self, token_losses, valid, windows):
        ref = torch.zeros_like(token_losses, dtype=torch.float32)
        for b, w in enumerate(windows):
            r = self.ref_losses[(w.doc_index, w.start)]
            ref[b, :len(r)] = r.to(ref.device)
        excess = token_losses.detach().float() - ref
        return select_top_fraction(excess, valid, self.cfg.rho1.ratio)
