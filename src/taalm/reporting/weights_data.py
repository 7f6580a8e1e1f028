"""Token weights as data: per-token weights with their tokens and character offsets, for use
outside taalm (analysis notebooks, other trainers).

Two formats, both written atomically and readable without taalm:

* JSON Lines (``.jsonl``): one row per document, ``{"id", "source", "text", "method", "model",
  "tokens", "token_ids", "offsets", "weights"}`` where ``offsets[i] = [start, end)`` are the
  character span of token ``i`` in ``text`` (``text[start:end]`` is what it covers).
* NumPy (``.npz``, no pickled objects: ``np.load(path)`` with the default ``allow_pickle=False``
  reads it): flat per-token arrays ``token_ids`` int64 ``[N]``, ``weights`` float32 ``[N]``,
  ``offsets`` int64 ``[N, 2]``, ``doc_index`` int64 ``[N]``; per document ``doc_start`` int64
  ``[D + 1]`` (document d's tokens are ``doc_start[d]:doc_start[d + 1]``), ``doc_ids`` and
  ``texts`` (unicode arrays); ``method`` and ``model`` (unicode scalars).
"""

from __future__ import annotations

import io
from pathlib import Path


def weight_rows(documents, pairs, tokenizer, method: str, model: str) -> list[dict]:
    """One row per document: its tokens, ids, offsets and weights (``pairs``: ``(Encoded,
    weights)`` from :func:`taalm.ckl.weighting.weights_for_documents`)."""
    rows = []
    for doc, (enc, w) in zip(documents, pairs):
        rows.append({"id": doc.id, "source": doc.source, "text": doc.text, "method": method, "model": model,
                     "tokens": tokenizer.convert_ids_to_tokens(list(enc.input_ids)),
                     "token_ids": list(map(int, enc.input_ids)), "offsets": [list(map(int, o)) for o in enc.offsets],
                     "weights": [float(x) for x in w.tolist()]})
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
    import numpy as np

    lengths = [len(r["token_ids"]) for r in rows]
    arrays = {
        "token_ids": np.array([t for r in rows for t in r["token_ids"]], dtype=np.int64),
        "weights": np.array([x for r in rows for x in r["weights"]], dtype=np.float32),
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


__all__ = ["weight_rows", "write_weights"]
