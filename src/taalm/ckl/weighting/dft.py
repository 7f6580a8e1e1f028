"""DFT, dynamic fine-tuning: each token's loss scaled by θ's own (stop-gradient) probability of it."""

from __future__ import annotations

import torch

from .base import WEIGHTINGS, WeightingMethod


@WEIGHTINGS.register("dft")
class DynamicFineTuning(WeightingMethod):
    """DFT (arXiv 2508.05629): w_t = sg(p_θ(x_t | x_<t)), a plain mean of w·ℓ over the tokens.

    The paper's Eq. (9) rectifies the SFT gradient by the token probability:

        L_DFT(θ) = −E[ Σ_t sg(π_θ(y_t | y_<t, x)) · log π_θ(y_t | y_<t, x) ]

    so w_t = exp(−ℓ_t) of the training forward itself (no extra pass), stop-gradient, and the
    sequence's loss is Σ_t m_t w_t ℓ_t / Σ_t m_t (``normalization="tokens"``, as SFT averages;
    TRL's ``loss_type="dft"``). Tokens θ finds unlikely (new facts among them) weigh little.
    """

    dynamic = True
    normalization = "tokens"

    def step_weights(self, token_losses, valid, windows, logits=None):
        return torch.exp(-token_losses.float()) * valid
