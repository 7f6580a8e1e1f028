"""Probe evaluation (SPEC 2.5): answer-token accuracy and answer NLL, batched.

For one probe: tokenise the full text, locate the answer's tokens (its last occurrence), run one
teacher-forced forward pass, and score

    accuracy = (1/|A|) Σ_{t∈A} [argmax_v p(v | x_<t) = x_t]        nll = (1/|A|) Σ_{t∈A} −log p(x_t | x_<t)
    exact    = Π_{t∈A} [argmax_v p(v | x_<t) = x_t]   (1 when every answer token is predicted, else 0)

A set's accuracy, exact match and NLL are the means over its probes. ``accuracy`` (the paper's
metric) gives partial credit for the guessable tail of a multi-token name; ``exact`` is the
stricter "the model says the whole answer" (teacher-forced greedy, so it equals greedy
generation of the answer from the prompt). Batches are padded on the right by
default; left padding gives the same numbers because we pass explicit ``position_ids`` (the
count of real tokens before each position), so a token's position never depends on padding.

Only the answer positions need logits. Where the model supports it (Hugging Face models of
transformers >= 5 take ``logits_to_keep`` as a boolean ``[B, T]`` mask), the hidden states are
gathered at those positions before the LM head, so no ``[B, T, V]`` logits tensor is built (the
vocabulary projection and the log-softmax are most of an evaluation's cost for short probes).
Models that ignore or reject the argument get the full computation; both give the same scores
(tested).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch

from ..core.errors import TaalmError
from ..data import Encoded, Probe, encode_probe, pad_sequences


@dataclass
class ProbeScore:
    id: str
    accuracy: float
    nll: float
    n_answer_tokens: int
    predicted_ids: list[int] = field(default_factory=list)  # the model's argmax at each answer position
    exact: float = 0.0  # 1.0 when every answer token is the argmax, else 0.0


@dataclass
class EvalResult:
    accuracy: float
    nll: float
    n: int
    per_probe: list[ProbeScore] = field(default_factory=list)
    exact: float = 0.0  # the fraction of probes whose whole answer is predicted

    @classmethod
    def from_scores(cls, scores: list[ProbeScore]) -> EvalResult:
        """The set's means over its probes' scores (any order)."""
        n = len(scores)
        return cls(sum(s.accuracy for s in scores) / n, sum(s.nll for s in scores) / n, n, list(scores),
                   sum(s.exact for s in scores) / n)

    def summary(self) -> dict:
        return {"accuracy": self.accuracy, "exact": self.exact, "nll": self.nll, "n": self.n}

    def to_dict(self) -> dict:
        return {**self.summary(), "per_probe": [asdict(p) for p in self.per_probe]}


def sample_rows(probes: list[Probe], encoded: list[Encoded], scores: list[ProbeScore], tokenizer) -> list[dict]:
    """Per-probe logs (like lm-evaluation-harness's ``--log_samples``): each probe's prompt and
    answer, the answer's tokens and what the model predicts at those positions (argmax, teacher
    forced: each prediction sees the true tokens before it), its accuracy and NLL."""
    rows = []
    for p, e, sc in zip(probes, encoded, scores):
        gold = [e.input_ids[t] for t in e.span]
        rows.append({"id": p.id, "prompt": p.text[:p.answer_start].rstrip(), "answer": p.answer,
                     "answer_tokens": tokenizer.convert_ids_to_tokens(gold),
                     "predicted_tokens": tokenizer.convert_ids_to_tokens(sc.predicted_ids),
                     "predicted": tokenizer.decode(sc.predicted_ids), "accuracy": sc.accuracy, "exact": sc.exact,
                     "nll": sc.nll,
                     "n_answer_tokens": sc.n_answer_tokens})
    return rows


def encode_probes(tokenizer, probes: list[Probe]) -> list[Encoded]:
    """Tokenise probes once (the learner evaluates the same probes after every epoch)."""
    return [encode_probe(tokenizer, p) for p in probes]


def _check_probe_lengths(model, probes: list[Probe], encoded: list[Encoded]) -> None:
    """A probe longer than the model's context would be scored on garbage positions: refused."""
    cfg = getattr(model, "config", None)
    limit = getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None)
    if not isinstance(limit, int) or limit <= 0:
        return
    for p, e in zip(probes, encoded):
        if len(e.input_ids) > limit:
            where = f" ({p.source})" if getattr(p, "source", "") else ""
            raise TaalmError(f"probe {p.id}{where}: {len(e.input_ids)} tokens, longer than the model's context "
                             f"length {limit}; shorten it")


def pad_batch(seqs: list[list[int]], pad_id: int, side: str = "right"):
    """``[B, T]`` input_ids, attention_mask and position_ids for right or left padding."""
    ids, att = pad_sequences(seqs, pad_id, side)
    pos = (att.cumsum(dim=1) - 1).clamp_min(0)
    return ids, att, pos


def _supports_logits_mask() -> bool:
    """Does this transformers read a boolean ``[B, T]`` ``logits_to_keep`` (5.x)?"""
    try:
        from transformers import modeling_utils
    except ImportError:  # pragma: no cover
        return False
    return hasattr(modeling_utils, "slice_logits_to_keep")


def _answer_log_probs(model, ids, att, pos, prev: list[torch.Tensor], device, answer_logits_only: bool):
    """Log-probabilities at the positions ``prev[b]`` of each row ``b``: a list of ``[A_b, V]``.

    Returns ``(rows, used_mask)``; ``used_mask`` is False when the model computed all logits.
    """
    kwargs = dict(input_ids=ids.to(device), attention_mask=att.to(device), position_ids=pos.to(device))
    if answer_logits_only:
        keep = torch.zeros(ids.shape, dtype=torch.bool)
        for b, t in enumerate(prev):
            keep[b, t] = True
        try:
            logits = model(**kwargs, logits_to_keep=keep.to(device)).logits
        except TypeError as e:  # the model's forward has no such argument
            if "logits_to_keep" not in str(e):
                raise
            logits = None
        except torch.OutOfMemoryError:
            raise
        except (IndexError, RuntimeError, ValueError):  # it takes logits_to_keep, but not a [B, T] mask
            logits = None
        if logits is not None and logits.dim() == 2 and logits.shape[0] == int(keep.sum()):
            logp = torch.log_softmax(logits.float(), dim=-1)  # [N, V], rows in (b, t) order
            return list(torch.split(logp, [len(t) for t in prev])), True
        if logits is not None and logits.dim() == 3 and logits.shape[:2] == ids.shape:
            answer_logits_only = False  # the argument was ignored: these are all the logits
        else:
            logits = model(**kwargs).logits
    else:
        logits = model(**kwargs).logits
    logp = torch.log_softmax(logits.float(), dim=-1)  # [B, T, V]
    return [logp[b, t.to(device)] for b, t in enumerate(prev)], False


@torch.no_grad()
def _check_call(probes, batch_size, padding_side: str) -> None:
    """The arguments of :func:`evaluate_probes`, checked before any work: one clear error each."""
    if isinstance(probes, (str, bytes)) or not hasattr(probes, "__len__"):
        raise TaalmError(f"probes must be a list of Probe (read_probes or make_probe), not {type(probes).__name__}")
    if not probes:
        raise TaalmError("no probes to evaluate (an empty list)")
    odd = next((p for p in probes if not isinstance(p, Probe)), None)
    if odd is not None:
        raise TaalmError(f"probes must be Probe objects (read_probes or make_probe), not {type(odd).__name__}: "
                         f"{str(odd)[:40]!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise TaalmError(f"batch_size must be a whole number >= 1, not {batch_size!r}")
    if padding_side not in ("right", "left"):
        raise TaalmError(f"padding_side must be 'right' or 'left', not {padding_side!r}")


def evaluate_probes(model, tokenizer, probes: list[Probe], batch_size: int = 16,
                    padding_side: str = "right", encoded: list[Encoded] | None = None,
                    progress: str | None = None, answer_logits_only: bool = True) -> EvalResult:
    """Answer-token accuracy and NLL of ``model`` on ``probes`` (see the module docstring).

    ``progress``: a progress bar with this label (None: none). ``answer_logits_only``: compute
    logits only at the answer positions where the model allows it (same scores, less work); False
    always computes every position's logits.
    """
    _check_call(probes, batch_size, padding_side)
    if encoded is None:
        encoded = encode_probes(tokenizer, probes)
    _check_probe_lengths(model, probes, encoded)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    # longest first: less padding per batch; results are put back in the probes' order
    order = sorted(range(len(probes)), key=lambda i: -len(encoded[i].input_ids))
    scores: list[ProbeScore | None] = [None] * len(probes)
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    use_mask = answer_logits_only and _supports_logits_mask()
    if progress is not None:
        from ..core.progress import progress as progress_bar

        batches = progress_bar(batches, desc=progress, leave=False, unit="batch")
    for idx in batches:
        seqs = [encoded[i].input_ids for i in idx]
        ids, att, pos = pad_batch(seqs, tokenizer.pad_token_id, padding_side)
        T = ids.shape[1]
        tgts = [torch.tensor(encoded[i].span) + (0 if padding_side == "right" else T - len(seqs[b]))
                for b, i in enumerate(idx)]  # answer positions of each row, [A]
        rows, use_mask = _answer_log_probs(model, ids, att, pos, [t - 1 for t in tgts], device, use_mask)
        for b, i in enumerate(idx):
            gold = ids[b, tgts[b]].to(device)
            lp = rows[b]  # predictions for the answer tokens, [A, V]
            pred = lp.argmax(-1)
            hit = pred == gold
            nll = (-lp.gather(1, gold[:, None]).squeeze(1)).mean().item()
            scores[i] = ProbeScore(probes[i].id, hit.float().mean().item(), nll, len(tgts[b]), pred.tolist(),
                                   float(hit.all()))
    model.train(was_training)
    return EvalResult.from_scores([s for s in scores if s is not None])
