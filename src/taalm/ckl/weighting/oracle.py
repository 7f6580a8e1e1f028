"""The oracle: weight only on the answer's tokens (needs the answer; a reference, not deployable)."""

from __future__ import annotations

import torch

from .base import WEIGHTINGS, WeightingMethod

@WEIGHTINGS.register("oracle")
class Oracle(WeightingMethod):
    """Weight 1 on the answer tokens (the answer's last occurrence in the document), 0 elsewhere.
    An upper reference that needs the answer; not a method a user can deploy."""

    needs_answer = True

    def document_weights(self, doc_index, encoded):
        w = torch.zeros(len(encoded.input_ids))
        w[encoded.span] = 1.0
        return w
