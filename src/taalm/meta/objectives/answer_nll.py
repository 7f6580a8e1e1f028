"""``answer_nll``: the mean answer-token NLL after the update (the release's ``phi_loss``)."""

from __future__ import annotations

from .base import OBJECTIVES, OuterObjective


@OBJECTIVES.register("answer_nll")
class AnswerNll(OuterObjective):
    """The mean NLL of the task's answer tokens at θ' (the release's phi_loss with the label mask).

    Its value at θ0 is θ0's answer NLL, computed for the log ("outer0", "gain") when log_outer0 is on.
    """

    def token_terms(self, task_losses, task_losses0):
        return task_losses
