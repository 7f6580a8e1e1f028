"""Token weights as data: per-token weights with their tokens and character offsets, for use
outside taalm (analysis notebooks, other trainers).

**Position 0 has no loss.** In a causal LM nothing predicts a document's first token (index 0 of
the per-θ-token weight vector; for SmolLM2, which adds no BOS, the first real token), so the
weight a method gives it never reaches training and means nothing; a Train-Attention φ often
puts ~0.97 there. Everything taalm shows or exports therefore marks it instead of showing it:
:func:`has_loss` says which positions carry a loss, :func:`shown_weights` is the weight vector
with ``None`` at the others. The heatmaps, plots, statistics and the two files below all use them.

Two formats, both written atomically and readable without taalm:

* JSON Lines (``.jsonl``): one row per document, ``{"id", "source", "text", "method", "model",
  "tokens", "token_ids", "offsets", "weights", "no_loss"}`` where ``offsets[i] = [start, end)`` are
  the character span of token ``i`` in ``text`` (``text[start:end]`` is what it covers),
  ``weights[i]`` is ``null`` where token ``i`` has no loss, and ``no_loss`` lists those positions
  (``[0]``; ``[]`` for an empty document).
* NumPy (``.npz``, no pickled objects: ``np.load(path)`` with the default ``allow_pickle=False``
  reads it): flat per-token arrays ``token_ids`` int64 ``[N]``, ``weights`` float32 ``[N]`` (NaN
  where the token has no loss), ``has_loss`` bool ``[N]`` (False at each document's position 0),
  ``offsets`` int64 ``[N, 2]``, ``doc_index`` int64 ``[N]``; per document ``doc_start`` int64
  ``[D + 1]`` (document d's tokens are ``doc_start[d]:doc_start[d + 1]``), ``doc_ids`` and
  ``texts`` (unicode arrays); ``method`` and ``model`` (unicode scalars).
"""

from __future__ import annotations

import io
from pathlib import Path

#: what a reader sees instead of a weight on a token without loss
NO_LOSS_LABEL = "n/a"
NO_LOSS_NOTE = "n/a: the first token has no loss (nothing predicts it), so its weight is unused"


def has_loss(weights) -> list[bool]:
    """For one document's per-token weight vector (anything with a length: list, tensor, array),
    which positions carry a causal-LM loss: every one but position 0, which nothing predicts.
    The one place that rule lives; use it (or :func:`shown_weights`) instead of ``[1:]``."""
    return [i > 0 for i in range(len(weights))]


def no_loss_positions(weights) -> list[int]:
    """The positions of ``weights`` without a loss (``[0]``, or ``[]`` when it is empty)."""
    return [i for i, m in enumerate(has_loss(weights)) if not m]


def shown_weights(weights) -> list[float | None]:
    """``weights`` as floats, ``None`` where the token has no loss: what displays and exports
    show, and what statistics skip (:func:`loss_weights`)."""
    values = weights.tolist() if hasattr(weights, "tolist") else list(weights)
    return [float(w) if m else None for w, m in zip(values, has_loss(values))]


def loss_weights(weights) -> list[float]:
    """Only the weights of tokens with a loss: the values means, shares and scales are made of."""
    return [w for w in shown_weights(weights) if w is not None]


def weight_rows(documents, pairs, tokenizer, method: str, model: str) -> list[dict]:
    """One row per document: its tokens, ids, offsets and weights (``pairs``: ``(Encoded,
    weights)`` from :func:`taalm.ckl.weighting.weights_for_documents`); ``null`` weight and a
    ``no_loss`` entry for the positions without loss."""
    rows = []
    for doc, (enc, w) in zip(documents, pairs):
        rows.append({"id": doc.id, "source": doc.source, "text": doc.text, "method": method, "model": model,
                     "tokens": tokenizer.convert_ids_to_tokens(list(enc.input_ids)),
                     "token_ids": list(map(int, enc.input_ids)), "offsets": [list(map(int, o)) for o in enc.offsets],
                     "weights": shown_weights(w), "no_loss": no_loss_positions(w)})
    return rows


def write_weights(path: str | Path, rows: list[dict]) -> Path:
    """Write ``rows`` (:func:`weight_rows`) as ``.jsonl`` or ``.npz``, by the file's suffix."""
    from ..core.errors import TaalmError
    from ..core.files import atomic_write_bytes, write_jsonl

    path = Path(path)
    if path.suffix == ".jsonl":
        write_jsonl(path, rows)
    elif path.suffix == ".npz":
        atomic_write_bytes(path, _npz_bytes(rows))
    else:
        raise TaalmError(f"{path}: weights go to a .jsonl or a .npz file")
    return path


def _npz_bytes(rows: list[dict]) -> bytes:
    """The ``.npz`` of the module docstring: flat arrays, NaN weight where ``has_loss`` is False."""
    import numpy as np

    lengths = [len(r["token_ids"]) for r in rows]
    arrays = {
        "token_ids": np.array([t for r in rows for t in r["token_ids"]], dtype=np.int64),
        "weights": np.array([np.nan if x is None else x for r in rows for x in r["weights"]], dtype=np.float32),
        "has_loss": np.array([i not in r["no_loss"] for r in rows for i in range(len(r["token_ids"]))], dtype=bool),
        "offsets": np.array([o for r in rows for o in r["offsets"]], dtype=np.int64).reshape(-1, 2),
        "doc_index": np.repeat(np.arange(len(rows), dtype=np.int64), lengths),
        "doc_start": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        "doc_ids": np.array([str(r["id"]) for r in rows], dtype=np.str_),
        "texts": np.array([r["text"] for r in rows], dtype=np.str_),
        "method": np.array(rows[0]["method"] if rows else "", dtype=np.str_),
        "model": np.array(rows[0]["model"] if rows else "", dtype=np.str_),
    }
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


__all__ = ["NO_LOSS_LABEL", "NO_LOSS_NOTE", "has_loss", "loss_weights", "no_loss_positions", "shown_weights",
           "weight_rows", "write_weights"]
