"""Meta-training's data: pairs (document, task with an answer span) -> tokens -> padded batches.

:func:`encode_pairs` tokenises each pair once (the document truncated to ``max_doc_tokens``, the
task with its answer span); :func:`make_batch` pads a micro-batch into a
:class:`~taalm.meta.gradient.PairBatch` ([P, T] documents, [P, Tq] tasks, answer masks);
:func:`pair_stream` is the seeded, per-epoch shuffled order of the pairs, so a resumed run sees
exactly the pairs it would have seen; :func:`phi_weights` maps φ's weights onto θ's tokens.
"""

from __future__ import annotations


from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from ..data import Encoded, Pair, encode, encode_probe, pad_sequences
from .gradient import PairBatch

if TYPE_CHECKING:

    pass


@dataclass
class EncodedPair:
    text: str  # the document text θ and φ read (cut at the last kept token)
    doc: Encoded  # θ's tokens of the document; ``span`` = the answer's tokens in it, if present
    task_ids: list[int]
    task_span: list[int]  # the answer's tokens in the task (what the outer loss scores)
    id: str


def encode_pairs(tokenizer, pairs: list[Pair], max_doc_tokens: int) -> list[EncodedPair]:
    """θ's tokenisation of every pair; documents longer than ``max_doc_tokens`` are cut."""
    out = []
    for p in pairs:
        d = p.document
        enc = encode(tokenizer, d.text)
        text = d.text
        if len(enc.input_ids) > max_doc_tokens:
            enc = Encoded(enc.input_ids[:max_doc_tokens], enc.offsets[:max_doc_tokens])
            text = d.text[:max((e for _, e in enc.offsets), default=len(d.text))]
        span = []
        if d.answer is not None and d.answer_start is not None and d.answer_start + len(d.answer) <= len(text):
            a0, a1 = d.answer_start, d.answer_start + len(d.answer)
            span = [i for i, (s, e) in enumerate(enc.offsets) if e > s and s < a1 and e > a0]
        t = encode_probe(tokenizer, p.task)
        out.append(EncodedPair(text, Encoded(enc.input_ids, enc.offsets, span), t.input_ids, t.span, p.document.id))
    return out


def make_batch(items: list[EncodedPair], pad_id: int, device, unrelated: list[EncodedPair] | None = None) -> PairBatch:
    """Right-padded :class:`PairBatch` of documents, tasks, answer masks (and unrelated tasks)."""
    d_ids, d_mask = pad_sequences([e.doc.input_ids for e in items], pad_id)
    t_ids, t_mask = pad_sequences([e.task_ids for e in items], pad_id)
    ans = torch.zeros(t_ids.shape)
    for i, e in enumerate(items):
        ans[i, e.task_span] = 1.0
    b = PairBatch(d_ids, d_mask, t_ids, t_mask, ans)
    if unrelated is not None:
        b.u_ids, b.u_mask = pad_sequences([e.task_ids for e in unrelated], pad_id)
        b.u_answer = torch.zeros(b.u_ids.shape)
        for i, e in enumerate(unrelated):
            b.u_answer[i, e.task_span] = 1.0
    for f in ("doc_ids", "doc_mask", "task_ids", "task_mask", "answer", "u_ids", "u_mask", "u_answer"):
        v = getattr(b, f)
        if v is not None:
            setattr(b, f, v.to(device))
    return b


def theta0_losses(model, tokenizer, items: list[EncodedPair], device, cache: dict | None = None) -> list[torch.Tensor]:
    """θ0's per-token losses of the items' documents (what a loss-aware φ reads), one θ forward
    per document: kept in ``cache`` by document id, so every later pair of a document reuses them.
    ``model`` is θ's base (θ0: the per-pair LoRA starts at B = 0, so θ0 computes what the base does)."""
    from ..ckl.weighting import document_token_losses

    cache = {} if cache is None else cache
    todo = [e for e in items if e.id not in cache]
    if todo:
        for e, loss in zip(todo, document_token_losses(model, tokenizer, [e.doc for e in todo], device, len(todo))):
            cache[e.id] = loss
    return [cache[e.id] for e in items]


def phi_weights(phi, items: list[EncodedPair], T: int, device, losses: list[torch.Tensor] | None = None) -> torch.Tensor:
    """φ's weights for θ's tokens of every document, ``[P, T]`` (differentiable; pads 0);
    ``losses``: θ0's token losses of each document, for a loss-aware φ."""
    ws = phi.weights_for_texts([e.text for e in items], [e.doc for e in items], batch_size=len(items),
                               losses=losses)
    out = torch.zeros(len(items), T, device=device)
    rows = [torch.nn.functional.pad(w.to(device), (0, T - len(w))) for w in ws]
    return torch.stack(rows) if rows else out


def pair_stream(n: int, seed: int, start: int, count: int) -> list[int]:
    """Indices ``start .. start+count-1`` of the endless stream of per-epoch permutations."""
    out: list[int] = []
    pos = start
    while len(out) < count:
        epoch, k = divmod(pos, n)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100003 + epoch)).tolist()
        take = min(n - k, count - len(out))
        out.extend(perm[k:k + take])
        pos += take
    return out


def unrelated_offset(seed: int, update: int, micro: int, n: int) -> int:
    """The unrelated task of a pair is the task of the pair this many places further in the pool:
    a random non-zero offset drawn from a generator seeded by (seed, update, micro-batch), so
    that a resumed run draws exactly what the uninterrupted run drew (no RNG state to save)."""
    if n < 2:
        return 0
    g = torch.Generator().manual_seed(seed * 1_000_003 + update * 1_009 + micro)
    return int(torch.randint(1, n, (1,), generator=g))
