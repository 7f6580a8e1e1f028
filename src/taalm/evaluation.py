"""Probe evaluation (SPEC 2.5): answer-token accuracy and answer NLL, batched.

For one probe: tokenise the full text, locate the answer's tokens (its last occurrence), run one
teacher-forced forward pass, and score

    accuracy = (1/|A|) Σ_{t∈A} [argmax_v p(v | x_<t) = x_t]        nll = (1/|A|) Σ_{t∈A} −log p(x_t | x_<t)

A set's accuracy and NLL are the means over its probes. Batches are padded on the right by
default; left padding gives the same numbers because we pass explicit ``position_ids`` (the
count of real tokens before each position), so a token's position never depends on padding.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch

from .data import Encoded, Probe, encode_probe


@dataclass
class ProbeScore:
    id: str
    accuracy: float
    nll: float
    n_answer_tokens: int


@dataclass
class EvalResult:
    accuracy: float
    nll: float
    n: int
    per_probe: list[ProbeScore] = field(default_factory=list)

    def summary(self) -> dict:
        return {"accuracy": self.accuracy, "nll": self.nll, "n": self.n}

    def to_dict(self) -> dict:
        return {**self.summary(), "per_probe": [asdict(p) for p in self.per_probe]}


def encode_probes(tokenizer, probes: list[Probe]) -> list[Encoded]:
    """Tokenise probes once (the learner evaluates the same probes after every epoch)."""
    return [encode_probe(tokenizer, p) for p in probes]


def pad_batch(seqs: list[list[int]], pad_id: int, side: str = "right"):
    """``[B, T]`` input_ids, attention_mask and position_ids for right or left padding."""
    if side not in ("right", "left"):
        raise ValueError(f"padding side must be 'right' or 'left', got {side!r}")
    T = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), T), pad_id, dtype=torch.long)
    att = torch.zeros(len(seqs), T, dtype=torch.long)
    for b, s in enumerate(seqs):
        sl = slice(0, len(s)) if side == "right" else slice(T - len(s), T)
        ids[b, sl] = torch.tensor(s, dtype=torch.long)
        att[b, sl] = 1
    pos = (att.cumsum(dim=1) - 1).clamp_min(0)
    return ids, att, pos


@torch.no_grad()
def evaluate_probes(model, tokenizer, probes: list[Probe], batch_size: int = 16,
                    padding_side: str = "right", encoded: list[Encoded] | None = None,
                    progress: bool = False, desc: str = "eval") -> EvalResult:
    """Answer-token accuracy and NLL of ``model`` on ``probes`` (see the module docstring)."""
    if encoded is None:
        encoded = encode_probes(tokenizer, probes)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    # longest first: less padding per batch; results are put back in the probes' order
    order = sorted(range(len(probes)), key=lambda i: -len(encoded[i].input_ids))
    scores: list[ProbeScore | None] = [None] * len(probes)
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc=desc, leave=False, unit="batch")
    for idx in batches:
        seqs = [encoded[i].input_ids for i in idx]
        ids, att, pos = pad_batch(seqs, tokenizer.pad_token_id, padding_side)
        logits = model(input_ids=ids.to(device), attention_mask=att.to(device),
                       position_ids=pos.to(device)).logits
        logp = torch.log_softmax(logits.float(), dim=-1)  # [B, T, V]
        T = ids.shape[1]
        for b, i in enumerate(idx):
            shift = 0 if padding_side == "right" else T - len(seqs[b])
            tgt = torch.tensor(encoded[i].span, device=device) + shift  # answer positions, [A]
            gold = ids[b].to(device)[tgt]
            lp = logp[b, tgt - 1]  # predictions for the answer tokens, [A, V]
            acc = (lp.argmax(-1) == gold).float().mean().item()
            nll = (-lp.gather(1, gold[:, None]).squeeze(1)).mean().item()
            scores[i] = ProbeScore(probes[i].id, acc, nll, len(tgt))
    model.train(was_training)
    n = len(probes)
    return EvalResult(sum(s.accuracy for s in scores) / n, sum(s.nll for s in scores) / n, n, scores)
