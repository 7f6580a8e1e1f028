"""Padding: the one place where sequences of different lengths become a batch.

:func:`pad_sequences` pads token-id lists (right or left) into ``[B, T]`` tensors; every batch in
taalm is built on it: :func:`collate` (training windows with loss masks and weights), probe
evaluation (left or right padding), meta-training pair batches and φ's windows.
"""

from __future__ import annotations

from .windows import Window


def pad_sequences(seqs: list[list[int]], pad_id: int | None, side: str = "right"):
    """``(input_ids, attention_mask)``, both long ``[B, T]`` with T the longest sequence; ``side``
    "right" puts the padding after the tokens, "left" before. A missing pad id pads with 0 (the
    positions are masked anyway)."""
    import torch

    if side not in ("right", "left"):
        raise ValueError(f"padding side must be 'right' or 'left', got {side!r}")
    T = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), T), 0 if pad_id is None else pad_id, dtype=torch.long)
    att = torch.zeros(len(seqs), T, dtype=torch.long)
    for b, s in enumerate(seqs):
        sl = slice(0, len(s)) if side == "right" else slice(T - len(s), T)
        ids[b, sl] = torch.tensor(s, dtype=torch.long)
        att[b, sl] = 1
    return ids, att


def collate(windows: list[Window], pad_id: int, device=None, weights: list | None = None) -> dict:
    """Right-pad windows into a batch: input_ids, attention_mask, loss_mask (and weights) ``[B, T]``."""
    import torch

    ids, att = pad_sequences([w.input_ids for w in windows], pad_id)
    B, T = ids.shape
    lm = torch.zeros(B, T, dtype=torch.float32)
    wt = torch.zeros(B, T, dtype=torch.float32) if weights is not None else None
    for b, w in enumerate(windows):
        n = len(w.input_ids)
        lm[b, :n] = torch.tensor(w.loss_mask, dtype=torch.float32)
        if wt is not None:
            wt[b, :n] = weights[b]
    out = {"input_ids": ids, "attention_mask": att, "loss_mask": lm}
    if wt is not None:
        out["weights"] = wt
    if device is not None:
        out = {k: v.to(device) for k, v in out.items()}
    return out
