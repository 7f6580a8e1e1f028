"""``change3``: the cubed change of the answer tokens' loss against θ0 (a release variant)."""

from __future__ import annotations

from .base import OBJECTIVES, OuterObjective


@OBJECTIVES.register("change3")
class Change3(OuterObjective):
    """Σ (ℓ' − ℓ⁰)³ / |answer| over the task's answer tokens: the change against θ0's loss, cubed.

    0 at θ0 by definition (no forward is spent on its log value).
    """

    needs_theta0 = True
    theta0_value = 0.0

    def token_terms(self, task_losses, task_losses0):
        return (task_losses - task_losses0) ** 3
