"""EAFT, entropy-adaptive fine-tuning: each token weighed by θ's normalised top-k entropy there."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ...core.config import Rules, option
from .base import WEIGHTINGS, WeightingMethod


@dataclass
class EaftConfig:
    """The `eaft` weighting method (entropy-adaptive fine-tuning)."""

    k: int = option(20, "top-k of θ's next-token distribution whose entropy is measured (the paper: 20)")
    alpha: float = option(1.0, "exponent α of the normalised entropy (the paper: 1)")

    def _rules(self, r: Rules) -> None:
        r.at_least("k", 2)
        r.finite("alpha", 0.0, 100.0, low_open=True)


def topk_entropy_weights(logits: torch.Tensor, k: int, alpha: float) -> torch.Tensor:
    """``[B, T]`` aligned with the tokens: w_t = (H_t / ln k)^α, H_t the entropy of the softmax
    of the k largest logits at position t−1 (the prediction of x_t); position 0 gets 0.
    logits: [B, T, V] (detached)."""
    B, T, V = logits.shape
    k = min(k, V)
    top = logits[:, :-1].float().topk(k, dim=-1).values  # [B, T-1, k]
    logp = torch.log_softmax(top, dim=-1)
    H = -(logp.exp() * logp).sum(dim=-1)  # [B, T-1], in [0, ln k]
    out = torch.zeros(B, T, dtype=torch.float32, device=logits.device)
    out[:, 1:] = (H / math.log(k)).clamp(0.0, 1.0) ** alpha
    return out


@WEIGHTINGS.register("eaft", config=EaftConfig)
class EntropyAdaptiveFineTuning(WeightingMethod):
    """EAFT (arXiv 2601.02151): w_t = (H_t / ln k)^α, H_t θ's top-k entropy at t, stop-gradient.

    Tokens where θ is confident (low entropy: what it already knows, or confidently contradicts)
    weigh little, so confident old knowledge is disturbed less; uncertain tokens train fully.
    H_t is the entropy of the renormalised top-k distribution of the training forward's logits
    (k = 20, α = 1 as the paper; LLaMA-Factory divides by 3 ≈ ln 20, we by ln k exactly), and
    the sequence's loss is the plain mean of w·ℓ over its tokens (``normalization="tokens"``).
    """

    dynamic = True
    needs_logits = True
    normalization = "tokens"

    def step_weights(self, token_losses, valid, windows, logits=None):
        if logits is None:
            raise ValueError("eaft weighs tokens by θ's logits: step_weights needs them")
        c = self.cfg.eaft
        return topk_entropy_weights(logits, c.k, c.alpha) * valid
