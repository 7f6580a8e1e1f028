"""θ form ``full``: every parameter of θ trains (full fine-tuning)."""

from __future__ import annotations

from pathlib import Path

from .base import THETA_FORMS, ThetaForm


@THETA_FORMS.register("full")
class Full(ThetaForm):
    """Full fine-tuning: every parameter trains; saved as a whole model folder."""

    shardable = True  # train.fsdp: FSDP2 shards its weights, gradients and optimizer state

    def prepare(self, model):
        for p in model.parameters():
            p.requires_grad_(True)
        return model

    def save(self, model, tokenizer, folder: Path, state: dict | None = None) -> Path:
        """``state``: the whole tensors to write (an FSDP-sharded θ's, gathered by every rank)."""
        from ...models.loading import save_model_folder

        return save_model_folder(model, tokenizer, Path(folder) / "model", state=state)
