"""Meta-training of the Train-Attention model φ (SPEC 2.3): an explicit loop, top to bottom.

For every φ update:
  1. take ``batch_pairs`` training pairs (document, task with answer span) from a seeded,
     per-epoch shuffled stream (so a resumed run sees exactly the pairs it would have seen);
  2. in micro-batches of ``micro_pairs`` pairs (one forward pass each, every pair with its own
     θ, reset to θ0): w = φ(document) → :func:`taalm.meta.gradient.meta_step` gives ∂O/∂w
     (``k_warm`` warm-up steps + one differentiable inner step, engine ``directional`` or
     ``double_backward``) → ``w.backward(∂O/∂w · P/B)``, so φ's gradient is the mean over the
     B pairs of the update;
  3. clip and take an AdamW step on φ.
Every ``val.every`` updates (and before the first) φ is validated on held-out pairs: θ0 learns
the held-out documents with φ's weights for ``val.epochs`` epochs (the ordinary learner, LoRA θ)
and the answer accuracy of their tasks is measured with the ordinary evaluator. The best φ is
kept in ``best/``; ``checkpoints/`` makes a killed run resumable.

Output folder: ``config.yaml``, ``run.json``, ``log.jsonl`` (one row per update),
``val.jsonl``, ``phi/`` and ``best/`` (safetensors + JSON), ``validation.png``,
``weights.html`` / ``weights.png`` (held-out documents' token weights before and after).
"""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..core.config import check_config, save_config, to_dict
from .config import MetaTrainConfig
from ..data import Pair
from ..core.errors import ConfigError, TaalmError, TrainingDiverged
from .gradient import meta_step
from .theta import MetaTheta
from .pairs import (EncodedPair, encode_pairs, make_batch, pair_stream, phi_weights, theta0_losses,
                    unrelated_offset)
from .validation import split_text, validate_splits, validation_references
from ..core import distributed
from ..core.checkpoint import Checkpointer
from ..core.run import RunOptions
from ..core.schedules import lr_factor
from ..core.metrics import NullLogger, RowLogger, open_logger, tracking_loggers
from ..core.files import atomic_write_json

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from ..core.runfolder import RunFolder
    from ..models.phi import TrainAttention


@dataclass
class MetaTrainResult:
    out_dir: Path | None
    log: list[dict]
    val: list[dict]
    best: dict | None
    phi: object
    seconds: float


@dataclass
class _MetaRun:
    """Everything one meta-training run holds while it trains (built by :func:`_meta_setup`)."""

    cfg: MetaTrainConfig
    base_model: torch.nn.Module  # θ0, untouched: validation's CKL runs start from a copy
    theta: MetaTheta
    phi: TrainAttention
    tokenizer: PreTrainedTokenizerBase
    device: torch.device
    enc: list  # the encoded training pairs
    val_pairs: dict  # split name -> validation pairs
    params: dict
    opt: torch.optim.Optimizer
    folder: RunFolder | None
    checkpointer: Checkpointer | None
    info: dict
    t_start: float
    best: dict | None = None
    loss_cache: dict = field(default_factory=dict)  # document id -> θ0's token losses (a loss-aware φ)
    start: int = 0
    elapsed_before: float = 0.0
    update_log: RowLogger = field(default_factory=NullLogger)
    val_log: RowLogger = field(default_factory=NullLogger)

    @property
    def out(self) -> Path | None:
        return self.folder.path if self.folder is not None else None

    @property
    def log_rows(self) -> list[dict]:
        """One row per φ update (the update log's rows, kept rows of a resumed run included)."""
        return self.update_log.rows

    @property
    def val_rows(self) -> list[dict]:
        return self.val_log.rows

    def seconds(self) -> float:
        return round(self.elapsed_before + time.time() - self.t_start, 1)

    def info_fields(self) -> dict:
        """What ``run.json`` records beside the schema, environment and status (written by
        :meth:`Run.write_info <taalm.core.run.Run.write_info>` / :meth:`~taalm.core.run.Run.finish`)."""
        return {**self.info, "config": to_dict(self.cfg), "seconds": self.seconds()}


def train_attention(pairs: list[Pair], val_pairs: list[Pair] | dict[str, list[Pair]] | None = None,
                    config: MetaTrainConfig | None = None, out_dir: str | Path | None = None, *,
                    model=None, tokenizer=None, phi=None, options: RunOptions | None = None) -> MetaTrainResult:
    """Meta-train φ on ``pairs`` (SPEC 2.3); validate on ``val_pairs`` (default: ``val.n_pairs``
    held out from ``pairs``; a dict gives named splits, e.g. real-world and invented-entity facts,
    and the best φ is the one with the highest mean of the splits' accuracies). ``model``/``tokenizer`` (θ's base) and ``phi`` may be passed
    already built (tests); else ``config.model`` / ``config.phi`` are loaded. ``options``
    (:class:`~taalm.core.run.RunOptions`): resume / overwrite, progress and log.

    As :func:`taalm.ckl.learner.learn`: everything is checked before anything is written, the folder
    is locked while the run lives, ``resume`` must be given the run's own pairs and configuration
    (more ``updates`` allowed), and a non-finite outer loss or φ gradient stops the run
    (:class:`TrainingDiverged`, status "failed") keeping the last good checkpoint."""
    from ..core.runfolder import input_paths
    from ..core.run import Run

    opts = options or RunOptions()
    cfg = config or MetaTrainConfig()
    check_config(cfg)
    pairs, val_pairs = hold_out_splits(pairs, val_pairs, cfg)
    inputs = _pair_fingerprints(pairs, val_pairs)
    docs = [p.document for p in pairs + all_pairs(val_pairs)]
    run = Run(out_dir, resume=opts.resume, overwrite=opts.overwrite, inputs=inputs, input_paths=input_paths(docs),
              config=to_dict(cfg), defaults=to_dict(MetaTrainConfig()), device=cfg.model.device,
              log=opts.log, progress=opts.progress)
    with run:
        return _train_attention(run, pairs, val_pairs, cfg, model, tokenizer, phi)


def _pair_fingerprints(pairs: list[Pair], splits: dict[str, list[Pair]]) -> dict:
    from ..core.runfolder import input_fingerprints

    fp = input_fingerprints([p.document for p in pairs], [p.task for p in pairs])
    val = all_pairs(splits)
    out = {"pairs.documents": fp["documents"], "pairs.tasks": fp["probes"],
           "val": input_fingerprints([p.document for p in val], [p.task for p in val])["documents"]}
    if len(splits) > 1:
        out["val.splits"] = {k: len(v) for k, v in splits.items()}
    return out


def _train_attention(run, pairs, val_pairs, cfg: MetaTrainConfig, model, tokenizer, phi) -> MetaTrainResult:
    """:func:`train_attention` inside its run life cycle (:class:`~taalm.core.run.Run`: checked,
    ranks joined, folder locked): set up, then update φ, validating and checkpointing on schedule,
    then write the outputs. Under data parallelism rank 0 alone validates (each validation a CKL
    run of its own)."""
    main, log = run.is_main, run.log
    r = _meta_setup(run, pairs, val_pairs, cfg, (model, tokenizer, phi))
    run.failure_fields = lambda: {"seconds": r.seconds()}
    bar = None
    try:
        heat_enc = _heatmap_documents(r, pairs) if main else []
        references = _references(r.out, val_pairs, r.base_model, r.tokenizer, cfg, log) if main else {}
        if not main:
            r.val_pairs = {}  # _validate does nothing on the other ranks
        if r.start == 0 and not r.val_rows and cfg.val.at_start:
            _validate(r, 0, log)
        if run.progress:
            from ..core.progress import progress as progress_bar

            bar = progress_bar(total=cfg.updates, initial=r.start, desc="meta-train φ", unit="upd")
        for update in range(r.start + 1, cfg.updates + 1):
            row = _phi_update(r, update)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(outer=f"{row['outer']:.3f}", w_ans=row["w_answer"])
            if cfg.val.every > 0 and (update % cfg.val.every == 0 or update == cfg.updates):
                _validate(r, update, log)
            if r.checkpointer is not None and (update % cfg.checkpoint_every == 0 or update == cfg.updates):
                r.checkpointer.save(update, r.params, r.opt, {"update": update, "best": r.best, "seconds": r.seconds()})
        if r.out is not None:  # inside the life cycle: a failure here (a full disk) is marked too
            _write_outputs(r, heat_enc, references)
    finally:
        r.update_log.close()
        r.val_log.close()
        if bar is not None:
            bar.close()
    if r.out is not None:
        run.finish(r.info_fields(), device=r.device)
    return MetaTrainResult(r.out, r.log_rows, r.val_rows, r.best, r.phi, r.seconds())


def _meta_setup(run, pairs, val_pairs, cfg: MetaTrainConfig, given: tuple) -> _MetaRun:
    """Models (``given``: θ's base, its tokenizer and φ, each None to build from the config),
    pairs, φ's optimizer, the checkpoint to resume from; then the folder's start (``run``: the
    :class:`~taalm.core.run.Run`) and the append-only logs (rows past the checkpoint are dropped:
    they are redone)."""
    folder, inputs, log, resume_dir = run.folder, run.inputs, run.log, run.resume_dir
    model, tokenizer, phi = given
    t_start = time.time()
    base_model, theta, phi, tokenizer = build_meta_models(cfg, model, tokenizer, phi, log)
    phi.train()
    enc = encode_pairs(tokenizer, pairs, cfg.max_doc_tokens)
    if not enc:
        raise TaalmError("no training pairs")
    params = phi.trainable_parameters()
    opt = torch.optim.AdamW(list(params.values()), lr=cfg.lr, weight_decay=cfg.weight_decay)
    ckpt = phi_checkpointer(folder.path, phi) if folder is not None else None
    reader = ckpt if folder is not None and folder.resume else (
        phi_checkpointer(resume_dir, phi) if resume_dir is not None else None)  # another rank: read only
    state = reader.resume_state(params, opt, log, "no φ update was checkpointed") if reader else None
    info = {"n_pairs": len(pairs), "n_val_pairs": len(all_pairs(val_pairs)), "inputs": inputs,
            "phi_trainable": sum(p.numel() for p in params.values()), "theta_trainable_per_pair": theta.n_trainable}
    r = _MetaRun(cfg, base_model, theta, phi, tokenizer, next(base_model.parameters()).device, enc, val_pairs,
                 params, opt, folder, ckpt, info, t_start)
    if state is not None:
        r.start, r.best, r.elapsed_before = state["update"], state.get("best"), float(state.get("seconds", 0.0))
        log(f"resuming {r.out} after update {r.start}")
    if folder is not None:  # starts for real: staged folder swapped into place (or resumed in place)
        def first_files(f: Path) -> None:
            save_config(cfg, f / "config.yaml")
            run.write_info("running", r.info_fields(), device=r.device, folder=f)

        folder.start(first_files)
    keep = (lambda row: row["update"] <= r.start) if state is not None else None
    tracking = tracking_loggers(r.out, cfg.logger, to_dict(cfg))  # one TensorBoard / W&B run for both files
    r.update_log = open_logger(r.out / "log.jsonl" if r.out is not None else None, keep, tracking)
    r.val_log = open_logger(r.out / "val.jsonl" if r.out is not None else None, keep, tracking, owns=False)
    return r


def _heatmap_documents(r: _MetaRun, pairs) -> list:
    """The documents of the before/after heatmap (first validation pairs); φ's weights on them
    before training are saved once."""
    heat = [p for v in r.val_pairs.values() for p in v[:max(1, 4 // len(r.val_pairs))]][:4]  # from every split
    heat_enc = encode_pairs(r.tokenizer, heat or pairs[:4], r.cfg.max_doc_tokens)
    if r.out is not None and not (r.out / "weights_before.json").exists():
        wb = r.phi.token_weights([e.text for e in heat_enc], [e.doc for e in heat_enc],
                                 losses=heat_losses(r.phi, r.base_model, r.tokenizer, heat_enc))
        atomic_write_json(r.out / "weights_before.json", [w.tolist() for w in wb])
    return heat_enc


def _references(out, val_pairs, base_model, tokenizer, cfg: MetaTrainConfig, log) -> dict:
    """The uniform/oracle validation references: from the run folder if there, else computed once."""
    if out is not None and (out / "val_references.json").is_file():
        return json.loads((out / "val_references.json").read_text())
    if not (val_pairs and cfg.val.references):
        return {}
    with distributed.local_only():  # CKL runs of their own (rank 0 alone under data parallelism)
        references = validation_references(base_model, tokenizer, val_pairs, cfg, log)
    if out is not None:
        atomic_write_json(out / "val_references.json", references)
    return references


def _validate(r: _MetaRun, update: int, log) -> None:
    """Validate φ (the CKL protocol, :func:`validate`); keep the best φ in ``best/``."""
    if not r.val_pairs:
        return
    t0 = time.time()
    r.phi.eval()
    with distributed.local_only():  # under data parallelism: rank 0 validates alone
        result = validate_splits(r.phi, r.base_model, r.tokenizer, r.val_pairs, r.cfg)
    row = {"update": update, **result, "seconds": round(time.time() - t0, 1)}
    r.phi.train()
    r.val_log.log_row(row)
    log(f"validation @ {update}: answer accuracy {row['accuracy']:.3f} (NLL {row['nll']:.3f})" + split_text(row))
    if r.best is None or row["accuracy"] > r.best["accuracy"]:
        r.best = row
        if r.out is not None:
            r.phi.save_pretrained(r.out / "best")
            atomic_write_json(r.out / "best" / "validation.json", row)


def _phi_update(r: _MetaRun, update: int) -> dict:
    """One φ update: the pairs' meta-gradients (:func:`_meta_update`), clipping, the scheduled lr,
    AdamW's step. Returns the logged row."""
    cfg, t0 = r.cfg, time.time()
    r.opt.zero_grad(set_to_none=True)
    stats = _meta_update(r.phi, r.theta, r.enc, cfg, update, r.tokenizer, r.loss_cache)
    gnorm = float(torch.nn.utils.clip_grad_norm_(list(r.params.values()),
                                                 cfg.max_grad_norm if cfg.max_grad_norm > 0 else math.inf))
    if not math.isfinite(gnorm):
        raise TrainingDiverged(f"φ's gradient norm is {gnorm} at update {update}; lower lr (now {cfg.lr:g})")
    for group in r.opt.param_groups:
        group["lr"] = phi_lr(cfg, update)
    r.opt.step()
    row = _log_row(update, phi_lr(cfg, update), stats, gnorm, time.time() - t0)
    r.update_log.log_row(row)
    return row


def _meta_update(phi, theta, enc: list[EncodedPair], cfg: MetaTrainConfig, update: int, tokenizer,
                 loss_cache: dict | None = None) -> dict:
    """One φ update's gradient, accumulated over micro-batches of pairs (mean over the update's
    pairs); returns the update's statistics. φ's optimizer step is the caller's."""
    pad_id, device = tokenizer.pad_token_id, next(theta.model.parameters()).device
    idx = pair_stream(len(enc), cfg.seed, cfg.stream_offset + (update - 1) * cfg.batch_pairs, cfg.batch_pairs)
    idx.sort(key=lambda i: len(enc[i].doc.input_ids))  # similar lengths share a forward pass
    stats: dict[str, Any] = {"outer": 0.0, "outer0": 0.0, "inner": 0.0, "w_mean": 0.0, "w_answer": [], "w_other": []}
    d = distributed.current()
    for k in distributed.shard(list(range(0, len(idx), cfg.micro_pairs)), d):  # data parallel: micro-batches r, r+N, …
        items = [enc[i] for i in idx[k:k + cfg.micro_pairs]]
        unrelated = None
        if cfg.unrelated_weight:
            off = unrelated_offset(cfg.seed, update, k, len(enc))
            unrelated = [enc[(i + off) % len(enc)] for i in idx[k:k + cfg.micro_pairs]]
        batch = make_batch(items, pad_id, device, unrelated)
        losses = theta0_losses(theta.model, tokenizer, items, device, loss_cache) if phi.loss_aware else None
        w = phi_weights(phi, items, batch.doc_ids.shape[1], device, losses)  # [P, T], φ's graph
        res = meta_step(theta, batch, w, cfg)
        outer = res.outer.sum().item()
        if not math.isfinite(outer):
            raise TrainingDiverged(f"the outer loss is {outer} at update {update}; lower inner.lr "
                                   f"(now {cfg.inner.lr:g}) or lr (now {cfg.lr:g})")
        scale = len(items) / len(idx)  # φ's gradient = mean over the update's pairs
        w.backward(res.grad_w.to(w.dtype) * scale)
        stats["outer"] += outer / len(idx)
        stats["outer0"] += res.outer0.sum().item() / len(idx)
        stats["inner"] += res.inner_loss.sum().item() / len(idx)
        with torch.no_grad():
            valid = batch.doc_mask.bool()
            stats["w_mean"] += (w[valid].mean().item()) * scale
            for i, e in enumerate(items):
                if e.doc.span:
                    on = torch.zeros(w.shape[1], dtype=torch.bool, device=w.device)
                    on[e.doc.span] = True
                    stats["w_answer"].append(w[i][on].mean().item())
                    stats["w_other"].append(w[i][valid[i] & ~on].mean().item())
    if d.enabled:
        _reduce_update(phi, stats, device)
    return stats


def _reduce_update(phi, stats: dict, device) -> None:
    """Data parallelism: sum φ's gradient and the update's statistics over the ranks (each rank's
    share was already scaled by its pairs / the update's pairs, so the sum is the mean over all of
    them, as in one process). θ and φ are not wrapped in DDP: DDP supports neither double
    backward (pytorch/pytorch#63812, #47562) nor forward-mode JVPs through its forward (#102197),
    the two engines of :mod:`taalm.meta.gradient`; the gradient is reduced by hand instead."""
    distributed.all_reduce_grads_(phi.trainable_parameters().values())
    keys = ("outer", "outer0", "inner", "w_mean")
    sums = distributed.all_reduce_sum_(torch.tensor([stats[k] for k in keys], dtype=torch.float64, device=device))
    stats.update(zip(keys, sums.tolist()))
    for key in ("w_answer", "w_other"):
        stats[key] = [x for part in distributed.all_gather_objects(stats[key]) for x in part]


def _log_row(update: int, lr: float, stats: dict, gnorm: float, seconds: float) -> dict:
    mean = lambda xs: round(sum(xs) / len(xs), 5) if xs else None  # noqa: E731
    logged = math.isfinite(stats["outer0"])  # log_outer0=false: θ0's task loss was not computed
    return {"update": update, "lr": float(f"{lr:.6g}"), "outer": round(stats["outer"], 5),
            "outer0": round(stats["outer0"], 5) if logged else None,
            "gain": round(stats["outer0"] - stats["outer"], 6) if logged else None,
            "inner_loss": round(stats["inner"], 5), "w_mean": round(stats["w_mean"], 5),
            "w_answer": mean(stats["w_answer"]), "w_other": mean(stats["w_other"]),
            "grad_norm": round(gnorm, 6), "seconds": round(seconds, 2)}


def _write_outputs(r: _MetaRun, heat_enc: list, references: dict) -> None:
    """φ, the weight heatmap before/after, the validation plot and ``summary.json`` of a finished run."""
    out, phi, tokenizer, cfg, log_rows = r.out, r.phi, r.tokenizer, r.cfg, r.log_rows
    assert out is not None  # called only for a run with a folder
    phi.save_pretrained(out / "phi")
    phi.eval()
    wa = phi.token_weights([e.text for e in heat_enc], [e.doc for e in heat_enc],
                           losses=heat_losses(phi, r.base_model, tokenizer, heat_enc))
    wb = [torch.tensor(w) for w in json.loads((out / "weights_before.json").read_text())]
    write_weight_report(out, tokenizer, heat_enc, wb, wa)
    if r.val_rows:
        from ..reporting.plots import plot_validation

        plot_validation(r.val_rows, log_rows, out / "validation.png", references)
    atomic_write_json(out / "summary.json", {
        "updates": cfg.updates, "val": r.val_rows, "best": r.best, "references": references,
        "seconds": round(r.seconds(), 1), "first": log_rows[0] if log_rows else None,
        "last": log_rows[-1] if log_rows else None})


def phi_checkpointer(out: Path, phi) -> Checkpointer:
    """``checkpoints/update-N/``: φ as a loadable folder (``phi/``) and φ's optimizer."""
    return Checkpointer(out / "checkpoints", "update", 6, tensor_file="phi/phi.safetensors",
                        write_tensors=lambda folder: phi.save_pretrained(folder / "phi"))


def phi_lr(cfg: MetaTrainConfig, update: int) -> float:
    """φ's learning rate at ``update`` (1-based): ``lr`` times :func:`taalm.core.schedules.lr_factor`
    (warm-up over ``warmup_updates``, then constant, linear or cosine down to ``lr · lr_final`` at
    update ``updates``). A pure function of the update, so a resumed run continues it exactly."""
    return cfg.lr * lr_factor(update, cfg.updates, cfg.lr_schedule, cfg.warmup_updates, cfg.lr_final)


def hold_out_splits(pairs: list[Pair], val_pairs, cfg: MetaTrainConfig) -> tuple[list, dict[str, list[Pair]]]:
    """(training pairs, validation splits): ``val_pairs`` (a list: one split named ``val``; a
    dict: named splits), else ``val.n_pairs`` held out of ``pairs`` (seeded) as split ``val``."""
    if isinstance(val_pairs, dict):
        return pairs, {k: list(v) for k, v in val_pairs.items() if v}
    if val_pairs is None and cfg.val.n_pairs > 0:
        if len(pairs) <= cfg.val.n_pairs:
            raise ConfigError(f"{len(pairs)} pairs cannot hold out val.n_pairs={cfg.val.n_pairs}", "val.n_pairs")
        perm = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(cfg.seed)).tolist()
        val_pairs = [pairs[i] for i in perm[:cfg.val.n_pairs]]
        pairs = [pairs[i] for i in perm[cfg.val.n_pairs:]]
    return pairs, ({"val": val_pairs} if val_pairs else {})


def all_pairs(splits: dict[str, list[Pair]]) -> list[Pair]:
    """Every validation pair, split after split."""
    return [p for v in splits.values() for p in v]


def build_meta_models(cfg: MetaTrainConfig, model, tokenizer, phi, log):
    """(θ's pristine base, MetaTheta, φ, tokenizer): loaded here unless passed in."""
    from ..models.phi import TrainAttention

    if model is None:
        from ..models.loading import load_model

        log(f"loading θ base {cfg.model.name} ...")
        model, tokenizer = load_model(cfg.model.name, cfg.model.device, cfg.model.dtype, attn="eager",
                                      trust_remote_code=cfg.model.trust_remote_code, allow_pickle=cfg.model.allow_pickle)
    elif tokenizer is None:
        raise TaalmError("pass the tokenizer together with the model")
    device = next(model.parameters()).device
    theta = MetaTheta(copy.deepcopy(model).to(device), cfg.theta, seed=cfg.seed)
    if phi is None and cfg.init:
        log(f"loading φ from {cfg.init} (warm start) ...")
        phi = TrainAttention.from_pretrained(Path(cfg.init).expanduser(), device=str(device), dtype=cfg.model.dtype)
    elif phi is None:
        log(f"loading φ base {cfg.phi.base} ...")
        phi = TrainAttention.from_config(cfg.phi, device=str(device), dtype=cfg.model.dtype)
    return model, theta, phi, tokenizer


def heat_losses(phi, base_model, tokenizer, items: list[EncodedPair]) -> list[torch.Tensor] | None:
    """θ0's token losses of the heatmap documents for a loss-aware φ (else None)."""
    if not phi.loss_aware:
        return None
    return theta0_losses(base_model, tokenizer, items, next(base_model.parameters()).device)


def write_weight_report(out: Path, tokenizer, items: list[EncodedPair], before, after) -> None:
    """``weights.html`` (heatmap, before/after per document) and ``weights.png``."""
    from ..reporting.heatmaps import write_heatmap
    from ..reporting.plots import plot_weights_before_after

    html_items = []
    for i, (e, wb, wa) in enumerate(zip(items, before, after)):
        html_items.append((e.text, e.doc.offsets, [float(x) for x in wb], f"document {i + 1}: before meta-training"))
        html_items.append((e.text, e.doc.offsets, [float(x) for x in wa], f"document {i + 1}: after meta-training"))
    write_heatmap(out / "weights.html", html_items, title="Train-Attention token weights (held-out documents)")
    plot_weights_before_after([([e.text[s:t] for s, t in e.doc.offsets], wb, wa, e.doc.span)
                               for e, wb, wa in zip(items, before, after)], out / "weights.png")
