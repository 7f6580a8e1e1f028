"""Plain fine-tuning: every token weighs 1."""

from __future__ import annotations

import torch

from .base import WEIGHTINGS, WeightingMethod

@WEIGHTINGS.register("finetune")
class Finetune(WeightingMethod):
    """Uniform weights: plain fine-tuning."""

    def document_weights(self, doc_index, encoded):
        return torch.ones(len(encoded.input_ids))
