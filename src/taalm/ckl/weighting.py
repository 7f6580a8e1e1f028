"""Token-weighting methods, registered by name.

A method gives every token of a document a weight in [0, 1] used by the weighted loss
(:mod:`taalm.loss`). Two kinds:

* **static** methods (``finetune``, ``oracle``, ``random``, ``taalm``) depend only on the
  document. The learner calls :meth:`WeightingMethod.document_weights` once per document and
  caches the result, so later epochs cost exactly what plain fine-tuning costs.
* **dynamic** methods (``rho1``) depend on the current θ. They get the per-token losses of the
  training forward pass (detached) in :meth:`WeightingMethod.step_weights`, so they add no
  forward pass of θ; whatever does not depend on θ (RHO-1's reference losses) is computed once
  in :meth:`WeightingMethod.prepare`.

Add a method with::

    @register_method("mine")
    class Mine(WeightingMethod):
        def document_weights(self, doc_index, encoded): ...
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable, ClassVar

import torch

from ..core.config import MethodConfig
from ..data import Encoded, Window, collate
from ..core.errors import ConfigError

_REGISTRY: dict[str, type["WeightingMethod"]] = {}


def register_method(name: str) -> Callable[[type], type]:
    def deco(cls):
        if name in _REGISTRY:
            raise ValueError(f"method '{name}' is already registered")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def available_methods() -> list[str]:
    return sorted(_REGISTRY)


def describe_methods() -> dict[str, str]:
    """name -> first line of the method's docstring (for ``taalm methods``)."""
    return {n: (_REGISTRY[n].__doc__ or "").strip().splitlines()[0] for n in available_methods()}


def get_method(cfg: MethodConfig | str, seed: int = 0) -> "WeightingMethod":
    """Instantiate the method named by ``cfg.name`` (or a bare name with default options)."""
    if isinstance(cfg, str):
        cfg = MethodConfig(name=cfg)
    if cfg.name not in _REGISTRY:
        raise ConfigError(f"unknown method '{cfg.name}' (available: {', '.join(available_methods())})")
    return _REGISTRY[cfg.name](cfg, seed)


@dataclass
class PrepareContext:
    """What a method may look at before training starts (θ is still θ0 here)."""

    model: torch.nn.Module
    tokenizer: object
    encoded: list[Encoded]  # one per document
    windows: list[Window]
    device: torch.device
    batch_size: int = 8
    documents: list | None = None  # the Documents (texts) behind ``encoded``; needed by ``taalm``


class WeightingMethod:
    name: ClassVar[str] = ""
    needs_answer: ClassVar[bool] = False  # every document must carry its answer
    dynamic: ClassVar[bool] = False  # weights depend on θ: computed at every step

    def __init__(self, cfg: MethodConfig, seed: int = 0):
        self.cfg = cfg
        self.seed = seed

    def prepare(self, ctx: PrepareContext) -> None:
        """Precompute what does not depend on θ (called once, before the first step)."""

    def document_weights(self, doc_index: int, encoded: Encoded) -> torch.Tensor:
        """Static weights for every token of one document: float32 ``[n_tokens]``."""
        raise NotImplementedError(f"method '{self.name}' has no static weights")

    def step_weights(self, token_losses: torch.Tensor, valid: torch.Tensor,
                     windows: list[Window]) -> torch.Tensor:
        """Dynamic weights ``[B, T]`` from the detached per-token losses of θ on the batch."""
        raise NotImplementedError(f"method '{self.name}' has no dynamic weights")


@register_method("finetune")
class Finetune(WeightingMethod):
    """Uniform weights: plain fine-tuning."""

    def document_weights(self, doc_index, encoded):
        return torch.ones(len(encoded.input_ids))


@register_method("oracle")
class Oracle(WeightingMethod):
    """Weight 1 on the answer tokens (the answer's last occurrence in the document), 0 elsewhere.
    An upper reference that needs the answer; not a method a user can deploy."""

    needs_answer = True

    def document_weights(self, doc_index, encoded):
        w = torch.zeros(len(encoded.input_ids))
        w[encoded.span] = 1.0
        return w


@register_method("random")
class RandomWeights(WeightingMethod):
    """Random weights ~ Beta(2m, 2(1-m)) (mean m), seeded per (seed, document): a control."""

    def document_weights(self, doc_index, encoded):
        import numpy as np

        m = self.cfg.random.mean
        if not 0.0 < m < 1.0:
            raise ConfigError(f"method.random.mean must be in (0, 1), got {m}")
        rng = np.random.default_rng([self.seed, doc_index])
        return torch.from_numpy(rng.beta(2 * m, 2 * (1 - m), len(encoded.input_ids))).float()


@register_method("taalm")
class TaalmWeights(WeightingMethod):
    """Train-Attention: a trained φ (method.taalm.checkpoint) weighs every token, once per document.

    φ is loaded in :meth:`prepare`, scores every document once for θ's tokenization (mapped
    through character offsets when φ's tokenizer differs), and is freed before training; the
    cached weights make later epochs cost what plain fine-tuning costs.
    """

    def __init__(self, cfg, seed=0):
        super().__init__(cfg, seed)
        from ..models.train_attention import resolve_phi_checkpoint

        if cfg.taalm.batch_size < 1:
            raise ConfigError("method.taalm.batch_size must be >= 1", "method.taalm.batch_size")
        self.checkpoint = resolve_phi_checkpoint(cfg.taalm.checkpoint)  # fails before any run starts
        self.cached: list[torch.Tensor] | None = None

    def prepare(self, ctx: PrepareContext) -> None:
        from ..models.train_attention import TrainAttention

        if ctx.documents is None or len(ctx.documents) != len(ctx.encoded):
            raise ConfigError("method 'taalm' needs the documents' texts (PrepareContext.documents)")
        phi = TrainAttention.from_pretrained(self.checkpoint, device=str(ctx.device))
        try:
            self.cached = phi.token_weights([d.text for d in ctx.documents], ctx.encoded,
                                            self.cfg.taalm.batch_size)
        finally:
            del phi  # φ is not needed once every document has its weights
            if ctx.device.type == "cuda":
                torch.cuda.empty_cache()

    def document_weights(self, doc_index, encoded):
        if self.cached is None:
            raise RuntimeError("method 'taalm': prepare() must run before document_weights()")
        return self.cached[doc_index]


# Function words that start sentences with a capital letter but carry no fact.
_CAPITALISED_FUNCTION_WORDS = frozenset(
    "A An The This That These Those It Its He She His Her They Their Them We Our I In On At Of "
    "For From By With As To And But Or If When While After Before During Since Until There Here "
    "Then Also However Although Because Following According".split())
_WORD = re.compile(r"[^\W_]+(?:['’.-][^\W_]+)*")


def salient_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the words the ``salient`` rule keeps: words that start with an
    upper-case letter (minus capitalised function words) and words that contain a digit."""
    spans = []
    for m in _WORD.finditer(text):
        word = m.group()
        if any(c.isdigit() for c in word) or (word[0].isupper() and word not in _CAPITALISED_FUNCTION_WORDS):
            spans.append(m.span())
    return spans


def span_token_mask(offsets: list[tuple[int, int]], spans: list[tuple[int, int]]) -> torch.Tensor:
    """Bool ``[n_tokens]``: the token's characters overlap one of ``spans`` (offsets from a fast
    tokenizer; tokens without characters, e.g. BOS, are never inside)."""
    out = torch.zeros(len(offsets), dtype=torch.bool)
    for i, (s, e) in enumerate(offsets):
        if e > s and any(s < b and e > a for a, b in spans):
            out[i] = True
    return out


@register_method("salient")
class SalientWeights(WeightingMethod):
    """A fixed rule: weight ``high`` on tokens of capitalised words and numbers, ``low`` elsewhere.

    Why this rule: a fact in an encyclopaedic sentence is mostly carried by its named entities
    (people, places, organisations, works: capitalised) and by numbers (dates, counts), while
    function words and the surrounding phrasing are what the model already predicts. It needs
    neither the answer (unlike ``oracle``) nor meta-training (unlike ``taalm``), so it is the
    control that tells whether a learned φ beats a rule anyone could write. Its blind spot is
    lower-case objects (occupations, genres, instruments), which only a learned φ can find.
    Capitalised function words that merely open a sentence ("The", "In", "He", ...) stay low.
    """

    def __init__(self, cfg, seed=0):
        super().__init__(cfg, seed)
        sc = cfg.salient
        if not (0.0 <= sc.low <= 1.0 and 0.0 < sc.high <= 1.0 and sc.low <= sc.high):
            raise ConfigError(f"method.salient needs 0 <= low <= high <= 1 and high > 0, "
                              f"got low={sc.low}, high={sc.high}", "method.salient")
        self.texts: list[str] | None = None

    def prepare(self, ctx: PrepareContext) -> None:
        if ctx.documents is None or len(ctx.documents) != len(ctx.encoded):
            raise ConfigError("method 'salient' needs the documents' texts (PrepareContext.documents)")
        self.texts = [d.text for d in ctx.documents]

    def document_weights(self, doc_index, encoded):
        if self.texts is None:
            raise RuntimeError("method 'salient': prepare() must run before document_weights()")
        keep = span_token_mask(encoded.offsets, salient_spans(self.texts[doc_index]))
        sc = self.cfg.salient
        return torch.where(keep, torch.tensor(sc.high), torch.tensor(sc.low)).float()


class PrecomputedWeights(WeightingMethod):
    """Weights given in advance, one tensor per document (e.g. from a φ in memory).

    Not registered by name: pass an instance as ``learn(..., method=PrecomputedWeights(ws))``.
    Meta-training uses it to validate φ without writing a checkpoint.
    """

    name = "precomputed"

    def __init__(self, weights: list[torch.Tensor], label: str = "precomputed"):
        super().__init__(MethodConfig(name=label), 0)
        self.weights = [w.detach().float().cpu() for w in weights]

    def document_weights(self, doc_index, encoded):
        w = self.weights[doc_index]
        if len(w) != len(encoded.input_ids):
            raise ValueError(f"document {doc_index}: {len(w)} weights for {len(encoded.input_ids)} tokens")
        return w


def select_top_fraction(scores: torch.Tensor, valid: torch.Tensor, ratio: float) -> torch.Tensor:
    """0/1 mask of the top ``ratio`` of the valid positions by score (over the whole batch).

    k = max(1, round(ratio * n_valid)) positions are kept; ties are broken by position.
    scores, valid: [B, T]. Returns float [B, T].
    """
    out = torch.zeros(scores.shape, dtype=torch.float32, device=scores.device)
    n_valid = int(valid.sum())
    if n_valid == 0:
        return out
    k = min(n_valid, max(1, round(ratio * n_valid)))
    flat = scores.detach().float().masked_fill(~valid.bool(), -math.inf).flatten()
    # stable descending sort: equal scores keep position order (topk's tie order is unspecified)
    order = torch.sort(flat, descending=True, stable=True).indices[:k]
    out.view(-1)[order] = 1.0
    return out


@register_method("rho1")
class Rho1(WeightingMethod):
    """RHO-1 selective language modelling: score each token by its excess loss
    ℓ_t(θ) − ℓ_t(θ_ref) and train only on the top ``ratio`` of tokens in the batch.

    θ_ref is the frozen starting model (default) or ``method.rho1.reference``. The reference
    losses are computed once per training window; θ's losses come from the training forward.
    (The public release builds its mask from ``argsort`` positions instead of ranks and so keeps
    the wrong tokens; :func:`select_top_fraction` selects by rank and is tested.)
    """

    dynamic = True

    def __init__(self, cfg, seed=0):
        super().__init__(cfg, seed)
        if not 0.0 < cfg.rho1.ratio <= 1.0:
            raise ConfigError(f"method.rho1.ratio must be in (0, 1], got {cfg.rho1.ratio}")
        self.ref_losses: dict[tuple[int, int], torch.Tensor] = {}

    def prepare(self, ctx: PrepareContext) -> None:
        model = ctx.model
        if self.cfg.rho1.reference:
            from ..models.loading import load_model

            model = load_model(self.cfg.rho1.reference, device=str(ctx.device), with_tokenizer=False)
            if model.get_input_embeddings().num_embeddings < len(ctx.tokenizer):
                raise ConfigError("method.rho1.reference must share the base model's tokenizer")
        for chunk, losses, _ in window_token_losses(model, ctx.tokenizer, ctx.windows, ctx.device,
                                                     ctx.batch_size):
            for w, row in zip(chunk, losses):
                self.ref_losses[(w.doc_index, w.start)] = row[:len(w.input_ids)].float().cpu()

    def step_weights(self, token_losses, valid, windows):
        ref = torch.zeros_like(token_losses, dtype=torch.float32)
        for b, w in enumerate(windows):
            r = self.ref_losses[(w.doc_index, w.start)]
            ref[b, :len(r)] = r.to(ref.device)
        excess = token_losses.detach().float() - ref
        return select_top_fraction(excess, valid, self.cfg.rho1.ratio)


def weights_for_documents(method: WeightingMethod, model, tokenizer, documents,
                          max_length: int = 512, stride: int = 64, batch_size: int = 8):
    """Per-token weights of ``method`` for each document, as θ (``model``) stands now.

    Returns a list of ``(Encoded, weights [n_tokens])``. Dynamic methods are evaluated with one
    forward pass of ``model`` per window (what the first training step would see).
    """
    from ..data import prepare_windows

    encoded, windows = prepare_windows(tokenizer, documents, max_length, stride)
    device = next(model.parameters()).device
    method.prepare(PrepareContext(model, tokenizer, encoded, windows, device, batch_size,
                                  documents=list(documents)))
    if not method.dynamic:
        return [(e, method.document_weights(i, e)) for i, e in enumerate(encoded)]
    out = [torch.zeros(len(e.input_ids)) for e in encoded]
    for chunk, losses, valid in window_token_losses(model, tokenizer, windows, device, batch_size):
        for b, w in enumerate(chunk):  # one document window at a time, as it would be trained
            wt = method.step_weights(losses[b:b + 1], valid[b:b + 1], [w])[0].cpu()
            keep = torch.tensor(w.loss_mask, dtype=torch.bool)
            seg = out[w.doc_index][w.start:w.start + len(w.input_ids)]
            seg[keep] = wt[:len(w.input_ids)][keep]
    return list(zip(encoded, out))


def window_token_losses(model, tokenizer, windows: list[Window], device, batch_size: int = 8):
    """Yield ``(windows, losses [B, T], valid [B, T])`` for batches of windows, in eval mode and
    without gradients; ``valid`` = real targets that the window trains (loss_mask)."""
    from .loss import token_losses

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for i in range(0, len(windows), batch_size):
                chunk = windows[i:i + batch_size]
                batch = collate(chunk, tokenizer.pad_token_id, device)
                logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
                losses, mask = token_losses(logits, batch["input_ids"], batch["attention_mask"])
                yield chunk, losses, mask & batch["loss_mask"].bool()
    finally:
        model.train(was_training)
