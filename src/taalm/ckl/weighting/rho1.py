"""RHO-1 selective language modelling (excess loss against a reference model)."""

from __future__ import annotations

from dataclasses import dataclass

from ...core.config import Rules, option
import math

import torch

from ...core.errors import ConfigError
from .base import WEIGHTINGS, PrepareContext, WeightingMethod, window_token_losses

def select_top_fraction(scores: torch.Tensor, valid: torch.Tensor, ratio: float,
                        tiebreak: torch.Tensor | None = None) -> torch.Tensor:
    """0/1 mask of the top ``ratio`` of the valid positions by score (over the whole batch).

    k = max(1, round(ratio * n_valid)) positions are kept; equal scores are ordered by
    ``tiebreak`` (higher first), then by position. scores, valid, tiebreak: [B, T]. Returns
    float [B, T].
    """
    out = torch.zeros(scores.shape, dtype=torch.float32, device=scores.device)
    n_valid = int(valid.sum())
    if n_valid == 0:
        return out
    k = min(n_valid, max(1, round(ratio * n_valid)))
    flat = scores.detach().float().masked_fill(~valid.bool(), -math.inf).flatten()
    if tiebreak is None:
        # stable descending sort: equal scores keep position order (topk's tie order is unspecified)
        order = torch.sort(flat, descending=True, stable=True).indices[:k]
    else:  # sort by the tie-break first, then stably by the score: ties fall in tie-break order
        pre = torch.sort(tiebreak.detach().float().flatten(), descending=True, stable=True).indices
        order = pre[torch.sort(flat[pre], descending=True, stable=True).indices][:k]
    out.view(-1)[order] = 1.0
    return out


@dataclass
class Rho1Config:
    """The `rho1` weighting method (RHO-1 selective language modelling)."""

    ratio: float = option(0.4, "fraction of tokens kept (top by excess loss); the release keeps 40%")
    reference: str | None = option(None, 'None = θ0; "finetuned" = θ0 fine-tuned on the documents first; or a model spec')
    reference_epochs: int = option(2, "reference=finetuned: epochs of plain fine-tuning (the run's train settings)")

    def _rules(self, r: Rules) -> None:
        r.finite("ratio", 0.0, 1.0, low_open=True)
        r.at_least("reference_epochs", 1)


@WEIGHTINGS.register("rho1", config=Rho1Config)
class Rho1(WeightingMethod):
    """RHO-1 selective language modelling: score each token by its excess loss
    ℓ_t(θ) − ℓ_t(θ_ref) and train only on the top ``ratio`` of tokens in the batch.

    θ_ref is the frozen starting model θ0 (default), a model spec, or ``finetuned``: a copy of
    θ0 fine-tuned for ``reference_epochs`` on the run's own documents, the reference the RHO-1
    paper relies on (a model trained on the target data), so that ℓ_θ − ℓ_ref singles out the
    tokens that are learnable and not yet learned. The reference losses are computed once per
    training window; θ's losses come from the training forward. Equal excess losses (all of
    them at the first step with reference θ0) are ordered by θ's own loss, highest first, so the
    first step trains the tokens θ knows least rather than the batch's first positions. The kept
    tokens weigh 1 and the others 0; the learner normalises each sequence over its kept tokens
    and averages over the sequences that keep any (RHO-1 averages over all kept tokens of the
    batch; the two agree when sequences keep equally many).
    (The public release builds its mask from ``argsort`` positions instead of ranks and so keeps
    the wrong tokens; :func:`select_top_fraction` selects by rank and is tested.)
    """

    dynamic = True

    def __init__(self, cfg, seed=0):
        super().__init__(cfg, seed)  # method.rho1's ranges: Rho1Config._rules, checked when the method is built
        self.ref_losses: dict[tuple[int, int], torch.Tensor] = {}

    def preview_note(self) -> str | None:
        if self.cfg.rho1.reference:
            return None
        return ("note: rho1 against its default reference (the model itself) has zero excess loss everywhere "
                "before training, so the shown selection is arbitrary; pass method.rho1.reference=MODEL to "
                "compare two models")

    def check_config(self, cfg) -> None:
        """The fine-tuned reference is a copy of θ trained alone: not of a sharded θ (train.fsdp)."""
        if cfg.train.fsdp and self.cfg.rho1.reference == "finetuned":
            raise ConfigError("train.fsdp=true cannot train RHO-1's fine-tuned reference (a copy of a sharded θ); "
                              "use method.rho1.reference= (θ0) or a model path", "train.fsdp")

    def prepare(self, ctx: PrepareContext) -> None:
        model = ctx.model
        if self.cfg.rho1.reference == "finetuned":
            model = self._finetuned_reference(ctx)
        elif self.cfg.rho1.reference:
            from ...models.loading import load_model

            model = load_model(self.cfg.rho1.reference, device=str(ctx.device), with_tokenizer=False)
            if model.get_input_embeddings().num_embeddings < len(ctx.tokenizer):
                raise ConfigError("method.rho1.reference must share the base model's tokenizer")
        for chunk, losses, _ in window_token_losses(model, ctx.tokenizer, ctx.windows, ctx.device,
                                                     ctx.batch_size):
            for w, row in zip(chunk, losses):
                self.ref_losses[(w.doc_index, w.start)] = row[:len(w.input_ids)].float().cpu()

    def _finetuned_reference(self, ctx: PrepareContext):
        """A copy of θ0 (as the run's θ form prepared it) fine-tuned on the run's documents with
        the run's train settings for ``reference_epochs`` epochs; θ0 itself is untouched. The
        learner supplies the fine-tuning (``ctx.fine_tune``)."""
        if ctx.fine_tune is None:
            raise ConfigError("method.rho1.reference=finetuned needs the learner's fine_tune (PrepareContext); "
                              "outside learn(), give a model spec as the reference")
        return ctx.fine_tune(self.cfg.rho1.reference_epochs)

    def step_weights(self, token_losses, valid, windows, logits=None):
        ref = torch.zeros_like(token_losses, dtype=torch.float32)
        for b, w in enumerate(windows):
            r = self.ref_losses[(w.doc_index, w.start)]
            ref[b, :len(r)] = r.to(ref.device)
        excess = token_losses.detach().float() - ref
        return select_top_fraction(excess, valid, self.cfg.rho1.ratio, tiebreak=token_losses)
