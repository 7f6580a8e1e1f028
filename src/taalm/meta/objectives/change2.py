"""``change2``: the signed squared change of the answer tokens' loss against θ0 (a release variant)."""

from __future__ import annotations

import torch

from .base import OBJECTIVES, OuterObjective


@OBJECTIVES.register("change2")
class Change2(OuterObjective):
    """Σ sign(Δ) Δ² / |answer| over the task's answer tokens, Δ = ℓ' − ℓ⁰ (the change against θ0).

    0 at θ0 by definition (no forward is spent on its log value).
    """

    needs_theta0 = True
    theta0_value = 0.0

    def token_terms(self, task_losses, task_losses0):
        d = task_losses - task_losses0
        return torch.sign(d) * d ** 2
