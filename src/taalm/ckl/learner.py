"""The continual learner: θ learns a list of documents with a token-weighted loss.

One document's path through this module (see docs/design.md for the whole picture):

    Document --encode--> token ids (+ answer span) --split_windows--> Windows (<= max_length)
    method.document_weights (static, once per document, cached) or
    method.step_weights (dynamic, from the training forward's own per-token losses)
        --> weights [B, T] aligned with the tokens
    θ(input_ids) --> logits --token_losses--> ℓ [B, T] --weighted_loss--> L --backward--> AdamW

The loop is explicit and reads top to bottom: evaluate before, then for each epoch shuffle
(seeded by epoch), form micro-batches, accumulate, step; evaluate; checkpoint. A killed run
resumes from its last checkpoint (trainable tensors + optimizer state + history) and continues
bit-for-bit as if never stopped, because shuffling and dropout are seeded per epoch.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

import torch

from ..core.strategy import Strategy, strategy_for
from ..core.checkpoint import Checkpointer
from ..core.config import check_config, save_config, to_dict
from .config import LearnConfig
from ..core.errors import InputError, TaalmError, ConfigError, TrainingDiverged
from ..core.files import atomic_write_json, load_tensors, save_tensors, write_jsonl
from ..core.metrics import MetricLogger, NullLogger, open_logger, tracking_loggers
from ..core.schedules import lr_factor
from ..core.run import Run, RunOptions
from ..core.runfolder import RunFolder, input_fingerprints, input_paths
from ..data import Document, Probe, Window, collate, prepare_windows, read_probes
from ..models.loading import ensure_pad_token
from ..evaluation.keep import KEEP_CHOICES, general_facts, outcome, select_known
from ..evaluation.probes import EvalResult, encode_probes, evaluate_probes, sample_rows
from .loss import known_tokens, token_losses, weighted_loss_from_token_losses
from .weighting import dynamic_weights
from .method import CklMethod, resolve_method, split_method_name
from .theta import Full, count_parameters, trainable_parameters
from .weighting import PrepareContext, WeightingMethod

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


@dataclass
class LearnResult:
    model: torch.nn.Module
    tokenizer: object
    history: list[dict]  # one row per evaluation point: epoch (0 = before), accuracy, nll
    out_dir: Path | None = None
    train_seconds: float = 0.0
    steps: int = 0
    info: dict = field(default_factory=dict)
    prepare_seconds: float = 0.0  # the method's one-off preparation (φ scoring, RHO-1 reference)
    epoch_seconds: list[float] = field(default_factory=list)  # training time of each epoch run here
    optimizer: torch.optim.Optimizer | None = None  # pass to a next learn() to continue its state
    kept_epoch: int | None = None  # the epoch whose θ this is (the last, or the best with train.keep=best)

    @property
    def result(self) -> dict:
        """Learned, kept and Total at the kept epoch (:func:`taalm.evaluation.keep.outcome`)."""
        if not self.history:
            return {}
        row = next((x for x in self.history if x["epoch"] == self.kept_epoch), self.history[-1])
        return outcome(row, self.history[0])

    @property
    def before(self) -> dict | None:
        return self.history[0] if self.history else None

    @property
    def after(self) -> dict | None:
        return self.history[-1] if self.history else None


# --------------------------------------------------------------------------------------------
# The learner
# --------------------------------------------------------------------------------------------
_ROW_KEYS = frozenset({"epoch", "accuracy", "exact", "nll", "n", "seconds", "type"})  # taken in a history row


@dataclass
class _Run:
    """Everything one learn() call holds while it trains (built by :func:`_setup`)."""

    cfg: LearnConfig
    method: CklMethod
    model: torch.nn.Module
    tokenizer: PreTrainedTokenizerBase
    device: torch.device
    windows: list[Window]
    static_weights: list[torch.Tensor] | None  # per window; None for dynamic weighting
    params: dict[str, torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    evaluate: Callable[[int], dict | None]
    folder: RunFolder | None
    checkpointer: Checkpointer | None
    logger: MetricLogger = field(default_factory=NullLogger)
    history: list[dict] = field(default_factory=list)
    step: int = 0
    start_epoch: int = 0
    seconds_before: float = 0.0
    prepare_seconds: float = 0.0
    epoch_seconds: list[float] = field(default_factory=list)
    info: dict = field(default_factory=dict)  # run.json's description of the run
    autocast_dtype: torch.dtype | None = None  # full θ on a half-precision base: float32 weights, this compute
    base_lrs: list[float] = field(default_factory=list)  # each param group's lr before any schedule
    total_steps: int = 0  # the run's optimizer steps over all epochs (the schedule's length)
    strategy: Strategy = field(default_factory=Strategy)  # one process, data parallel or FSDP2 (core/strategy.py)
    best: _Best | None = None  # train.keep=best: the best epoch so far and θ's trainable tensors there

    @property
    def out(self) -> Path | None:
        return self.folder.path if self.folder is not None else None


@dataclass
class _Best:
    """``train.keep=best``: the epoch with the highest score so far (:func:`keep_score`) and a
    CPU copy of θ's trainable tensors at that epoch (also saved as ``best/theta.safetensors`` in
    a run folder, so a resumed run still has it)."""

    epoch: int = -1
    score: float = -math.inf
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class LearnOptions(RunOptions):
    """:class:`~taalm.core.run.RunOptions` plus what only :func:`learn` takes: objects to use
    instead of building them from the config, and callbacks."""

    method: WeightingMethod | None = None  # a ready weighting (e.g. PrecomputedWeights) instead of config.method's
    optimizer: torch.optim.Optimizer | None = None  # continue this optimizer's state (result.optimizer)
    callbacks: Sequence[Callable[[dict], None]] = ()  # called with an event dict after every epoch


@dataclass
class _Given:
    """What :func:`learn` was given, handed down to its set-up."""

    documents: list[Document]
    probes: list[Probe] | None
    extra: dict[str, list[Probe]]  # further named probe sets
    model: object  # θ0 passed in, or None (config.model is loaded)
    tokenizer: object
    optimizer: torch.optim.Optimizer | None  # a previous run's, to continue its state
    callbacks: list


FEW_STEPS = 20  # fewer optimizer steps than this in a whole run: say so (a first run that learns nothing)


__all__ = ["learn", "LearnResult", "check_documents", "check_context_length",
           "input_fingerprints", "input_paths"]


def learn(documents: list[Document], probes: list[Probe] | None = None,
          config: LearnConfig | None = None, out_dir: str | Path | None = None, *,
          model=None, tokenizer=None, extra_probes: Mapping[str, list[Probe]] | None = None,
          options: RunOptions | None = None) -> LearnResult:
    """Train θ on ``documents`` with the configured CKL method (weighting × θ form × optimizer ×
    data stream, :mod:`taalm.ckl.method`); evaluate ``probes``.

    ``model``/``tokenizer`` may be passed already loaded (else ``config.model`` is loaded). A
    passed model is trained in place (LoRA layers are injected into it); pass
    ``copy.deepcopy(model)`` to keep the original for another run. A model an earlier ``learn``
    prepared (``result.model``) is continued as it is, with no second adapter; pass
    ``options=LearnOptions(optimizer=result.optimizer)`` to continue its optimizer state too
    (sequential periods). Writes config, metrics, checkpoints and the learned θ into ``out_dir``
    (if given). ``options`` (:class:`RunOptions` or :class:`LearnOptions`): resume / overwrite,
    progress and log; a LearnOptions may also carry ``callbacks`` (called with an event dict after
    every epoch, ``{"event": "epoch", ...}``) and ``method``, a ready weighting-method instance used
    instead of ``config.method``'s weighting (e.g. :class:`~taalm.ckl.weighting.PrecomputedWeights`).
    ``extra_probes`` (optional) are further named probe sets evaluated at the same points as
    ``probes`` (e.g. ``{"nf": not_to_forget}``): each history row gets ``row[name] = {accuracy,
    nll, n, seconds}``, kept in the checkpoints, so a resumed run keeps every set's curve.

    Everything is checked before anything is written (the configuration, the documents, the
    output folder, on ``resume`` that the inputs and configuration are the run's own, then the
    model and the checkpoint); the folder is locked while the run lives (:mod:`taalm.core.runfolder`).
    A non-finite loss or gradient stops the run (:class:`TrainingDiverged`, status "failed"),
    keeping the last good checkpoint.
    """
    opts = options or LearnOptions()
    method, optimizer = getattr(opts, "method", None), getattr(opts, "optimizer", None)
    cfg = split_method_name(config or LearnConfig())  # "taalm+full" -> its config keys
    check_config(cfg)  # every range rule of the schema, for configs built in code too
    if model is not None:  # config.yaml records the θ0 that was passed, not the default model's name
        cfg = record_passed_model(cfg, model)
    parts = resolve_method(cfg, weighting=method)  # unknown or incompatible parts: ConfigError
    check_documents(documents, parts.weighting)
    extra = dict(extra_probes or {})
    extra.update(_probe_files(cfg, extra))  # data.kept=PATH, data.val: read (and checked) before anything is written
    for name, ps in extra.items():
        if not isinstance(name, str) or not name.isidentifier() or name in _ROW_KEYS or not ps:
            raise TaalmError(f"extra probe set {name!r}: needs a non-empty list of probes and an "
                             f"identifier name other than {', '.join(sorted(_ROW_KEYS))}")
    inputs = input_fingerprints(documents, probes, extra)
    run = Run(out_dir, resume=opts.resume, overwrite=opts.overwrite, inputs=inputs,
              input_paths=input_paths(documents, probes, *extra.values()), config=to_dict(cfg),
              defaults=to_dict(LearnConfig()), device=cfg.model.device, log=opts.log, progress=opts.progress)
    with run:
        given = _Given(documents, probes, extra, model, tokenizer, optimizer, list(getattr(opts, "callbacks", ())))
        return _learn(run, cfg, parts, given)


def _learn(run: Run, cfg: LearnConfig, method: CklMethod, given: _Given) -> LearnResult:
    """:func:`learn` inside its run life cycle (:class:`~taalm.core.run.Run`: checked, ranks
    joined, folder locked): set up, train epoch by epoch, save θ and the summary."""
    r = _setup(run, cfg, method, given)
    def failure_fields() -> dict:
        assert r.checkpointer is not None  # run.json is marked only in a folder, which has a checkpointer
        return {"last_checkpoint_epoch": r.checkpointer.latest_index()}

    run.failure_fields = failure_fields
    r.model.train()
    try:
        for epoch in range(r.start_epoch + 1, cfg.train.epochs + 1):
            t_epoch = time.time()
            loss = _train_epoch(r, epoch, run.progress)
            r.epoch_seconds.append(time.time() - t_epoch)
            _end_of_epoch(r, epoch, given.extra, run.log, given.callbacks, loss)
        r.model.eval()
        return _finish(r, run)  # inside the life cycle: a failure while saving (a full disk) is marked too
    finally:
        r.logger.close()


def _setup(run: Run, cfg: LearnConfig, method: CklMethod, given: _Given) -> _Run:
    """θ0 and the data (all validated before anything is written), θ's form and optimizer, the
    checkpoint to resume from, then the run folder's start and the method's preparation."""
    documents, probes, extra, model, tokenizer = given.documents, given.probes, given.extra, given.model, given.tokenizer
    tc, folder, log, progress, resume_dir = cfg.train, run.folder, run.log, run.progress, run.resume_dir
    strategy = strategy_for(tc.fsdp)  # after the ranks joined (Run); FSDP without torchrun: a ConfigError
    model, tokenizer = _load_theta0(cfg, model, tokenizer, log)
    check_context_length(model, tc.max_length)
    extra = given.extra = {**extra, **_kept_builtin(cfg, extra, model, tokenizer, log)}
    device = next(model.parameters()).device
    encoded, windows = prepare_windows(tokenizer, documents, tc.max_length, tc.stride)
    extra_enc = {name: (ps, encode_probes(tokenizer, ps)) for name, ps in extra.items()}
    model = method.theta.prepare(model)
    if tc.gradient_checkpointing:
        _enable_gradient_checkpointing(model, cfg.theta.mode)
    autocast_dtype = _float32_trainables(model)
    note = strategy.setup(model)  # after the float32 cast: shards (FSDP) are of the master weights
    if note:
        log(note)
    params = trainable_parameters(model)
    optimizer = given.optimizer if given.optimizer is not None else method.optimizer.build(params)
    base_lrs = [float(g["lr"]) for g in optimizer.param_groups]  # before a checkpoint's scheduled lr
    _check_resumable(folder)
    ckpt = Checkpointer(folder.path / "checkpoints", "epoch", 4) if folder is not None else None
    reader = ckpt if folder is not None and folder.resume else (
        Checkpointer(resume_dir / "checkpoints", "epoch", 4) if resume_dir is not None else None)
    state = reader.resume_state(params, optimizer, log, "the run had not finished an epoch") if reader else None
    n_train, n_total = count_parameters(model)
    info = {"method": method.name, "n_documents": len(documents), "n_windows": len(windows),
            "n_probes": len(probes or []), **({"extra_probes": {k: len(v) for k, v in extra.items()}} if extra else {}),
            "inputs": run.inputs, "trainable_parameters": n_train, "total_parameters": n_total}
    if folder is not None:  # the run starts for real: the (staged) folder is swapped into place
        def first_files(f: Path) -> None:
            save_config(cfg, f / "config.yaml")
            run.write_info("running", {**info, "config": to_dict(cfg)}, device=device, folder=f)

        folder.start(first_files)
    t0 = time.time()
    static = _static_weights(method, PrepareContext(model, tokenizer, encoded, windows, device, tc.batch_size,
                                                    documents=documents, log=log,
                                                    fine_tune=_fine_tuner(cfg, documents, model, tokenizer)))
    method.stream.bind(len(windows))
    replay_windows, replay_weights = _replay(cfg, method, model, tokenizer, device, len(documents))
    if replay_windows:  # the stream's replay documents follow the run's own windows
        windows, static = windows + replay_windows, static + replay_weights
    if state is None and tc.epochs > 0:
        per_epoch = -(-len(windows) // (tc.batch_size * tc.grad_accum))  # about (streams may batch otherwise)
        _note_few_steps(per_epoch * tc.epochs, len(windows), tc, log)
    sets = ([(None, probes, encode_probes(tokenizer, probes))] if probes else []) + [
        (name, ps, enc) for name, (ps, enc) in extra_enc.items()]
    evaluate = _make_evaluator(model, tokenizer, cfg, sets, folder.path if folder is not None else None, progress,
                               strategy)
    r = _Run(cfg, method, model, tokenizer, device, windows, static, params, optimizer, evaluate, folder, ckpt,
             prepare_seconds=time.time() - t0, info=info, base_lrs=base_lrs, autocast_dtype=autocast_dtype,
             total_steps=_total_steps(method, windows, tc), strategy=strategy,
             best=_best_tracker(tc, probes, extra, log))
    _resume_or_start(r, state, log)
    return r


KEPT = "kept"  # the extra probe set that measures old knowledge kept (data.kept)


VAL = "val"  # the extra probe set that train.keep=best chooses the epoch by (data.val)


def _probe_files(cfg: LearnConfig, extra: Mapping) -> dict:
    """``data.kept=PATH`` and ``data.val=PATH``: those probe files as the ``kept`` and ``val``
    sets (unless such a set was passed)."""
    out = {}
    if KEPT not in extra and cfg.data.kept not in KEEP_CHOICES:
        out[KEPT] = read_probes(cfg.data.kept, cfg.data.probe_field)
    if VAL not in extra and cfg.data.val:
        out[VAL] = read_probes(cfg.data.val, cfg.data.probe_field)
    return out


def _kept_builtin(cfg: LearnConfig, extra: Mapping, model, tokenizer, log) -> dict:
    """``data.kept=builtin``: the general facts θ0 answers (:mod:`taalm.evaluation.keep`), selected
    now, before θ0 changes; nothing when it answers none (a small or random model)."""
    if KEPT in extra or cfg.data.kept != "builtin":
        return {}
    known = select_known(model, tokenizer, general_facts(), batch_size=cfg.eval.batch_size)
    if not known:
        log("note: the base model answers none of the built-in general facts: 'kept' is not measured "
            "(give your own with data.kept=PATH)")
        return {}
    return {KEPT: known}


def _load_theta0(cfg: LearnConfig, model, tokenizer, log):
    if model is None:
        from ..models.loading import load_model

        log(f"loading {cfg.model.name} ...")
        return load_model(cfg.model.name, cfg.model.device, cfg.model.dtype, cfg.model.attn,
                          trust_remote_code=cfg.model.trust_remote_code, allow_pickle=cfg.model.allow_pickle)
    if tokenizer is None:
        raise TaalmError("pass the tokenizer together with the model")
    ensure_pad_token(tokenizer, log)  # a tokenizer passed from Python may have no pad token
    return model, tokenizer


def _enable_gradient_checkpointing(model, mode: str) -> None:
    """``train.gradient_checkpointing``: the model recomputes each layer's activations in the
    backward pass instead of keeping them (non-reentrant checkpointing, which needs no input
    gradients under LoRA). Models without transformers' switch are refused. transformers ≥ 5.x
    names it ``activation_checkpointing_enable`` (the old name warns and will go in v6)."""
    new = getattr(model, "activation_checkpointing_enable", None)
    enable = getattr(model, "gradient_checkpointing_enable", None)
    if (new is None and enable is None) or not getattr(model, "supports_gradient_checkpointing", False):
        raise ConfigError(f"train.gradient_checkpointing: θ form '{mode}' ({type(model).__name__}) cannot "
                          "recompute activations (the kadapter form keeps none of the frozen base's anyway)",
                          "train.gradient_checkpointing")
    if new is not None:
        new(activation_checkpointing_kwargs={"use_reentrant": False})
    elif enable is not None:  # older transformers
        enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def _float32_trainables(model) -> torch.dtype | None:
    """Mixed precision done right: whatever the base's dtype, what trains (and so the optimizer's
    state) is float32. LoRA and adapter parameters on a bf16/fp16 frozen base are cast to float32
    and the base keeps computing in half precision; when everything trains (``theta.mode=full``)
    the weights become float32 master weights and the forward runs under autocast in the base's
    dtype, which is returned (None when nothing changed)."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    half = {p.dtype for p in trainable if p.dtype in (torch.float16, torch.bfloat16)}
    if not half:
        return None
    frozen_half = any(p.dtype in half for p in model.parameters() if not p.requires_grad)
    for p in trainable:
        if p.dtype in half:
            p.data = p.data.float()
    return None if frozen_half else half.pop()


def _static_weights(method: CklMethod, ctx: PrepareContext):
    """The method's preparation; then weights that do not depend on θ, once per document, cut per
    window (None if dynamic). θ is θ0 here unless resumed: RHO-1's reference is θ0 itself only
    when it is not given."""
    w = method.weighting
    w.prepare(ctx)
    return None if w.dynamic else _window_weights(w, ctx.encoded, ctx.windows)


def _window_weights(weighting, encoded, windows, first_doc: int = 0) -> list[torch.Tensor]:
    """A static method's weights, once per document, cut per window (window ``doc_index`` counts
    from ``first_doc``)."""
    doc_weights = [weighting.document_weights(i, e) for i, e in enumerate(encoded)]
    return [doc_weights[x.doc_index - first_doc][x.start:x.start + len(x.input_ids)] for x in windows]


def _fine_tuner(cfg: LearnConfig, documents: list[Document], model, tokenizer) -> Callable[[int], torch.nn.Module]:
    """``PrepareContext.fine_tune``: a copy of ``model`` fine-tuned with uniform weights on the
    run's documents for ``epochs`` epochs with the run's train settings (plain stream, no
    known-token masking), quietly and in memory; ``model`` is untouched (RHO-1's reference)."""
    def fine_tune(epochs: int) -> torch.nn.Module:
        import copy

        from .config import MethodConfig
        from ..core.run import QUIET

        c = copy.deepcopy(cfg)
        c.method = MethodConfig(name="finetune")
        c.train.epochs, c.train.known_masking, c.train.stream = epochs, False, "plain"
        c.data.kept = "none"  # a reference model: nothing to report
        return learn(documents, None, c, model=copy.deepcopy(model), tokenizer=tokenizer, options=QUIET).model

    return fine_tune


def _replay(cfg: LearnConfig, method: CklMethod, model, tokenizer, device, n_docs: int):
    """The data stream's replay documents (Mix-review), windowed after the run's own documents,
    with their weights: 1 everywhere, or the run's static weighting method applied to them."""
    docs = method.stream.replay_documents()
    if not docs:
        return [], []
    tc = cfg.train
    encoded, windows = prepare_windows(tokenizer, docs, tc.max_length, tc.stride)
    for x in windows:
        x.doc_index += n_docs  # replay documents follow the run's own
    if method.stream.replay_weighting() == "uniform":
        return windows, [torch.ones(len(x.input_ids)) for x in windows]
    from .method import get_method

    w = get_method(cfg.method, seed=tc.seed)  # a second instance: prepared on the replay documents
    w.prepare(PrepareContext(model, tokenizer, encoded, windows, device, tc.batch_size, documents=docs))
    return windows, _window_weights(w, encoded, windows, first_doc=n_docs)


def _note_few_steps(steps: int, n_windows: int, tc, log) -> None:
    """One line when the whole run takes very few optimizer steps (a small set at a large batch)."""
    if steps < FEW_STEPS:
        log(f"note: about {steps} optimizer step(s) in all ({n_windows} windows, batch {tc.batch_size} x "
            f"{tc.grad_accum} accumulation, {tc.epochs} epochs): few to learn from; raise train.epochs "
            f"or lower train.batch_size")


def _make_evaluator(model, tokenizer, cfg: LearnConfig, sets: list[tuple], out: Path | None, progress: bool,
                    strategy: Strategy) -> Callable[[int], dict | None]:
    """``evaluate(epoch)``: the probe sets at one point, as a history row (per-probe files too).
    ``sets``: ``(name, probes, encoded)``, the run's own probes first with name None."""
    def evaluate(epoch: int) -> dict | None:
        if not sets:
            return None
        row: dict = {"epoch": epoch}
        for name, ps, enc in sets:
            t0 = time.time()
            r = _evaluate(model, tokenizer, ps, enc, cfg, strategy, f"eval {name + ' ' if name else ''}{epoch}" if progress else None)
            summary = {**r.summary(), "seconds": round(time.time() - t0, 3)}
            if name is None:
                row.update(summary)
            else:
                row[name] = summary
            if out is not None:  # per-probe logs: prompt, answer, predicted tokens, accuracy, NLL
                write_jsonl(out / "eval" / f"epoch-{epoch:04d}{'.' + name if name else ''}.jsonl",
                            sample_rows(ps, enc, r.per_probe, tokenizer))
        return row
    return evaluate


def _evaluate(model, tokenizer, probes, encoded, cfg: LearnConfig, strategy: Strategy, desc: str | None) -> EvalResult:
    """:func:`evaluate_probes` over the probes, each process scoring its share (the strategy's)."""
    def score(idx: list[int]) -> list:
        return evaluate_probes(model, tokenizer, [probes[i] for i in idx], cfg.eval.batch_size, cfg.eval.padding_side,
                               [encoded[i] for i in idx], desc).per_probe

    return EvalResult.from_scores(strategy.map_items(score, len(probes)))


def _total_steps(method: CklMethod, windows: list[Window], tc) -> int:
    """Optimizer steps over all epochs (a decaying schedule's length; 0 needs no count)."""
    if tc.lr_schedule == "constant":
        return 0
    return sum(len(method.stream.epoch_steps(windows, e)) for e in range(1, tc.epochs + 1))


def _resume_or_start(r: _Run, state: dict | None, log) -> None:
    """Counters and history from the checkpoint (metrics past it dropped), or the evaluation
    before training; opens the metric log."""
    if state is not None:
        r.start_epoch, r.step, r.history = state["epoch"], state["step"], state["history"]
        r.seconds_before = float(state.get("train_seconds", 0.0))
        log(f"resuming {r.out} after epoch {r.start_epoch}")
    keep = (lambda row: row.get("epoch", 0) <= r.start_epoch) if state is not None else None
    tracking = tracking_loggers(r.out, r.cfg.logger, to_dict(r.cfg))  # TensorBoard, W&B (rank 0's folder only)
    r.logger = open_logger(r.out / "metrics.jsonl" if r.out is not None else None, keep, tracking)
    if state is None:
        row = r.evaluate(0)
        if row:
            r.history.append(row)
            r.logger.log_row({"type": "eval", **row})
            _track_best(r, row)
    elif r.best is not None:
        _restore_best(r, log)


def _train_epoch(r: _Run, epoch: int, progress: bool) -> float:
    """One epoch: the data stream's steps (seeded by epoch), each logged. Returns the mean loss."""
    steps = r.method.stream.epoch_steps(r.windows, epoch)
    torch.manual_seed(r.cfg.train.seed * 100_003 + epoch)  # dropout masks: resumable
    bar = None
    if progress:
        from ..core.progress import progress as progress_bar

        bar = progress_bar(steps, desc=f"epoch {epoch}/{r.cfg.train.epochs}", unit="step", leave=False)
    total = 0.0
    for group in bar if bar is not None else steps:
        row = _train_step(r, group, epoch)
        r.logger.log_row(row)
        total += row["loss"]
        if bar is not None:
            bar.set_postfix(loss=f"{row['loss']:.3f}")
    return total / max(len(steps), 1)


def _train_step(r: _Run, group: list[list[int]], epoch: int) -> dict:
    """One optimizer step over the micro-batches of ``group`` (window indices): forward, weights,
    weighted loss, backward, clip, step. Returns the row.

    Normalisation: L = Σ_b L_b / n, where n counts the step's sequences that carry weight
    (Σ_t m w > 0). A window whose weights are all 0 (an oracle window without the answer, a
    sequence RHO-1 left out) adds nothing and does not dilute the step, so the step size does not
    depend on how documents split into windows. Dynamic weights are known only after each
    micro-batch's forward, so the sum is backpropagated and the gradient divided by n at the end.
    """
    tc, where = r.cfg.train, f"epoch {epoch}, step {r.step + 1}"
    step_sum, n_carry, n_tok, w_sum = 0.0, 0, 0, 0.0
    mine = r.strategy.micro_batches(group)  # this process's share of the step
    for k, mb in enumerate(mine):
        with r.strategy.backward_context(r.model, last=k == len(mine) - 1):
            torch.manual_seed(_micro_batch_seed(tc.seed, epoch, r.step, mb.index))  # dropout: the same for any N
            ws = [r.windows[i] for i in mb.windows]
            batch = collate(ws, r.tokenizer.pad_token_id, r.device,
                            [r.static_weights[i] for i in mb.windows] if r.static_weights is not None else None)
            with _compute_precision(r):
                logits = r.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            losses, mask = token_losses(logits, batch["input_ids"], batch["attention_mask"])  # [B, T]
            valid = mask & batch["loss_mask"].bool()
            wm = r.method.weighting
            weights = dynamic_weights(wm, losses, valid, ws, logits) if wm.dynamic else batch["weights"]
            if tc.known_masking:  # weight 0 where θ (as it is now) already predicts the token
                weights = weights * ~known_tokens(logits, batch["input_ids"], batch["attention_mask"])
            per_seq = weighted_loss_from_token_losses(losses, mask, weights, batch["loss_mask"], reduction="none",
                                                      normalization=wm.normalization)  # [B]
            extra = wm.extra_loss(r.model, batch, logits, valid)  # [B] or None (ASFT's KL anchor)
            loss = (per_seq if extra is None else per_seq + extra).sum()
            if not mb.counts:  # a stand-in: joins the ranks' collectives, adds nothing
                (loss * 0.0).backward()
                continue
            loss.backward()
        step_sum += loss.item()
        carried = (weights * valid).sum(dim=1)  # [B]: each sequence's weight mass
        n_carry += int((carried > 0).sum())
        n_tok += int(valid.sum())
        w_sum += float(carried.sum())
    sums = r.strategy.reduce([step_sum, n_carry, n_tok, w_sum], r.params.values(), r.device)  # the global step's
    step_sum, n_carry, n_tok, w_sum = sums[0], int(sums[1]), int(sums[2]), sums[3]
    check_finite(step_sum, "the training loss", where, _divergence_hint(tc))  # checked on every rank alike
    n = max(n_carry, 1)  # no sequence carries weight: the gradient is 0 anyway
    for p in r.params.values():
        if p.grad is not None:
            p.grad.div_(n)
    step_loss = step_sum / n
    gnorm = torch.nn.utils.clip_grad_norm_(list(r.params.values()),
                                           tc.max_grad_norm if tc.max_grad_norm > 0 else math.inf)
    check_finite(float(r.strategy.full_tensor(gnorm)), "the gradient norm", where, _divergence_hint(tc))
    lr = _set_lr(r)
    r.optimizer.step()
    r.optimizer.zero_grad(set_to_none=True)
    r.step += 1
    return {"type": "step", "epoch": epoch, "step": r.step, "loss": step_loss, "tokens": n_tok,
            "mean_weight": w_sum / max(n_tok, 1), "lr": lr}


def _micro_batch_seed(seed: int, epoch: int, step: int, j: int) -> int:
    """The RNG seed of micro-batch ``j`` of a step: dropout masks depend on the data position,
    not on which rank (or how many) computes it, nor on what ran before (resume)."""
    return (((seed * 1_000_003 + epoch) * 1_000_003 + step) * 1_009 + j) % (2**63 - 1)


def _compute_precision(r: _Run):
    """The forward's precision context: autocast to ``r.autocast_dtype`` where set, else none."""
    if r.autocast_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=r.device.type, dtype=r.autocast_dtype)


def _divergence_hint(tc) -> str:
    return (f"lower train.lr (now {tc.lr:g})"
            + (", keep train.max_grad_norm > 0" if tc.max_grad_norm <= 0 else "")
            + " or use theta.mode=lora")


def _set_lr(r: _Run) -> float:
    """Each param group's lr for the step about to be taken: its base lr times the schedule's
    factor (:func:`taalm.core.schedules.lr_factor`; a function of the step, which checkpoints
    keep, so a resumed run continues the schedule exactly). Returns the first group's lr."""
    tc = r.cfg.train
    factor = lr_factor(r.step + 1, r.total_steps, tc.lr_schedule, tc.warmup_steps, tc.lr_final)
    for group, base in zip(r.optimizer.param_groups, r.base_lrs):
        group["lr"] = base * factor
    return r.optimizer.param_groups[0]["lr"]


def _end_of_epoch(r: _Run, epoch: int, extra: Mapping, log, callbacks: list, loss: float) -> None:
    """Evaluate (every epoch or at the end), log, checkpoint, call the callbacks."""
    tc = r.cfg.train
    row = r.evaluate(epoch) if (r.cfg.eval.every_epoch or epoch == tc.epochs) else None
    if row:
        r.history.append(row)
        r.logger.log_row({"type": "eval", **row})
        _track_best(r, row)
    log(_epoch_message(epoch, loss, row, extra))
    if (r.checkpointer is not None or r.strategy.gathers) and (epoch % tc.checkpoint_every == 0 or epoch == tc.epochs):
        # whole tensors in the files (gathered by every rank where θ is sharded): they resume on any N
        params, optimizer = r.strategy.checkpoint_state(r.params, r.optimizer)
        if r.checkpointer is not None:
            check_params_finite(params, f"the end of epoch {epoch}")  # never checkpoint a diverged θ
            r.checkpointer.save(epoch, params, optimizer,
                                {"epoch": epoch, "step": r.step, "history": r.history,
                                 "train_seconds": round(r.seconds_before + sum(r.epoch_seconds), 3)})
    for cb in callbacks:
        cb({"event": "epoch", "epoch": epoch, "step": r.step, "eval": row, "loss": loss,
            "seconds": r.epoch_seconds[-1]})


BEST_FILE = "best/theta.safetensors"  # train.keep=best: θ's trainable tensors at the best epoch so far


def keep_score(row: dict) -> float | None:
    """``train.keep=best``'s score of one evaluation row: the ``val`` set's accuracy (else the
    run's own probes'), plus the ``kept`` set's where it is measured (learned + kept, CKL's
    Total); None when the row scores no probes."""
    learned = row[VAL]["accuracy"] if VAL in row else row.get("accuracy")
    if learned is None:
        return None
    return float(learned) + (float(row[KEPT]["accuracy"]) if KEPT in row else 0.0)


def _best_tracker(tc, probes, extra: Mapping, log) -> _Best | None:
    """A tracker for ``train.keep=best`` (None for ``last``); refused without probes to score."""
    if tc.keep != "best":
        return None
    if VAL not in extra and not probes:
        raise ConfigError("train.keep=best needs probes to choose the epoch by: give a validation set "
                          "(data.val=PATH, taalm learn --val) or probes", "train.keep")
    if VAL not in extra:
        log("note: train.keep=best chooses the epoch by the run's own probes (no data.val): their score is then "
            "optimistic; give a separate validation set with data.val=PATH")
    return _Best()


def _track_best(r: _Run, row: dict) -> None:
    """A new best score: remember θ's trainable tensors (on the CPU; in the folder too)."""
    score = keep_score(row) if r.best is not None else None
    if r.best is None or score is None or score <= r.best.score:
        return
    r.best.epoch, r.best.score = int(row["epoch"]), score
    r.best.tensors = {k: p.detach().to("cpu", copy=True) for k, p in r.params.items()}
    if r.out is not None:
        save_tensors(r.out / BEST_FILE, r.best.tensors, {"epoch": str(r.best.epoch), "score": repr(score)})


def _restore_best(r: _Run, log) -> None:
    """On resume: the best epoch of the history so far, and its tensors from the run folder."""
    assert r.best is not None
    scored = [(keep_score(row), row["epoch"]) for row in r.history]
    # the first epoch of the highest score, as _track_best keeps it (a later tie is no new best)
    score, epoch = max(((s, e) for s, e in scored if s is not None), key=lambda se: (se[0], -se[1]), default=(None, -1))
    path = r.out / BEST_FILE if r.out is not None else None
    if score is None or path is None or not path.is_file():
        log("note: no saved best epoch to resume from; train.keep=best counts from here")
        return
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        saved_epoch = int((f.metadata() or {}).get("epoch", -1))
    if saved_epoch != epoch:
        log(f"note: the saved best θ is of epoch {saved_epoch}, the history's best is {epoch}; counting from here")
        return
    r.best.epoch, r.best.score, r.best.tensors = epoch, score, load_tensors(path)


def _use_best(r: _Run, log) -> None:
    """At the end of a ``train.keep=best`` run: θ's trainable tensors of the best epoch."""
    if r.best is None or r.best.epoch < 0 or not r.best.tensors:
        return
    last = r.history[-1]["epoch"] if r.history else None
    if r.best.epoch != last:
        with torch.no_grad():
            for k, p in r.params.items():
                p.copy_(r.best.tensors[k].to(device=p.device, dtype=p.dtype))
    log(f"kept θ of epoch {r.best.epoch} (train.keep=best; score {r.best.score:.3f})")


def _epoch_message(epoch: int, loss: float, row: dict | None, extra: Mapping) -> str:
    msg = f"epoch {epoch}: train loss {loss:.4f}"
    if row and "accuracy" in row:
        msg += f", probe accuracy {row['accuracy']:.3f}, answer NLL {row['nll']:.3f}"
    for name in extra:
        if row and name in row:
            msg += f", {name} accuracy {row[name]['accuracy']:.3f}"
    return msg


def _finish(r: _Run, run: Run) -> LearnResult:
    """The result; with a folder: θ, ``summary.json``, the accuracy plot and ``run.json``
    (:meth:`Run.finish <taalm.core.run.Run.finish>`)."""
    log = run.log
    train_seconds = r.seconds_before + sum(r.epoch_seconds)
    _use_best(r, log)
    kept_epoch = r.best.epoch if r.best is not None and r.best.epoch >= 0 else (
        r.history[-1]["epoch"] if r.history else None)
    result = LearnResult(r.model, r.tokenizer, r.history, r.out, train_seconds, r.step,
                         prepare_seconds=r.prepare_seconds, epoch_seconds=r.epoch_seconds, optimizer=r.optimizer,
                         kept_epoch=kept_epoch)
    state = r.strategy.full_state(r.model)  # gathered by every process where θ is sharded, before rank 0 saves
    if r.out is None:
        return result
    if state is not None:  # gathered θ: only FSDP gathers, and it trains theta.mode=full alone (ThetaForm.shardable)
        assert isinstance(r.method.theta, Full)
        saved = r.method.theta.save(r.model, r.tokenizer, r.out, state=state)
    else:
        saved = r.method.theta.save(r.model, r.tokenizer, r.out)
    summary = {"method": r.method.name, "epochs": r.cfg.train.epochs, "steps": r.step,
               "train_seconds": round(train_seconds, 2), "prepare_seconds": round(r.prepare_seconds, 2),
               "epoch_seconds": [round(x, 2) for x in r.epoch_seconds], "history": r.history,
               "saved": str(saved.relative_to(r.out))}
    if r.history:
        chosen = next(row for row in r.history if row["epoch"] == kept_epoch)
        summary.update(before=r.history[0], after=r.history[-1], keep=r.cfg.train.keep, kept_epoch=kept_epoch,
                       result=outcome(chosen, r.history[0]))
    atomic_write_json(r.out / "summary.json", summary)
    if len(r.history) >= 2 and "accuracy" in r.history[0]:
        from ..reporting.plots import plot_history

        plot_history({r.method.name: r.history}, r.out / "accuracy.png")
    result.info = run.finish({**r.info, "config": to_dict(r.cfg)}, device=r.device)
    if not r.cfg.train.keep_checkpoints:
        _remove_checkpoints(r.out)
    return result


def _remove_checkpoints(out: Path) -> None:
    """A completed run's resume state (``checkpoints/``, ``best/``: ours, written by this run) goes;
    θ, the config, metrics and evaluations stay. A symlink there is not ours: left alone."""
    import shutil

    for name in ("checkpoints", "best"):
        p = out / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)


def _check_resumable(folder) -> None:
    """``--resume`` of a run that completed and removed its checkpoints: say so, never restart it."""
    if folder is None or not folder.resume or (folder.path / "checkpoints").exists():
        return
    from ..core.runfolder import read_run_info

    if (read_run_info(folder.path) or {}).get("status") == "complete":
        raise TaalmError(f"{folder.path}: this run completed and removed its checkpoints, so it cannot continue "
                         "(train.keep_checkpoints=true keeps them); learn further from its adapter in a new run")


def check_documents(documents: list[Document], method: WeightingMethod) -> None:
    if not documents:
        raise InputError("no documents to learn")
    for i, d in enumerate(documents):
        if not isinstance(getattr(d, "text", None), str) or not d.text.strip():
            path, _, line = str(getattr(d, "source", "") or "").rpartition(":")
            raise InputError(f"document {i + 1} ({getattr(d, 'id', '?')}) has no text: nothing to learn",
                             path or None, int(line) if line.isdigit() else None, "text")
    if method.needs_answer:
        for d in documents:
            if d.answer is None:
                path, _, line = d.source.rpartition(":")
                raise InputError(f"method '{method.name}' needs the answer of every document",
                                 path or None, int(line) if line.isdigit() else None, "answer")


def check_context_length(model, max_length: int, key: str = "train.max_length") -> None:
    """Refuse windows longer than the model's context (position embeddings)."""
    cfg = getattr(model, "config", None)
    limit = getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None)
    if isinstance(limit, int) and limit > 0 and max_length > limit:
        raise ConfigError(f"{key}={max_length}: longer than the model's context length {limit}", key)


def check_finite(value: float, what: str, where: str, hint: str) -> None:
    """Stop training at the first non-finite loss or gradient (:class:`TrainingDiverged`)."""
    if not math.isfinite(value):
        raise TrainingDiverged(f"{what} is {value} at {where}; {hint}")


def check_params_finite(params: dict, where: str) -> None:
    """Refuse to save θ holding NaN/Inf (a step can overflow the weights without a non-finite
    loss yet); the loss and gradient are checked at every step."""
    if not bool(torch.stack([p.detach().isfinite().all() for p in params.values()]).all()):
        raise TrainingDiverged(f"θ's parameters became NaN/Inf by {where}; lower train.lr")


def record_passed_model(cfg: LearnConfig, model) -> LearnConfig:
    """A model passed from Python is what θ0 is: ``model.name`` records it (its config's
    ``_name_or_path``, else its class), and a peft LoRA model's own adapter settings replace
    ``theta.lora`` left at its defaults (it is used as it is, never wrapped again; settings the
    user gave that contradict it are refused by the lora form). Applied before the resume check,
    so a resumed run compares like with like."""
    import copy

    cfg = copy.deepcopy(cfg)
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    name = str(getattr(base, "taalm_spec", "") or getattr(getattr(base, "config", None), "_name_or_path", "") or "")
    cfg.model.name = name or f"({type(base).__name__} passed from Python)"
    from .theta import THETA_FORMS

    THETA_FORMS.get(cfg.theta.mode).record_passed(cfg.theta, model)  # e.g. a peft model's own adapter settings
    return cfg
