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

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping

import torch

from ..core.config import LearnConfig, check_config, save_config, to_dict
from ..data import Document, Probe, Window, collate, prepare_windows
from ..core.errors import ConfigError, InputError, TaalmError, TrainingDiverged
from ..evaluation.probes import EvalResult, encode_probes, evaluate_probes
from .loss import known_tokens, token_losses, weighted_loss_from_token_losses
from ..core.files import (atomic_write_json, environment_info, load_tensors, read_jsonl, save_tensors,
                    write_jsonl)
from ..core.runfolder import (RUN_SCHEMA, RunFolder, RunLock, check_resume, check_run_dir, checkpoint_state,
                        commit_checkpoint, fingerprint, newest_usable_checkpoint, read_run_info)
from .theta import count_parameters, save_theta, trainable_parameters, wrap_theta
from .weighting import PrepareContext, WeightingMethod, get_method


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

    @property
    def before(self) -> dict | None:
        return self.history[0] if self.history else None

    @property
    def after(self) -> dict | None:
        return self.history[-1] if self.history else None


# --------------------------------------------------------------------------------------------
# Batching
# --------------------------------------------------------------------------------------------
def micro_batches(windows: list[Window], order: list[int], batch_size: int,
                  batch_tokens: int = 0) -> list[list[int]]:
    """Group window indices (in ``order``) into micro-batches of at most ``batch_size``
    sequences and, if ``batch_tokens`` > 0, at most ``batch_tokens`` padded tokens."""
    batches: list[list[int]] = []
    cur: list[int] = []
    cur_max = 0
    for i in order:
        n = len(windows[i].input_ids)
        new_max = max(cur_max, n)
        too_many = len(cur) >= batch_size or (batch_tokens > 0 and new_max * (len(cur) + 1) > batch_tokens)
        if cur and too_many:
            batches.append(cur)
            cur, new_max = [], n
        cur.append(i)
        cur_max = new_max
    if cur:
        batches.append(cur)
    return batches


def length_grouped_order(windows: list[Window], order: list[int], batch_size: int, group: int,
                         gen) -> list[int]:
    """Reorder a shuffled ``order`` so that batches hold windows of similar length.

    The shuffled order is cut into mega-batches of ``group * batch_size`` windows; each is sorted
    by length (longest first) and cut into batches; the batches are then shuffled with ``gen``.
    Documents still meet in a random order every epoch, but padding drops: on the first 200
    SmolLM2 LAMA-ckl evidence documents (batch 8) padded tokens fall from 2.1x to 1.13x the real
    tokens with ``group=8``. ``group <= 0`` returns ``order`` unchanged.
    """
    if group <= 0 or batch_size <= 1:
        return list(order)
    mega = group * batch_size
    batches: list[list[int]] = []
    for k in range(0, len(order), mega):
        chunk = sorted(order[k:k + mega], key=lambda i: -len(windows[i].input_ids))
        batches += [chunk[j:j + batch_size] for j in range(0, len(chunk), batch_size)]
    perm = torch.randperm(len(batches), generator=gen).tolist()
    return [i for b in perm for i in batches[b]]


# --------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------
def save_optimizer_state(path: Path, optimizer, names: list[str]) -> None:
    """An optimizer's per-parameter state as safetensors, keyed ``<param name>::<state key>``
    (``names`` in the optimizer's parameter order); no pickle."""
    tensors = {}
    for idx, st in optimizer.state_dict()["state"].items():
        for key, value in st.items():
            tensors[f"{names[idx]}::{key}"] = value if torch.is_tensor(value) else torch.tensor(value)
    save_tensors(path, tensors)


def optimizer_state_from_tensors(optimizer, tensors: dict, names: list[str]) -> dict:
    """The ``state_dict`` that :func:`save_optimizer_state`'s tensors describe (checked: every
    key names a known parameter)."""
    sd = optimizer.state_dict()
    sd["state"] = {}
    for key, value in tensors.items():
        pname, _, skey = key.partition("::")
        if pname not in names or not skey:
            raise ValueError(f"optimizer state for unknown parameter {pname!r}")
        sd["state"].setdefault(names.index(pname), {})[skey] = value
    return sd


def load_optimizer_state(path: Path, optimizer, names: list[str]) -> None:
    """Inverse of :func:`save_optimizer_state`."""
    optimizer.load_state_dict(optimizer_state_from_tensors(optimizer, load_tensors(path), names))


def _save_checkpoint(out_dir: Path, epoch: int, step: int, model, optimizer, history: list[dict],
                     extra: dict | None = None) -> None:
    """``checkpoints/epoch-N/``: trainable tensors and optimizer state, then
    :func:`taalm.runfolder.commit_checkpoint` (state, pointer, pruning)."""
    folder = out_dir / "checkpoints" / f"epoch-{epoch:04d}"
    params = trainable_parameters(model)
    check_params_finite(params, f"the end of epoch {epoch}")  # never checkpoint a diverged θ
    save_tensors(folder / "trainable.safetensors", params)
    save_optimizer_state(folder / "optimizer.safetensors", optimizer, list(params))
    commit_checkpoint(out_dir / "checkpoints", folder,
                      {"epoch": epoch, "step": step, "history": history, **(extra or {})}, "epoch-*")


def _checkpoint_epoch(out_dir: Path) -> int | None:
    try:
        return int(json.loads((out_dir / "checkpoints" / "latest.json").read_text())["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _read_checkpoint(folder: Path, latest: dict | None, params: dict, optimizer) -> tuple[dict, dict, dict]:
    """(state, tensors, optimizer state_dict) of one checkpoint folder, fully verified; raises
    ValueError/OSError saying what is wrong. Nothing is loaded into the model here."""
    state = checkpoint_state(folder, latest)
    saved = load_tensors(folder / "trainable.safetensors")
    if set(saved) != set(params):
        raise ValueError(f"does not match this model/config ({len(saved)} saved tensors, {len(params)} trainable)")
    for n, p in params.items():
        if tuple(saved[n].shape) != tuple(p.shape):
            raise ValueError(f"tensor {n} has shape {tuple(saved[n].shape)}, expected {tuple(p.shape)}")
        if not torch.isfinite(saved[n]).all():
            raise ValueError(f"tensor {n} holds NaN/Inf")
    opt_sd = optimizer_state_from_tensors(optimizer, load_tensors(folder / "optimizer.safetensors"), list(params))
    return state, saved, opt_sd


def _load_checkpoint(out_dir: Path, model, optimizer, log: Callable[[str], None] = print) -> dict:
    """Load the newest usable checkpoint (:func:`taalm.runfolder.newest_usable_checkpoint`):
    every candidate is verified in full before anything is loaded."""
    params = trainable_parameters(model)
    state, saved, opt_sd = newest_usable_checkpoint(
        out_dir / "checkpoints", "epoch-*", lambda f, latest: _read_checkpoint(f, latest, params, optimizer),
        log, "the run has not finished an epoch yet")
    with torch.no_grad():
        for n, p in params.items():
            p.copy_(saved[n])
    optimizer.load_state_dict(opt_sd)
    return state


# --------------------------------------------------------------------------------------------
# The learner
# --------------------------------------------------------------------------------------------
_ROW_KEYS = frozenset({"epoch", "accuracy", "nll", "n", "seconds", "type"})  # taken in a history row


def check_documents(documents: list[Document], method: WeightingMethod) -> None:
    if not documents:
        raise InputError("no documents to learn")
    if method.needs_answer:
        for d in documents:
            if d.answer is None:
                path, _, line = d.source.rpartition(":")
                raise InputError(f"method '{method.name}' needs the answer of every document",
                                 path or None, int(line) if line.isdigit() else None, "answer")


def input_paths(*collections) -> list[str]:
    """The files the records (documents, probes) were read from (their ``source`` is
    ``file:line``): a run must never delete them."""
    paths = set()
    for items in collections:
        for it in items or []:
            path, _, line = str(getattr(it, "source", "") or "").rpartition(":")
            if path and line.isdigit():
                paths.add(path)
    return sorted(paths)


def input_fingerprints(documents, probes, extra: Mapping[str, list] | None = None) -> dict:
    """What ``--resume`` compares: every input set's size and content hash."""
    fp = {"documents": fingerprint(documents, ("text", "answer", "id")),
          "probes": fingerprint(probes, ("text", "answer", "answer_start", "id"))}
    for name, ps in (extra or {}).items():
        fp[f"probes.{name}"] = fingerprint(ps, ("text", "answer", "answer_start", "id"))
    return fp


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


def _divergence_hint(tc) -> str:
    return (f"lower train.lr (now {tc.lr:g})"
            + (", keep train.max_grad_norm > 0" if tc.max_grad_norm <= 0 else "")
            + " or use theta.mode=lora")


def _train_epoch(model, windows, static_weights, method, tc, optimizer, params, tokenizer, device,
                 epoch: int, step: int, progress: bool) -> tuple[int, float, list[dict], int]:
    """One epoch: shuffle (seeded by epoch), micro-batches, accumulate, clip, step. Returns
    (step, summed loss, per-step metric rows, number of optimizer steps)."""
    gen = torch.Generator().manual_seed(tc.seed * 100_003 + epoch)
    order = torch.randperm(len(windows), generator=gen).tolist() if tc.shuffle else list(range(len(windows)))
    if tc.shuffle and tc.group_by_length > 0:
        order = length_grouped_order(windows, order, tc.batch_size, tc.group_by_length, gen)
    torch.manual_seed(tc.seed * 100_003 + epoch)  # dropout masks: resumable
    batches = micro_batches(windows, order, tc.batch_size, tc.batch_tokens)
    groups = [batches[i:i + tc.grad_accum] for i in range(0, len(batches), tc.grad_accum)]
    bar = groups
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(groups, desc=f"epoch {epoch}/{tc.epochs}", unit="step", leave=False)
    epoch_loss, rows = 0.0, []
    for group in bar:
        n_seq = sum(len(b) for b in group)
        step_loss, n_tok, w_sum = 0.0, 0, 0.0
        for mb in group:
            ws = [windows[i] for i in mb]
            batch = collate(ws, tokenizer.pad_token_id, device,
                            [static_weights[i] for i in mb] if static_weights is not None else None)
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            losses, mask = token_losses(logits, batch["input_ids"], batch["attention_mask"])  # [B, T]
            valid = mask & batch["loss_mask"].bool()
            weights = method.step_weights(losses, valid, ws) if method.dynamic else batch["weights"]
            if tc.known_masking:  # weight 0 where θ (as it is now) already predicts the token
                weights = weights * ~known_tokens(logits, batch["input_ids"], batch["attention_mask"])
            loss = weighted_loss_from_token_losses(losses, mask, weights, batch["loss_mask"],
                                                   reduction="sum") / n_seq
            value = loss.item()
            check_finite(value, "the training loss", f"epoch {epoch}, step {step + 1}", _divergence_hint(tc))
            loss.backward()
            step_loss += value
            n_tok += int(valid.sum())
            w_sum += float((weights * valid).sum())
        gnorm = torch.nn.utils.clip_grad_norm_(list(params.values()),
                                               tc.max_grad_norm if tc.max_grad_norm > 0 else math.inf)
        check_finite(float(gnorm), "the gradient norm", f"epoch {epoch}, step {step + 1}", _divergence_hint(tc))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        epoch_loss += step_loss
        rows.append({"type": "step", "epoch": epoch, "step": step, "loss": step_loss,
                     "tokens": n_tok, "mean_weight": w_sum / max(n_tok, 1)})
        if progress:
            bar.set_postfix(loss=f"{step_loss:.3f}")
    return step, epoch_loss, rows, len(groups)


def _make_evaluator(model, tokenizer, cfg: LearnConfig, probes, probe_enc, extra_enc: dict,
                    run: "RunFolder | None", progress: bool) -> Callable[[int], dict | None]:
    """``evaluate(epoch)``: the probe sets at one point, as a history row (per-probe files too)."""
    def evaluate(epoch: int) -> dict | None:
        if not probes and not extra_enc:
            return None
        row: dict = {"epoch": epoch}
        out = run.path if run is not None else None
        sets = ([(None, probes, probe_enc)] if probes else []) + [(n, ps, e) for n, (ps, e) in extra_enc.items()]
        for name, ps, enc in sets:
            t0 = time.time()
            r: EvalResult = evaluate_probes(model, tokenizer, ps, cfg.eval.batch_size, cfg.eval.padding_side,
                                            enc, progress, f"eval {name + ' ' if name else ''}{epoch}")
            summary = {**r.summary(), "seconds": round(time.time() - t0, 3)}
            if name is None:
                row.update(summary)
            else:
                row[name] = summary
            if out is not None:
                write_jsonl(out / "eval" / f"epoch-{epoch:04d}{'.' + name if name else ''}.jsonl",
                            [vars(p) for p in r.per_probe])
        return row
    return evaluate


def learn(documents: list[Document], probes: list[Probe] | None = None,
          config: LearnConfig | None = None, out_dir: str | Path | None = None, *,
          resume: bool = False, overwrite: bool = False, model=None, tokenizer=None,
          progress: bool = True, callbacks: Iterable[Callable[[dict], None]] = (),
          log: Callable[[str], None] = print, method: WeightingMethod | None = None,
          extra_probes: Mapping[str, list[Probe]] | None = None) -> LearnResult:
    """Train θ on ``documents`` with the configured weighting method; evaluate ``probes``.

    ``model``/``tokenizer`` may be passed already loaded (else ``config.model`` is loaded). A
    passed model is trained in place (LoRA layers are injected into it); pass
    ``copy.deepcopy(model)`` to keep the original for another run.
    Writes config, metrics, checkpoints and the learned θ into ``out_dir`` (if given).
    ``callbacks`` are called with an event dict after every epoch (``{"event": "epoch", ...}``).
    ``method`` (optional) is a ready weighting-method instance used instead of ``config.method``
    (e.g. :class:`~taalm.weighting.PrecomputedWeights`).
    ``extra_probes`` (optional) are further named probe sets evaluated at the same points as
    ``probes`` (e.g. ``{"nf": not_to_forget}``): each history row gets ``row[name] = {accuracy,
    nll, n, seconds}``, kept in the checkpoints, so a resumed run keeps every set's curve.

    Everything is checked before anything is written (the configuration, the documents, the
    output folder, on ``resume`` that the inputs and configuration are the run's own, then the
    model and the checkpoint); the folder is locked while the run lives (:mod:`taalm.runfolder`).
    A non-finite loss or gradient stops the run (:class:`TrainingDiverged`, status "failed"),
    keeping the last good checkpoint.
    """
    cfg = config or LearnConfig()
    check_config(cfg)  # every range rule of the schema, for configs built in code too
    method = method if method is not None else get_method(cfg.method, seed=cfg.train.seed)
    check_documents(documents, method)
    extra = dict(extra_probes or {})
    for name, ps in extra.items():
        if not isinstance(name, str) or not name.isidentifier() or name in _ROW_KEYS or not ps:
            raise TaalmError(f"extra probe set {name!r}: needs a non-empty list of probes and an "
                             f"identifier name other than {', '.join(sorted(_ROW_KEYS))}")
    out = Path(out_dir) if out_dir is not None else None
    inputs = input_fingerprints(documents, probes, extra)
    check_run_dir(out, resume=resume, overwrite=overwrite,
                  inputs=input_paths(documents, probes, *extra.values()))
    if resume:
        check_resume(read_run_info(out), inputs, to_dict(cfg))
    lock = RunLock(out).acquire() if out is not None else None
    try:
        run = RunFolder(out, resume=resume, overwrite=overwrite) if out is not None else None
        return _learn(documents, probes, extra, cfg, run, inputs, method, model, tokenizer,
                      progress, list(callbacks), log)
    finally:
        if lock is not None:
            lock.release()


def _learn(documents, probes, extra, cfg: LearnConfig, run: RunFolder | None, inputs: dict, method,
           model, tokenizer, progress: bool, callbacks: list, log) -> LearnResult:
    """:func:`learn` once its checks passed and its folder is locked."""
    tc = cfg.train
    # ---- θ0 and the data, all validated before anything is written --------------------------
    if model is None:
        from ..models.loading import load_model

        log(f"loading {cfg.model.name} ...")
        model, tokenizer = load_model(cfg.model.name, cfg.model.device, cfg.model.dtype, cfg.model.attn,
                                      trust_remote_code=cfg.model.trust_remote_code)
    elif tokenizer is None:
        raise TaalmError("pass the tokenizer together with the model")
    check_context_length(model, tc.max_length)
    device = next(model.parameters()).device
    encoded, windows = prepare_windows(tokenizer, documents, tc.max_length, tc.stride)
    probe_enc = encode_probes(tokenizer, probes) if probes else None
    extra_enc = {name: (ps, encode_probes(tokenizer, ps)) for name, ps in extra.items()}

    model = wrap_theta(model, cfg.theta, seed=tc.seed)
    n_train, n_total = count_parameters(model)
    params = trainable_parameters(model)
    optimizer = torch.optim.AdamW(list(params.values()), lr=tc.lr, weight_decay=tc.weight_decay,
                                  betas=tuple(tc.betas))
    state = _load_checkpoint(run.path, model, optimizer, log) if run is not None and run.resume else None

    def write_run_info(status: str, folder: Path | None = None, **more) -> dict:
        info = {"schema": RUN_SCHEMA, **environment_info(device), "status": status, "method": method.name,
                "n_documents": len(documents), "n_windows": len(windows), "n_probes": len(probes or []),
                **({"extra_probes": {k: len(v) for k, v in extra.items()}} if extra else {}),
                "inputs": inputs, "trainable_parameters": n_train, "total_parameters": n_total,
                "config": to_dict(cfg), **more}
        atomic_write_json((folder or run.path) / "run.json", info)
        return info

    if run is not None:  # the run starts for real: the (staged) folder is swapped into place
        run.start(lambda folder: (save_config(cfg, folder / "config.yaml"), write_run_info("running", folder)))

    # ---- weights that do not depend on θ: once per document ---------------------------------
    # (θ is θ0 here unless resumed: RHO-1's reference is θ0 itself only when it is not given)
    static_weights: list[torch.Tensor] | None = None
    t_prepare = time.time()
    method.prepare(PrepareContext(model, tokenizer, encoded, windows, device, tc.batch_size,
                                  documents=documents))
    if not method.dynamic:
        doc_weights = [method.document_weights(i, e) for i, e in enumerate(encoded)]
        static_weights = [doc_weights[w.doc_index][w.start:w.start + len(w.input_ids)] for w in windows]
    prepare_seconds = time.time() - t_prepare
    evaluate = _make_evaluator(model, tokenizer, cfg, probes, probe_enc, extra_enc, run, progress)
    out = run.path if run is not None else None

    # ---- resume or start ---------------------------------------------------------------------
    history, metrics, start_epoch, step, seconds_before = [], [], 0, 0, 0.0
    if state is not None:
        start_epoch, step, history = state["epoch"], state["step"], state["history"]
        seconds_before = float(state.get("train_seconds", 0.0))
        metrics = [m for m in read_jsonl(out / "metrics.jsonl") if m.get("epoch", 0) <= start_epoch]
        log(f"resuming {out} after epoch {start_epoch}")
    else:
        row = evaluate(0)
        if row:
            history.append(row)
            metrics.append({"type": "eval", **row})
    if out is not None:
        write_jsonl(out / "metrics.jsonl", metrics)

    # ---- the loop ------------------------------------------------------------------------------
    epoch_seconds: list[float] = []
    model.train()
    try:
        for epoch in range(start_epoch + 1, tc.epochs + 1):
            t_epoch = time.time()
            step, epoch_loss, rows, n_steps = _train_epoch(model, windows, static_weights, method, tc, optimizer,
                                                           params, tokenizer, device, epoch, step, progress)
            epoch_seconds.append(time.time() - t_epoch)
            metrics.extend(rows)
            row = evaluate(epoch) if (cfg.eval.every_epoch or epoch == tc.epochs) else None
            if row:
                history.append(row)
                metrics.append({"type": "eval", **row})
            log(_epoch_message(epoch, epoch_loss / max(n_steps, 1), row, extra))
            if out is not None:
                write_jsonl(out / "metrics.jsonl", metrics)
                if epoch % tc.checkpoint_every == 0 or epoch == tc.epochs:
                    _save_checkpoint(out, epoch, step, model, optimizer, history,
                                     {"train_seconds": round(seconds_before + sum(epoch_seconds), 3)})
            for cb in callbacks:
                cb({"event": "epoch", "epoch": epoch, "step": step, "eval": row, "loss": epoch_loss,
                    "seconds": epoch_seconds[-1]})
    except TrainingDiverged as e:
        if out is not None:
            _mark(out, "failed", error=str(e), last_checkpoint_epoch=_checkpoint_epoch(out))
        raise
    except BaseException:  # killed or failed: say so in run.json; the checkpoint stays resumable
        if out is not None:
            _mark(out, "interrupted", last_checkpoint_epoch=_checkpoint_epoch(out))
        raise
    model.eval()
    train_seconds = seconds_before + sum(epoch_seconds)
    result = LearnResult(model, tokenizer, history, out, train_seconds, step,
                         prepare_seconds=prepare_seconds, epoch_seconds=epoch_seconds)
    if out is not None:
        saved = save_theta(model, tokenizer, out, cfg.theta.mode)
        summary = {"method": method.name, "epochs": tc.epochs, "steps": step,
                   "train_seconds": round(train_seconds, 2), "prepare_seconds": round(prepare_seconds, 2),
                   "epoch_seconds": [round(x, 2) for x in epoch_seconds], "history": history,
                   "saved": str(saved.relative_to(out))}
        if history:
            summary.update(before=history[0], after=history[-1])
        atomic_write_json(out / "summary.json", summary)
        if len(history) >= 2 and "accuracy" in history[0]:
            from ..reporting.output import plot_history

            plot_history({method.name: history}, out / "accuracy.png")
        result.info = write_run_info("complete")
    return result


def _epoch_message(epoch: int, loss: float, row: dict | None, extra: Mapping) -> str:
    msg = f"epoch {epoch}: train loss {loss:.4f}"
    if row and "accuracy" in row:
        msg += f", probe accuracy {row['accuracy']:.3f}, answer NLL {row['nll']:.3f}"
    for name in extra:
        if row and name in row:
            msg += f", {name} accuracy {row[name]['accuracy']:.3f}"
    return msg


def _mark(out: Path, status: str, **fields) -> None:
    """Set ``run.json``'s status (and fields) of a started run."""
    info = read_run_info(out)
    if info is not None:
        info.update(status=status, **fields)
        atomic_write_json(out / "run.json", info)


__all__ = ["learn", "LearnResult", "micro_batches", "prepare_windows", "check_documents", "check_context_length",
           "input_fingerprints", "input_paths"]
