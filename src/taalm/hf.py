"""Token weights inside Hugging Face ``Trainer`` and TRL's ``SFTTrainer``.

Three pieces, for people whose training loop is already a Trainer:

* :func:`token_weights_fn` builds a function for ``datasets.Dataset.map(batched=True)`` that
  tokenises each row's text and adds ``token_weights`` aligned with ``input_ids``, from any
  registered static weighting method (φ included: it scores each document once, here, not at
  every epoch).
* :class:`TokenWeightCollator` pads ``input_ids``, ``attention_mask``, ``labels`` (-100 on pads)
  and ``token_weights`` (0 on pads).
* :class:`TokenWeightedLossMixin` computes the token-weighted loss in ``compute_loss``: put it
  first in the bases, ``class MyTrainer(TokenWeightedLossMixin, Trainer)`` (or ``SFTTrainer``).

Facts this module honours (transformers 5.24, TRL 1.16):

* ``Trainer(compute_loss_func=...)`` receives ``(outputs, labels, num_items_in_batch)`` and never
  the batch's other keys, so the weights cannot reach it; and TRL 1.16 deprecates
  ``compute_loss_func`` in favour of overriding ``compute_loss``. Hence a mixin.
* ``remove_unused_columns`` (on by default) drops dataset columns the model's forward does not
  name: the mixin adds ``token_weights`` to the kept columns.
* Trainer does not divide a loss by the accumulation steps when it says it is already scaled
  (``loss_is_scaled_for_ga``); the mixin normalises over the whole accumulated step itself,
  counted from the step's batches before the first forward (``get_batch_samples``).

Normalisation (``taalm_normalize``):

* ``"sequence"`` (default, taalm's learner and the paper): each sequence's loss is
  Σ_t m w ℓ / Σ_t m w, and the step's loss is their sum over the sequences of the whole
  accumulated step that carry weight, divided by their count. A step here equals
  ``taalm.learn``'s step on the same sequences.
* ``"token"``: Σ m w ℓ / Σ m w over every token of the accumulated step; with all-ones weights
  this is exactly the plain Trainer's causal-LM loss (a token mean over the accumulated step).

``m`` is a target that is a real token after a real token (taalm's mask) and, when the batch has
``labels``, not -100 there (a completion-only mask is honoured). Across processes the counts are
summed over the ranks and the loss multiplied by their number (DDP averages gradients).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from .ckl.loss import per_sequence_weighted_loss, target_mask, token_losses
from .core.errors import TaalmError

NORMALIZATIONS = ("sequence", "token")


def token_weights_fn(tokenizer, method="taalm", *, fields: tuple[str, str] = ("text", "answer"),
                     max_length: int | None = None, overrides: Sequence[str] = (), model=None,
                     device: str | None = None, batch_size: int = 8) -> Callable[[dict], dict]:
    """A ``datasets.map(batched=True)`` function: rows with a text column (and an answer column
    for the oracle; ``fields`` names both) -> ``input_ids``, ``attention_mask``, ``token_weights`` (truncated to
    ``max_length`` if given). ``method``: a registered weighting name (``overrides``: its config
    keys, e.g. ``method.taalm.checkpoint=PHI``) or a :class:`~taalm.ckl.weighting.WeightingMethod`.
    Static rules work here (``stm`` reads θ0's losses once: pass ``model``). Methods whose weights
    come from θ's forward at every step (``rho1``, ``dft``, ``asft``, ``eaft``) are refused with a
    line that says so: a dataset column cannot hold them (TRL has ``loss_type="dft"`` itself)."""
    from .ckl.weighting import WeightingMethod
    from .ckl.method import get_method
    from .core.config import load_config
    from .ckl.config import LearnConfig
    from .core.devices import resolve_device

    if isinstance(method, WeightingMethod):
        weighting = method
    else:
        cfg = load_config(LearnConfig, None, [f"method.name={method}", *overrides])
        weighting = get_method(cfg.method, cfg.train.seed)
    if weighting.dynamic:  # rho1, dft, asft, eaft: the weights exist only inside each training forward
        raise TaalmError(f"method '{weighting.name}' weighs tokens from θ's own forward at every step, so it has no "
                         "weights to store in a dataset; use a static method here (finetune, oracle, salient, stm, "
                         "taalm, ...), TRL's own loss_type='dft' for DFT, or taalm learn for all of them")
    dev = resolve_device(device or "auto")
    weighting.keep_loaded(dev)  # e.g. φ: loaded once for every batch the map sees

    def add_token_weights(batch: dict) -> dict:
        docs = _documents(batch, fields[0], fields[1], weighting.needs_answer)
        enc, weights = _weights(weighting, tokenizer, docs, model, dev, batch_size)
        cut = slice(None, max_length)
        return {"input_ids": [e.input_ids[cut] for e in enc],
                "attention_mask": [[1] * len(e.input_ids[cut]) for e in enc],
                "token_weights": [w[cut].tolist() for w in weights]}

    return add_token_weights


def _documents(batch: dict, text_field: str, answer_field: str, needs_answer: bool) -> list:
    from .data import Document, find_answer

    if text_field not in batch:
        raise TaalmError(f"the dataset has no '{text_field}' column (columns: {', '.join(batch)}); "
                         "pass fields=(TEXT_COLUMN, ANSWER_COLUMN)")
    answers = batch.get(answer_field) or [None] * len(batch[text_field])
    if needs_answer and any(a is None for a in answers):
        raise TaalmError(f"this weighting method needs each row's answer in the '{answer_field}' column")
    docs = []
    for i, (text, answer) in enumerate(zip(batch[text_field], answers)):
        start = find_answer(text, answer) if answer else None
        if needs_answer and (start is None or start < 0):  # the oracle would weigh nothing in this row
            raise TaalmError(f"row {i} of the batch: the answer {str(answer)[:60]!r} does not occur in its "
                             f"'{text_field}'; its answer weights would all be 0")
        docs.append(Document(text, answer if start is not None and start >= 0 else None, "", "",
                             start if start is not None and start >= 0 else None))
    return docs


def _weights(weighting, tokenizer, docs, model, device, batch_size):
    from .ckl.weighting import PrepareContext
    from .data import encode_document

    enc = [encode_document(tokenizer, d) for d in docs]
    weighting.prepare(PrepareContext(model, tokenizer, enc, [], device, batch_size, documents=docs))
    return enc, [weighting.document_weights(i, e) for i, e in enumerate(enc)]


class TokenWeightCollator:
    """Pads a list of features (``input_ids``, optional ``attention_mask``, ``token_weights``,
    ``labels``) on the right into ``[B, T]`` tensors; ``labels`` default to ``input_ids`` with
    -100 on pads; ``token_weights`` pad with 0 (and default to ones)."""

    def __init__(self, tokenizer, pad_to_multiple_of: int | None = None):
        if tokenizer.pad_token_id is None:
            raise TaalmError("the tokenizer has no pad token: set tokenizer.pad_token (e.g. to its EOS token)")
        self.pad_id, self.multiple = tokenizer.pad_token_id, pad_to_multiple_of

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        T = max(len(f["input_ids"]) for f in features)
        if self.multiple:
            T = -(-T // self.multiple) * self.multiple
        B = len(features)
        out = {"input_ids": torch.full((B, T), self.pad_id, dtype=torch.long),
               "attention_mask": torch.zeros(B, T, dtype=torch.long),
               "labels": torch.full((B, T), -100, dtype=torch.long),
               "token_weights": torch.zeros(B, T, dtype=torch.float32)}
        for b, f in enumerate(features):
            n = len(f["input_ids"])
            _check_feature_weights(f, n, b)
            out["input_ids"][b, :n] = torch.as_tensor(f["input_ids"])
            out["attention_mask"][b, :n] = torch.as_tensor(f.get("attention_mask", [1] * n))
            out["labels"][b, :n] = torch.as_tensor(f.get("labels", f["input_ids"]))
            out["token_weights"][b, :n] = torch.as_tensor(f.get("token_weights", [1.0] * n), dtype=torch.float32)
        return out


def _check_feature_weights(feature: dict, n: int, b: int) -> None:
    """A feature's ``token_weights``: one finite, non-negative number per input id."""
    w = feature.get("token_weights")
    if w is None:
        return
    t = torch.as_tensor(w, dtype=torch.float64)
    if t.dim() != 1 or t.numel() != n:
        raise TaalmError(f"feature {b}: {t.numel()} token_weights for {n} input_ids (one weight per token)")
    if not torch.isfinite(t).all() or (t < 0).any():
        raise TaalmError(f"feature {b}: token_weights must be finite and >= 0 (got {t.min().item():g} .. {t.max().item():g})")


def _target(inputs: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(m ``[B, T]`` bool, w ``[B, T]``) of a collated batch (see the module docstring)."""
    ids, att = inputs["input_ids"], inputs.get("attention_mask")
    m = target_mask(att, ids)
    if inputs.get("labels") is not None:
        m = m & inputs["labels"].ne(-100)
    w = inputs.get("token_weights")
    if w is not None and (w.shape != ids.shape or not torch.isfinite(w).all() or (w < 0).any()):
        raise TaalmError(f"token_weights must be finite, >= 0 and shaped like input_ids {tuple(ids.shape)} "
                         f"(got shape {tuple(w.shape)})")
    return m, (torch.ones(ids.shape, device=ids.device) if w is None else w)


def step_normaliser(batches: list[dict], normalize: str) -> torch.Tensor:
    """The accumulated step's denominator: sequences carrying weight, or the weight mass."""
    total = torch.zeros((), dtype=torch.float64)
    for batch in batches:
        m, w = _target(batch)
        carried = (m * w).sum(dim=1).double().cpu()  # [B]
        total += (carried > 0).sum() if normalize == "sequence" else carried.sum()
    return total


class TokenWeightedLossMixin:
    """``compute_loss`` with taalm's token-weighted loss, for ``transformers.Trainer`` and TRL's
    ``SFTTrainer`` (put the mixin first among the bases). See the module docstring."""

    taalm_normalize: str = "sequence"
    loss_is_scaled_for_ga = True  # normalised over the whole accumulated step here: Trainer must not divide
    _taalm_denominator: torch.Tensor | None = None

    def _set_signature_columns_if_needed(self):  # keep token_weights through remove_unused_columns
        super()._set_signature_columns_if_needed()
        for col in ("token_weights", "attention_mask", "labels"):
            if self._signature_columns is not None and col not in self._signature_columns:
                self._signature_columns.append(col)

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        batches, num_items = super().get_batch_samples(epoch_iterator, num_batches, device)
        if self.taalm_normalize not in NORMALIZATIONS:
            raise TaalmError(f"taalm_normalize={self.taalm_normalize!r}: use one of {', '.join(NORMALIZATIONS)}")
        denom = step_normaliser(batches, self.taalm_normalize).to(device)
        if self.accelerator.num_processes > 1:
            denom = self.accelerator.gather(denom.reshape(1)).sum()
        self._taalm_denominator = denom
        return batches, num_items

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        m, w = _target(inputs)
        fwd = {k: v for k, v in inputs.items() if k not in ("labels", "token_weights")}
        outputs = model(**fwd)
        losses, _ = token_losses(outputs.logits, inputs["input_ids"], inputs.get("attention_mask"))  # [B, T]
        if self.taalm_normalize == "sequence":
            per_seq, _ = per_sequence_weighted_loss(losses, m, w)  # [B]
            num, local = per_seq.sum(), ((m * w).sum(dim=1) > 0).sum()
        else:
            num, local = (losses * m * w).sum(), (m * w).sum()
        denom = self._taalm_denominator if model.training and self._taalm_denominator is not None else None
        if denom is None:  # evaluation (or a call outside the training loop): this batch alone
            loss = num / local.clamp_min(1e-8)
        else:
            loss = num / denom.to(num.dtype).clamp_min(1e-8) * self.accelerator.num_processes
        return (loss, outputs) if return_outputs else loss


_CLASSES: dict[str, type] = {}


def __getattr__(name: str):
    """``TokenWeightedTrainer`` / ``TokenWeightedSFTTrainer``: the mixin on Trainer / SFTTrainer
    (built once, on first use; the second needs TRL: pip install 'taalm[trl]')."""
    if name not in ("TokenWeightedTrainer", "TokenWeightedSFTTrainer"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name not in _CLASSES:
        if name == "TokenWeightedTrainer":
            from transformers import Trainer as base
        else:
            try:
                from trl import SFTTrainer as base
            except ImportError:
                raise TaalmError("TokenWeightedSFTTrainer needs TRL: pip install 'taalm[trl]'") from None
        _CLASSES[name] = type(name, (TokenWeightedLossMixin, base), {"__module__": __name__})
    return _CLASSES[name]


__all__ = ["token_weights_fn", "TokenWeightCollator", "TokenWeightedLossMixin", "step_normaliser", "NORMALIZATIONS"]
