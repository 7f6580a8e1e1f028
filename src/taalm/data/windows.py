"""Tokenising documents and probes (with character offsets and answer spans) and cutting
documents into training windows.

Answer spans are found on characters (last occurrence of the answer string) and mapped to tokens
through the tokenizer's offsets: a token belongs to the answer when its character span overlaps
the answer's. This is the "last occurrence of the answer's tokens" of SPEC 2.5, made robust to
BPE merges with the preceding space.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core.errors import InputError
from .records import Document, Probe

@dataclass
class Encoded:
    """A tokenised text; ``span`` are the token indices of the answer (may be empty)."""

    input_ids: list[int]
    offsets: list[tuple[int, int]]
    span: list[int] = field(default_factory=list)


def encode(tokenizer, text: str, answer_start: int | None = None, answer: str | None = None,
           source: str = "") -> Encoded:
    """Tokenise ``text`` and locate the answer's tokens (char overlap with the answer span)."""
    if not getattr(tokenizer, "is_fast", False):
        raise InputError("taalm needs a fast (Rust) tokenizer for character offsets; "
                         "load the model's tokenizer.json")
    enc = tokenizer(text, return_offsets_mapping=True, add_special_tokens=True)
    ids = list(enc["input_ids"])
    offsets = [tuple(o) for o in enc["offset_mapping"]]
    span: list[int] = []
    if answer is not None and answer_start is not None:
        a0, a1 = answer_start, answer_start + len(answer)
        span = [i for i, (s, e) in enumerate(offsets) if e > s and s < a1 and e > a0]
        if not span:
            path, _, line = source.rpartition(":")
            raise InputError(f"answer {answer!r} not found among the tokens",
                             path or None, int(line) if line.isdigit() else None)
    return Encoded(ids, offsets, span)


def encode_probe(tokenizer, probe: Probe) -> Encoded:
    enc = encode(tokenizer, probe.text, probe.answer_start, probe.answer, probe.source)
    if enc.span[0] == 0:
        path, _, line = probe.source.rpartition(":")
        raise InputError("the answer is the first token of the probe, so nothing predicts it; "
                         "put some text before it", path or None, int(line) if line.isdigit() else None)
    return enc


def encode_document(tokenizer, doc: Document) -> Encoded:
    return encode(tokenizer, doc.text, doc.answer_start, doc.answer, doc.source)


# --------------------------------------------------------------------------------------------
# Sliding windows
# --------------------------------------------------------------------------------------------
@dataclass
class Window:
    """A training sequence cut from one document.

    ``start`` is its first token's index in the document; ``loss_mask[t]`` is 1 for the tokens
    whose loss is trained in this window (0 for context shared with the previous window), so
    every token of a document is trained exactly once per epoch.
    """

    doc_index: int
    start: int
    input_ids: list[int]
    loss_mask: list[int]


def split_windows(doc_index: int, input_ids: list[int], max_length: int, stride: int) -> list[Window]:
    """Cut a document into windows of ``max_length`` tokens overlapping by c = max(stride, 1) tokens.

    Every token after the first is the prediction target of exactly one window, at a position
    with at least one token of left context in that window: a window's own first token is never
    a target (nothing before it in the window predicts it), so consecutive windows share at least
    one token even with ``stride=0``. Never truncates: a document of n tokens gives
    ceil((n - c) / (max_length - c)) windows (one when n <= max_length).
    """
    if max_length < 2:
        raise ValueError("max_length must be at least 2")
    if not 0 <= stride < max_length:
        raise ValueError(f"stride ({stride}) must be in [0, max_length={max_length})")
    n = len(input_ids)
    if n <= max_length:
        return [Window(doc_index, 0, list(input_ids), [1] * n)]
    windows = []
    start, trained_to = 0, 0  # tokens [0, trained_to) already have their loss in some window
    while trained_to < n:
        end = min(start + max_length, n)
        ids = list(input_ids[start:end])
        mask = [1 if start + t >= trained_to else 0 for t in range(end - start)]
        windows.append(Window(doc_index, start, ids, mask))
        trained_to = end
        if end == n:
            break
        start = end - max(stride, 1)  # the next window's first token is context, never a target
    return windows


def prepare_windows(tokenizer, documents: list[Document], max_length: int, stride: int):
    """Encode documents and cut them into windows. Returns (encoded, windows)."""
    encoded = [encode_document(tokenizer, d) for d in documents]
    windows = [w for i, e in enumerate(encoded) for w in split_windows(i, e.input_ids, max_length, stride)]
    return encoded, windows
