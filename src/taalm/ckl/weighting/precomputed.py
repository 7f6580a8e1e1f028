"""Weights given in advance (not registered by name: pass an instance)."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from .base import WeightingMethod


class PrecomputedWeights(WeightingMethod):
    """Weights given in advance, one tensor per document (e.g. from a φ in memory).

    Not registered by name: pass an instance as
    ``learn(..., options=LearnOptions(method=PrecomputedWeights(ws)))``.
    Meta-training uses it to validate φ without writing a checkpoint.
    """

    name = "precomputed"

    def __init__(self, weights: list[torch.Tensor], label: str = "precomputed"):
        super().__init__(SimpleNamespace(name=label), 0)  # type: ignore[arg-type]  # no options: only its name
        self.name = label  # the run is labelled as the method the weights came from
        self.weights = [w.detach().float().cpu() for w in weights]

    def document_weights(self, doc_index, encoded):
        w = self.weights[doc_index]
        if len(w) != len(encoded.input_ids):
            raise ValueError(f"document {doc_index}: {len(w)} weights for {len(encoded.input_ids)} tokens")
        return w
