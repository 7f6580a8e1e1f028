"""Token-weighting methods, registered by name.

A method gives every token of a document a weight in [0, 1] used by the weighted loss
(:mod:`taalm.ckl.loss`). Two kinds:

* **static** methods (``finetune``, ``oracle``, ``random``, ``taalm``) depend only on the
  document. The learner calls :meth:`WeightingMethod.document_weights` once per document and
  caches the result, so later epochs cost exactly what plain fine-tuning costs.
* **dynamic** methods (``rho1``, ``dft``, ``asft``, ``eaft``) depend on the current θ. They get
  the per-token losses of the training forward pass in :meth:`WeightingMethod.step_weights`
  (and its logits when they declare ``needs_logits``), so they add no forward pass of θ;
  whatever does not depend on θ (RHO-1's reference losses) is computed once in
  :meth:`WeightingMethod.prepare`. The learner detaches both before the call (one place:
  :func:`dynamic_weights`), so a weight never carries gradient: w is a stop-gradient, as every
  one of these papers writes it.

A method also declares how a sequence's weighted losses are averaged (``normalization``):
``"weighted"`` (the default: Σ m w ℓ / Σ m w, SPEC 2.1) or ``"tokens"`` (Σ m w ℓ / Σ m, a plain
mean of w·ℓ, as DFT writes it); and it may add a loss term of its own per sequence
(:meth:`WeightingMethod.extra_loss`, which does get θ's logits with their gradient: ASFT's KL
anchor).

Add a method with one file in ``taalm/ckl/weighting/`` (imported by its ``__init__``)::

    @WEIGHTINGS.register("mine")
    class Mine(WeightingMethod):
        def document_weights(self, doc_index, encoded): ...
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, ClassVar

import torch

from ...core.registry import Registry
from ...data import Encoded, Window, collate

if TYPE_CHECKING:  # the schema imports every part: parts never import it at run time
    from ..config import MethodConfig
    from transformers import PreTrainedTokenizerBase

WEIGHTINGS: Registry["WeightingMethod"] = Registry("weighting method", "method.name")


def register_method(name: str) -> Callable[[type], type]:
    """``@register_method("mine")``: the same as ``@WEIGHTINGS.register("mine")``."""
    return WEIGHTINGS.register(name)


def available_methods() -> list[str]:
    return WEIGHTINGS.names()


def describe_methods() -> dict[str, str]:
    """name -> first line of the method's docstring (for ``taalm methods``)."""
    return WEIGHTINGS.describe()


def build_weighting(cfg: MethodConfig, seed: int = 0) -> "WeightingMethod":
    """Instantiate the weighting method named by ``cfg.name`` (the ``method`` section). A
    composed name (``taalm+recadam``) selects its weighting part (:mod:`taalm.ckl.method`).
    :func:`taalm.ckl.method.get_method` also takes a bare name."""
    from ...core.config import check_config

    name = cfg.name.split("+")[0]
    cls = WEIGHTINGS.get(name)
    check_config(cfg, "method.")  # the section's range rules, each part's own included (configs built in code)
    return cls(cfg, seed)


@dataclass
class PrepareContext:
    """What a method may look at before training starts (θ is still θ0 here)."""

    model: torch.nn.Module
    tokenizer: PreTrainedTokenizerBase
    encoded: list[Encoded]  # one per document
    windows: list[Window]
    device: torch.device
    batch_size: int = 8
    documents: list | None = None  # the Documents (texts) behind ``encoded``; needed by ``taalm``
    # fine_tune(epochs): a copy of ``model`` fine-tuned (uniform weights) on the run's documents with
    # the run's train settings; supplied by the learner, so a method never imports the learner
    fine_tune: Callable[[int], torch.nn.Module] | None = None
    log: Callable[[str], None] | None = None  # where a method says what takes a while (loading φ, ...)


class WeightingMethod:
    name: str = ""  # the registered name; an instance may carry its own (PrecomputedWeights: its source's)
    needs_answer: ClassVar[bool] = False  # every document must carry its answer
    dynamic: ClassVar[bool] = False  # weights depend on θ: computed at every step
    needs_logits: ClassVar[bool] = False  # dynamic weights read θ's (detached) logits, not only ℓ
    normalization: ClassVar[str] = "weighted"  # "weighted": Σ m w ℓ / Σ m w;  "tokens": Σ m w ℓ / Σ m

    def __init__(self, cfg: MethodConfig, seed: int = 0):
        self.cfg = cfg
        self.seed = seed

    def keep_loaded(self, device) -> None:
        """Load once what :meth:`prepare` would load on every call (a map over many batches
        calls it again and again: ``taalm.hf``); nothing by default."""

    def preview_note(self) -> str | None:
        """A caveat for weights shown without training (``taalm weights``); None by default."""
        return None

    def provenance(self) -> dict:
        """What the run's config does not pin down by itself, recorded with benchmark results
        (e.g. which trained φ ran, with its checksum); nothing by default."""
        return {}

    def prepare(self, ctx: PrepareContext) -> None:
        """Precompute what does not depend on θ (called once, before the first step)."""

    def document_weights(self, doc_index: int, encoded: Encoded) -> torch.Tensor:
        """Static weights for every token of one document: float32 ``[n_tokens]``."""
        raise NotImplementedError(f"method '{self.name}' has no static weights")

    def step_weights(self, token_losses: torch.Tensor, valid: torch.Tensor,
                     windows: list[Window], logits: torch.Tensor | None = None) -> torch.Tensor:
        """Dynamic weights ``[B, T]`` from the detached per-token losses of θ on the batch (and,
        when ``needs_logits``, its detached logits ``[B, T, V]``; position t-1 predicts x_t)."""
        raise NotImplementedError(f"method '{self.name}' has no dynamic weights")

    def extra_loss(self, model, batch: dict, logits: torch.Tensor, valid: torch.Tensor) -> torch.Tensor | None:
        """A loss term of the method's own, per sequence ``[B]``, added to the weighted loss
        (``logits`` carry θ's gradient here); None (the default) for none."""
        return None


def dynamic_weights(method: WeightingMethod, losses: torch.Tensor, valid: torch.Tensor, windows: list[Window],
                    logits: torch.Tensor | None = None) -> torch.Tensor:
    """``method.step_weights`` on detached inputs: the one place where the training forward's
    per-token losses (and logits) are handed to a dynamic weighting, so that no weight can
    backpropagate into θ. Returned detached as well."""
    return method.step_weights(losses.detach(), valid, windows,
                               logits.detach() if logits is not None and method.needs_logits else None).detach()


def weights_for_documents(method: WeightingMethod, model, tokenizer, documents,
                          max_length: int = 512, stride: int = 64, batch_size: int = 8,
                          log: Callable[[str], None] | None = None):
    """Per-token weights of ``method`` for each document, as θ (``model``) stands now.

    Returns a list of ``(Encoded, weights [n_tokens])``. Dynamic methods are evaluated with one
    forward pass of ``model`` per window (what the first training step would see).
    """
    from ...data import prepare_windows

    encoded, windows = prepare_windows(tokenizer, documents, max_length, stride)
    device = next(model.parameters()).device
    method.prepare(PrepareContext(model, tokenizer, encoded, windows, device, batch_size,
                                  documents=list(documents), log=log))
    if not method.dynamic:
        return [(e, method.document_weights(i, e)) for i, e in enumerate(encoded)]
    out = [torch.zeros(len(e.input_ids)) for e in encoded]
    for item in window_token_losses(model, tokenizer, windows, device, batch_size, with_logits=method.needs_logits):
        chunk, losses, valid = item[:3]
        logits = item[3] if method.needs_logits else None
        for b, w in enumerate(chunk):  # one document window at a time, as it would be trained
            lg = logits[b:b + 1] if logits is not None else None
            wt = dynamic_weights(method, losses[b:b + 1], valid[b:b + 1], [w], lg)[0].cpu()
            keep = torch.tensor(w.loss_mask, dtype=torch.bool)
            seg = out[w.doc_index][w.start:w.start + len(w.input_ids)]
            seg[keep] = wt[:len(w.input_ids)][keep]
    return list(zip(encoded, out))


def window_token_losses(model, tokenizer, windows: list[Window], device, batch_size: int = 8,
                        with_logits: bool = False):
    """Yield ``(windows, losses [B, T], valid [B, T])`` for batches of windows, in eval mode and
    without gradients; ``valid`` = real targets that the window trains (loss_mask).
    ``with_logits``: yield ``(windows, losses, valid, logits [B, T, V])``, logits None otherwise."""
    from ..loss import token_losses

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for i in range(0, len(windows), batch_size):
                chunk = windows[i:i + batch_size]
                batch = collate(chunk, tokenizer.pad_token_id, device)
                logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
                losses, mask = token_losses(logits, batch["input_ids"], batch["attention_mask"])
                valid = mask & batch["loss_mask"].bool()
                if with_logits:
                    yield chunk, losses, valid, logits
                else:
                    yield chunk, losses, valid
    finally:
        model.train(was_training)


def document_token_losses(model, tokenizer, encoded: list[Encoded], device, batch_size: int = 8,
                          max_length: int = 1024, stride: int = 128) -> list[torch.Tensor]:
    """θ's per-token losses ℓ_t of every document, aligned with its tokens (position 0: 0), read
    in windows of ``max_length`` tokens (each token scored once, with ``stride`` tokens of left
    context at least); no gradients. A loss-aware φ reads them at θ0 (``phi.features=loss``)."""
    from ...data import split_windows

    out = [torch.zeros(len(e.input_ids)) for e in encoded]
    windows = [w for i, e in enumerate(encoded) for w in split_windows(i, e.input_ids, max_length, stride)]
    for chunk, losses, valid in window_token_losses(model, tokenizer, windows, device, batch_size):
        for b, w in enumerate(chunk):
            keep = valid[b, :len(w.input_ids)].cpu()
            seg = out[w.doc_index][w.start:w.start + len(w.input_ids)]
            seg[keep] = losses[b, :len(w.input_ids)].float().cpu()[keep]
    return out
