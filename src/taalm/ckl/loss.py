"""The token-weighted causal-LM loss (SPEC 2.1), as pure functions of tensors.

Conventions (used everywhere in taalm):
  * ``input_ids``, ``attention_mask``, ``weights`` and ``loss_mask`` are all ``[B, T]`` and
    **aligned with the tokens**: position ``t`` holds the weight of ℓ_t = −log p(x_t | x_<t).
    Position 0 has no prediction and never counts.
  * a target ``t`` is valid when both x_t and x_{t-1} are real tokens (``m_t``); this makes
    right and left padding equivalent, and pads never count (the public release counts pads in
    its plain fine-tuning loss; we do not).

Per sequence b:

    L_b = Σ_t m_t w_t ℓ_t / max(Σ_t m_t w_t, ε)

and the batch loss is the mean of L_b over sequences. With every w_t = 1 this is exactly the
ordinary masked causal-LM loss of each sequence (we clamp the denominator instead of adding ε so
that the parity is exact, not merely close; the gradient is the same wherever Σ m w > ε).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def target_mask(attention_mask: torch.Tensor | None, input_ids: torch.Tensor) -> torch.Tensor:
    """``m_t`` of the module docstring: 1 where x_t is a valid prediction target. ``[B, T]`` bool."""
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    am = attention_mask.bool()
    m = torch.zeros_like(am)
    m[:, 1:] = am[:, 1:] & am[:, :-1]
    return m


def token_losses(logits: torch.Tensor, input_ids: torch.Tensor,
                 attention_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token NLL aligned with the tokens.

    logits: [B, T, V] (any float dtype; computed in float32 or wider), input_ids: [B, T].
    Returns (losses [B, T] with 0 where invalid, mask [B, T] bool).
    """
    B, T, V = logits.shape
    lp = logits[:, :-1]
    if lp.dtype in (torch.float16, torch.bfloat16):
        lp = lp.float()
    nll = F.cross_entropy(lp.reshape(-1, V), input_ids[:, 1:].reshape(-1), reduction="none").view(B, T - 1)
    mask = target_mask(attention_mask, input_ids)
    losses = torch.zeros(B, T, dtype=nll.dtype, device=nll.device)
    losses[:, 1:] = nll
    return losses * mask, mask


def known_tokens(logits: torch.Tensor, input_ids: torch.Tensor,
                 attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Bool ``[B, T]``, aligned with the tokens: True where x_t is a valid target that the model
    already predicts (argmax of the logits at t-1 equals x_t). The paper's ``known_masking`` gives
    these tokens weight 0, so training spends itself on what is not yet known."""
    pred = logits[:, :-1].detach().argmax(dim=-1)  # [B, T-1]
    out = torch.zeros(input_ids.shape, dtype=torch.bool, device=input_ids.device)
    out[:, 1:] = pred == input_ids[:, 1:]
    return out & target_mask(attention_mask, input_ids)


NORMALIZATIONS = ("weighted", "tokens")


def per_sequence_weighted_loss(losses: torch.Tensor, mask: torch.Tensor, weights: torch.Tensor | None = None,
                               loss_mask: torch.Tensor | None = None, eps: float = 1e-8,
                               normalization: str = "weighted") -> tuple[torch.Tensor, torch.Tensor]:
    """``(L_b, S_b)``, both ``[B]``: L_b = Σ_t m w ℓ / S_b with S_b = max(Σ_t m w, eps), the
    per-sequence weighted loss of the module docstring. The learner averages L_b over sequences;
    meta-training differentiates it per pair (∂L_b/∂w_t = m_t (ℓ_t − L_b) / S_b needs S_b).
    ``normalization="tokens"``: S_b = max(Σ_t m, eps) instead, a plain mean of w·ℓ over the
    sequence's targets (DFT's loss); the same as "weighted" when every w = 1."""
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"unknown normalization {normalization!r}; one of {NORMALIZATIONS}")
    m = mask.to(losses.dtype)
    if loss_mask is not None:
        m = m * loss_mask.to(losses.dtype)
    w = m if weights is None else m * weights.to(losses.dtype)
    S = (w if normalization == "weighted" else m).sum(dim=1).clamp_min(eps)  # [B]
    return (w * losses).sum(dim=1) / S, S


def weighted_loss_from_token_losses(losses: torch.Tensor, mask: torch.Tensor,
                                    weights: torch.Tensor | None = None,
                                    loss_mask: torch.Tensor | None = None, eps: float = 1e-8,
                                    reduction: str = "mean", normalization: str = "weighted") -> torch.Tensor:
    """L of the module docstring from per-token losses ``[B, T]``.

    ``loss_mask`` (optional, [B, T]) removes further positions, e.g. the context tokens that a
    sliding window shares with the previous window. ``reduction``: ``mean`` (over sequences),
    ``sum`` (over sequences) or ``none`` (``[B]``). ``normalization``: see
    :func:`per_sequence_weighted_loss`.
    """
    per_seq, _ = per_sequence_weighted_loss(losses, mask, weights, loss_mask, eps, normalization)  # [B]
    if reduction == "none":
        return per_seq
    if reduction == "sum":
        return per_seq.sum()
    if reduction == "mean":
        return per_seq.mean()
    raise ValueError(f"unknown reduction {reduction!r}")


def weighted_lm_loss(logits: torch.Tensor, input_ids: torch.Tensor,
                     attention_mask: torch.Tensor | None = None,
                     weights: torch.Tensor | None = None, loss_mask: torch.Tensor | None = None,
                     eps: float = 1e-8, reduction: str = "mean") -> torch.Tensor:
    """Token-weighted causal-LM loss (SPEC 2.1). ``weights=None`` means all ones."""
    losses, mask = token_losses(logits, input_ids, attention_mask)
    return weighted_loss_from_token_losses(losses, mask, weights, loss_mask, eps, reduction)
