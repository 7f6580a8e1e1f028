"""Validation of φ during meta-training: θ0 learns held-out documents with φ's weights.

For a held-out split, θ0 (a fresh LoRA) learns the documents with φ's token weights for
``val.epochs`` epochs through the ordinary CKL learner and the ordinary evaluator scores the
answers of their tasks (:func:`validate`); uniform (finetune) and oracle weights give the scale
once (:func:`validation_references`); named splits (real and invented facts) are averaged
(:func:`merge_splits`), and the best φ is the one with the highest mean.
"""

from __future__ import annotations


import copy
import gc
import time
from typing import TYPE_CHECKING, Callable

import torch

from ..core.config import DataConfig, EvalConfig, LoraConfig
from .config import MetaTrainConfig
from ..ckl.config import LearnConfig, ThetaConfig, TrainConfig
from ..data import Pair, encode

if TYPE_CHECKING:

    pass


def validate(phi, base_model, tokenizer, val_pairs: list[Pair], cfg: MetaTrainConfig,
             weights: list[torch.Tensor] | None = None, label: str = "phi") -> dict:
    """θ0 (a fresh LoRA on ``base_model``) learns the held-out documents with φ's weights (or the
    given ``weights``) for ``val.epochs`` epochs; returns the tasks' answer accuracy and NLL."""
    from ..data import encode_document
    from ..ckl.learner import LearnOptions, learn
    from ..ckl.weighting import PrecomputedWeights

    docs = [p.document for p in val_pairs]
    probes = [p.task for p in val_pairs]
    enc = [encode_document(tokenizer, d) if d.answer is not None else encode(tokenizer, d.text) for d in docs]
    if weights is None:
        losses = None
        if phi.loss_aware:
            from ..ckl.weighting import document_token_losses

            losses = document_token_losses(base_model, tokenizer, enc, next(base_model.parameters()).device,
                                           cfg.val.batch_size)
        weights = phi.token_weights([d.text for d in docs], enc, batch_size=cfg.val.batch_size, losses=losses)
    theta = ThetaConfig(mode="lora")
    theta.lora = LoraConfig(r=cfg.theta.r, alpha=int(cfg.theta.alpha))
    lc = LearnConfig(model=copy.deepcopy(cfg.model), theta=theta,
                     train=TrainConfig(epochs=cfg.val.epochs, lr=cfg.val.lr, batch_size=cfg.val.batch_size,
                                       max_length=val_window(cfg.max_doc_tokens),
                                       stride=val_stride(cfg.max_doc_tokens), seed=cfg.seed,
                                       known_masking=cfg.val.known_masking),
                     eval=EvalConfig(batch_size=16), data=DataConfig(kept="none"))
    res = learn(docs, probes, lc, None, model=copy.deepcopy(base_model), tokenizer=tokenizer,
                options=LearnOptions(progress=False, log=lambda m: None, method=PrecomputedWeights(weights, label)))
    before, after = res.history[0], res.history[-1]
    del res
    gc.collect()  # the validation copy of θ (peft wraps it in reference cycles) goes now, not later
    return {"accuracy": after["accuracy"], "nll": after["nll"], "accuracy_before": before["accuracy"],
            "nll_before": before["nll"], "n": len(val_pairs)}


def val_window(max_doc_tokens: int) -> int:
    """Window length (θ tokens) of the validation learner: the meta-training document length."""
    return max(8, max_doc_tokens)


def val_stride(max_doc_tokens: int) -> int:
    """Context shared by consecutive validation windows: the learner's default 64, but always
    less than the window (a 64-token window with stride 64 would never advance)."""
    return min(TrainConfig.stride, val_window(max_doc_tokens) // 2)


def reference_weights(tokenizer, pairs: list[Pair], name: str) -> list[torch.Tensor]:
    """A static weighting method's weights of the pairs' documents, e.g. ``finetune`` (uniform) or
    ``oracle`` (1 on the answer's tokens): the references validation compares φ with."""
    from ..ckl.method import get_method
    from ..ckl.config import MethodConfig
    from ..data import encode_document

    weighting = get_method(MethodConfig(name=name))
    ws = []
    for i, p in enumerate(pairs):
        d = p.document
        e = encode_document(tokenizer, d) if d.answer is not None else encode(tokenizer, d.text)
        ws.append(weighting.document_weights(i, e))
    return ws


def merge_splits(results: dict[str, dict]) -> dict:
    """One validation row from per-split results. One split: its result as it is. Several: the
    selection rule stated before any run, **the mean of the splits' answer accuracies** (each
    split counts the same whatever its size), the same mean for the NLLs, and every split's
    result under ``splits``."""
    if len(results) == 1:
        return dict(next(iter(results.values())))
    mean = lambda k: sum(r[k] for r in results.values()) / len(results)  # noqa: E731
    return {"accuracy": mean("accuracy"), "nll": mean("nll"), "accuracy_before": mean("accuracy_before"),
            "nll_before": mean("nll_before"), "n": sum(r["n"] for r in results.values()),
            "select": "mean of the splits' accuracies", "splits": results}


def validate_splits(phi, base_model, tokenizer, splits: dict[str, list[Pair]], cfg: MetaTrainConfig,
                    reference: str | None = None) -> dict:
    """:func:`validate` on every validation split (φ's weights, or a ``reference`` weighting:
    ``finetune`` | ``oracle``), merged by :func:`merge_splits`."""
    out = {}
    for name, pairs in splits.items():
        ws = reference_weights(tokenizer, pairs, reference) if reference else None
        out[name] = validate(phi, base_model, tokenizer, pairs, cfg, weights=ws, label=reference or "phi")
    return merge_splits(out)


def validation_references(base_model, tokenizer, val_pairs, cfg: MetaTrainConfig,
                          log: Callable[[str], None] = print) -> dict:
    """The validation with uniform weights (= finetune) and with oracle weights (1 on the
    answer's tokens in the document): where φ stands between the two. ``val_pairs``: a list, or
    named splits."""
    splits = val_pairs if isinstance(val_pairs, dict) else {"val": val_pairs}
    references = {}
    for name in ("finetune", "oracle"):
        t0 = time.time()
        references[name] = {**validate_splits(None, base_model, tokenizer, splits, cfg, reference=name),
                            "seconds": round(time.time() - t0, 1)}
        log(f"validation reference '{name}': answer accuracy {references[name]['accuracy']:.3f}"
            + split_text(references[name]))
    return references


def split_text(row: dict) -> str:
    """`` (a 0.300, b 0.200)`` for a row of several splits, else ``""``."""
    if "splits" not in row:
        return ""
    return " (" + ", ".join(f"{n} {r['accuracy']:.3f}" for n, r in row["splits"].items()) + ")"
