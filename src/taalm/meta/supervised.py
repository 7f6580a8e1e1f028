"""A cheap supervised start for Train-Attention φ (``taalm train-attention --supervised``).

Meta-training (:mod:`taalm.meta.training`) is expensive: every pair costs an inner update of θ
and a directional derivative. Most of what a useful φ must learn first is simple: in a document
that states a fact, the tokens that carry the fact's answer matter most. The oracle weighting
(1 on the answer's tokens, 0 elsewhere) is the upper reference of every validation. So φ's head
and LoRA first learn to *predict* the answer span of the pool's training documents:

    y_t = 1 if token t of the document belongs to the answer (the task's object), else 0
    L   = Σ_t m_t [ −π y_t log w_t − (1 − y_t) log(1 − w_t) ] / Σ_t m_t        (per document)

with w_t = φ's weight of token t, m_t the mask of real tokens past position 0 (position 0 has no
loss in θ's objective, so its weight means nothing and is not trained), and π the positive-class
weight (``supervised.pos_weight``; 0 = auto, the pool's ratio of non-answer to answer tokens, so
both classes weigh the same in total). One forward and one backward of φ per document; no θ.

The result is a start, not a replacement: meta-training continues from it
(``init=OUT/phi``) and learns what the labels cannot say (which other tokens help θ answer,
how much weight the rest should keep). The run folder holds ``phi/`` (a loadable φ),
``config.yaml``, ``run.json``, ``log.jsonl`` (one row per step) and ``val.jsonl`` (φ alone,
validated with the meta-training protocol on every split).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch

from ..core.config import check_config, save_config, to_dict
from .config import MetaTrainConfig
from ..core.errors import TaalmError, TrainingDiverged
from ..core.run import RunOptions
from ..data import Pair
from .training import MetaTrainResult, hold_out_splits, all_pairs
from .pairs import EncodedPair, encode_pairs, pair_stream, phi_weights, theta0_losses
from .validation import split_text, validate_splits


def supervised_start(pairs: list[Pair], val_pairs=None, config: MetaTrainConfig | None = None,
                     out_dir: str | Path | None = None, *, model=None, tokenizer=None, phi=None,
                     options: RunOptions | None = None) -> MetaTrainResult:
    """Train φ (``config.phi``, or ``init``) to predict the answer span of ``pairs``' documents
    for ``supervised.steps`` steps, then validate it alone on ``val_pairs`` (a list or named
    splits) with the meta-training protocol. Writes the run folder of the module docstring."""
    from ..core.runfolder import input_paths
    from ..core.run import Run

    opts = options or RunOptions()
    cfg = config or MetaTrainConfig()
    check_config(cfg)
    if opts.resume:
        raise TaalmError("a supervised start is not resumable (minutes): rerun it with --overwrite")
    pairs, splits = hold_out_splits(pairs, val_pairs, cfg)
    run = Run(out_dir, overwrite=opts.overwrite, input_paths=input_paths([p.document for p in pairs + all_pairs(splits)]),
              device=cfg.model.device, log=opts.log, progress=opts.progress)
    with run:
        return _supervised(run, pairs, splits, cfg, model, tokenizer, phi)


def _supervised(run, pairs, splits, cfg: MetaTrainConfig, model, tokenizer, phi):
    from ..core.metrics import open_logger
    from .training import build_meta_models

    t0, log, folder = time.time(), run.log, run.folder
    out = folder.path if folder is not None else None
    base_model, _, phi, tokenizer = build_meta_models(cfg, model, tokenizer, phi, log)
    device = next(base_model.parameters()).device
    enc = encode_pairs(tokenizer, pairs, cfg.max_doc_tokens)
    sc = cfg.supervised
    pw = sc.pos_weight or auto_pos_weight(enc)
    info = {"n_pairs": len(pairs), "n_val_pairs": len(all_pairs(splits)), "pos_weight": pw,
            "documents_seen": sc.steps * sc.batch_size}

    def info_fields() -> dict:  # run.json beside the schema, kind, environment and status
        return {**info, "config": to_dict(cfg), "seconds": round(time.time() - t0, 1)}

    if folder is not None:
        def first_files(f: Path) -> None:
            save_config(cfg, f / "config.yaml")
            run.write_info("running", info_fields(), device=device, folder=f, kind="supervised_start")

        folder.start(first_files)
    run.failure_fields = lambda: {"seconds": round(time.time() - t0, 1)}
    steps = open_logger(out / "log.jsonl" if out is not None else None)
    vals = open_logger(out / "val.jsonl" if out is not None else None)
    try:
        _fit(phi, enc, cfg, pw, (base_model, tokenizer), steps, run.progress)
        if out is not None:
            phi.save_pretrained(out / "phi")
        best = None
        if splits:
            phi.eval()
            tv = time.time()
            best = {"update": 0, **validate_splits(phi, base_model, tokenizer, splits, cfg),
                    "seconds": round(time.time() - tv, 1)}
            vals.log_row(best)
            log(f"supervised φ: validation answer accuracy {best['accuracy']:.3f}" + split_text(best))
    finally:
        steps.close()
        vals.close()
    if out is not None:
        run.finish(info_fields(), device=device, kind="supervised_start")
    return MetaTrainResult(out, steps.rows, vals.rows, best, phi, round(time.time() - t0, 1))


def _fit(phi, enc: list[EncodedPair], cfg: MetaTrainConfig, pos_weight: float, theta0: tuple, logger,
         progress: bool) -> None:
    """The explicit loop: seeded batches of documents, BCE on the answer span, AdamW on φ
    (``theta0``: θ's base model and tokenizer, for a loss-aware φ's token losses)."""
    base_model, tokenizer = theta0
    device = next(base_model.parameters()).device
    from ..core.progress import progress as progress_bar

    sc = cfg.supervised
    params = phi.trainable_parameters()
    opt = torch.optim.AdamW(list(params.values()), lr=sc.lr, weight_decay=cfg.weight_decay)
    phi.train()
    bar = progress_bar(total=sc.steps, desc="supervised φ", unit="step") if progress else None
    loss_cache: dict = {}  # a loss-aware φ: θ0's token losses per document, computed once
    for step in range(1, sc.steps + 1):
        t0 = time.time()
        idx = pair_stream(len(enc), cfg.seed, (step - 1) * sc.batch_size, sc.batch_size)
        items = [enc[i] for i in idx]
        T = max(len(e.doc.input_ids) for e in items)
        y, m = (t.to(device) for t in answer_labels(items, T))
        losses = theta0_losses(base_model, tokenizer, items, device, loss_cache) if phi.loss_aware else None
        w = phi_weights(phi, items, T, device, losses)  # [P, T]
        loss = span_bce(w, y, m, pos_weight)
        if not math.isfinite(loss.item()):
            raise TrainingDiverged(f"the supervised loss is {loss.item()} at step {step}; lower supervised.lr")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = float(torch.nn.utils.clip_grad_norm_(list(params.values()),
                                                     cfg.max_grad_norm if cfg.max_grad_norm > 0 else math.inf))
        opt.step()
        with torch.no_grad():
            on, off = (y * m).bool(), ((1 - y) * m).bool()
            row = {"step": step, "loss": round(loss.item(), 5), "w_answer": round(w[on].mean().item(), 5),
                   "w_other": round(w[off].mean().item(), 5), "grad_norm": round(gnorm, 5),
                   "seconds": round(time.time() - t0, 2)}
        logger.log_row(row)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{row['loss']:.3f}", w_ans=row["w_answer"], w_other=row["w_other"])
    if bar is not None:
        bar.close()
    phi.eval()


def answer_labels(items: list[EncodedPair], T: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(labels, mask) ``[P, T]``: 1 on the answer's tokens in each document; mask = real tokens
    past position 0 (which has no loss, so no label)."""
    y = torch.zeros(len(items), T)
    m = torch.zeros(len(items), T)
    for i, e in enumerate(items):
        n = len(e.doc.input_ids)
        m[i, 1:n] = 1.0
        y[i, [t for t in e.doc.span if t < n]] = 1.0
    return y, m


def span_bce(w: torch.Tensor, y: torch.Tensor, m: torch.Tensor, pos_weight: float) -> torch.Tensor:
    """Mean over documents of the masked, positive-weighted binary cross-entropy of the module
    docstring (``w`` are probabilities; clamped away from 0 and 1 for the logs)."""
    w = w.clamp(1e-6, 1 - 1e-6)
    per_token = -(pos_weight * y * torch.log(w) + (1 - y) * torch.log1p(-w))
    return ((per_token * m).sum(1) / m.sum(1).clamp_min(1)).mean()


def auto_pos_weight(enc: list[EncodedPair]) -> float:
    """Non-answer tokens / answer tokens over the documents (positions past 0)."""
    pos = sum(len(e.doc.span) for e in enc)
    total = sum(max(len(e.doc.input_ids) - 1, 0) for e in enc)
    if pos == 0:
        raise TaalmError("no training document contains its answer: nothing to supervise")
    return (total - pos) / pos
