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
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping

import torch

from .config import LearnConfig, save_config, to_dict
from .data import Document, Probe, Window, collate, prepare_windows
from .errors import InputError, TaalmError
from .evaluation import EvalResult, encode_probes, evaluate_probes
from .loss import known_tokens, token_losses, weighted_loss_from_token_losses
from .runio import (atomic_write_json, environment_info, load_tensors, read_jsonl, save_tensors,
                    write_jsonl)
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


def load_optimizer_state(path: Path, optimizer, names: list[str]) -> None:
    """Inverse of :func:`save_optimizer_state`."""
    sd = optimizer.state_dict()
    sd["state"] = {}
    for key, value in load_tensors(path).items():
        pname, skey = key.split("::")
        sd["state"].setdefault(names.index(pname), {})[skey] = value
    optimizer.load_state_dict(sd)


def _save_checkpoint(out_dir: Path, epoch: int, step: int, model, optimizer, history: list[dict]) -> None:
    ckpt_root = out_dir / "checkpoints"
    name = f"epoch-{epoch:04d}"
    folder = ckpt_root / name
    params = trainable_parameters(model)
    save_tensors(folder / "trainable.safetensors", params)
    save_optimizer_state(folder / "optimizer.safetensors", optimizer, list(params))
    # the pointer is written last: a checkpoint exists only once it is complete
    atomic_write_json(ckpt_root / "latest.json",
                      {"epoch": epoch, "step": step, "folder": name, "history": history})
    for old in ckpt_root.iterdir():
        if old.is_dir() and old.name != name:
            shutil.rmtree(old, ignore_errors=True)


def _checkpoint_epoch(out_dir: Path) -> int | None:
    latest = out_dir / "checkpoints" / "latest.json"
    return json.loads(latest.read_text())["epoch"] if latest.is_file() else None


def _load_checkpoint(out_dir: Path, model, optimizer) -> dict:
    latest = out_dir / "checkpoints" / "latest.json"
    if not latest.is_file():
        raise TaalmError(f"{out_dir}: nothing to resume (no checkpoints/latest.json)")
    state = json.loads(latest.read_text())
    folder = out_dir / "checkpoints" / state["folder"]
    params = trainable_parameters(model)
    saved = load_tensors(folder / "trainable.safetensors")
    if set(saved) != set(params):
        raise TaalmError(f"{folder}: checkpoint does not match this model/config "
                         f"({len(saved)} saved tensors, {len(params)} trainable)")
    with torch.no_grad():
        for n, p in params.items():
            p.copy_(saved[n])
    load_optimizer_state(folder / "optimizer.safetensors", optimizer, list(params))
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


def _resolve_out_dir(out_dir: str | Path | None, resume: bool, overwrite: bool) -> Path | None:
    if out_dir is None:
        if resume:
            raise TaalmError("resume needs the run folder (out_dir)")
        return None
    out = Path(out_dir)
    if resume:
        if not (out / "checkpoints" / "latest.json").is_file():
            raise TaalmError(f"{out}: nothing to resume (no checkpoints/latest.json)")
    elif out.exists() and any(out.iterdir()):
        if not overwrite:
            raise TaalmError(f"{out}: output folder exists and is not empty "
                             f"(use --resume to continue it, --overwrite to replace it)")
    return out


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
    """
    cfg = config or LearnConfig()
    tc = cfg.train
    if tc.epochs < 0 or tc.batch_size < 1 or tc.grad_accum < 1 or tc.lr <= 0:
        raise TaalmError("train.epochs >= 0, train.batch_size >= 1, train.grad_accum >= 1 and "
                         "train.lr > 0 are required")
    method = method if method is not None else get_method(cfg.method, seed=tc.seed)
    check_documents(documents, method)
    extra = dict(extra_probes or {})
    for name, ps in extra.items():
        if not isinstance(name, str) or not name.isidentifier() or name in _ROW_KEYS or not ps:
            raise TaalmError(f"extra probe set {name!r}: needs a non-empty list of probes and an "
                             f"identifier name other than {', '.join(sorted(_ROW_KEYS))}")
    out = _resolve_out_dir(out_dir, resume, overwrite)

    # ---- θ0 and the data, all validated before anything is written --------------------------
    if model is None:
        from .models import load_model

        log(f"loading {cfg.model.name} ...")
        model, tokenizer = load_model(cfg.model.name, cfg.model.device, cfg.model.dtype, cfg.model.attn)
    elif tokenizer is None:
        raise TaalmError("pass the tokenizer together with the model")
    device = next(model.parameters()).device
    encoded, windows = prepare_windows(tokenizer, documents, tc.max_length, tc.stride)
    probe_enc = encode_probes(tokenizer, probes) if probes else None
    extra_enc = {name: (ps, encode_probes(tokenizer, ps)) for name, ps in extra.items()}

    model = wrap_theta(model, cfg.theta, seed=tc.seed)
    n_train, n_total = count_parameters(model)
    params = trainable_parameters(model)
    optimizer = torch.optim.AdamW(list(params.values()), lr=tc.lr, weight_decay=tc.weight_decay,
                                  betas=tuple(tc.betas))

    def write_run_info(status: str) -> dict:
        info = {**environment_info(device), "status": status, "method": method.name,
                "n_documents": len(documents), "n_windows": len(windows), "n_probes": len(probes or []),
                **({"extra_probes": {k: len(v) for k, v in extra.items()}} if extra else {}),
                "trainable_parameters": n_train, "total_parameters": n_total, "config": to_dict(cfg)}
        atomic_write_json(out / "run.json", info)
        return info

    if out is not None:
        if out.exists() and not resume and overwrite:
            shutil.rmtree(out)
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / "config.yaml")
        write_run_info("running")

    # ---- weights that do not depend on θ: once per document ---------------------------------
    # (before a resumed checkpoint is loaded: θ is still θ0 here, as RHO-1's reference needs)
    static_weights: list[torch.Tensor] | None = None
    t_prepare = time.time()
    method.prepare(PrepareContext(model, tokenizer, encoded, windows, device, tc.batch_size,
                                  documents=documents))
    if not method.dynamic:
        doc_weights = [method.document_weights(i, e) for i, e in enumerate(encoded)]
        static_weights = [doc_weights[w.doc_index][w.start:w.start + len(w.input_ids)] for w in windows]
    prepare_seconds = time.time() - t_prepare
    epoch_seconds: list[float] = []

    def evaluate(epoch: int) -> dict | None:
        if not probes and not extra:
            return None
        row: dict = {"epoch": epoch}
        if probes:
            t0 = time.time()
            r: EvalResult = evaluate_probes(model, tokenizer, probes, cfg.eval.batch_size,
                                            cfg.eval.padding_side, probe_enc, progress, f"eval {epoch}")
            row.update(**r.summary(), seconds=round(time.time() - t0, 3))
            if out is not None:
                write_jsonl(out / "eval" / f"epoch-{epoch:04d}.jsonl", [vars(p) for p in r.per_probe])
        for name, (ps, enc) in extra_enc.items():
            t0 = time.time()
            r = evaluate_probes(model, tokenizer, ps, cfg.eval.batch_size, cfg.eval.padding_side, enc,
                                progress, f"eval {name} {epoch}")
            row[name] = {**r.summary(), "seconds": round(time.time() - t0, 3)}
            if out is not None:
                write_jsonl(out / "eval" / f"epoch-{epoch:04d}.{name}.jsonl", [vars(p) for p in r.per_probe])
        return row

    # ---- resume or start ---------------------------------------------------------------------
    history: list[dict] = []
    start_epoch, step = 0, 0
    metrics: list[dict] = []
    if resume:
        state = _load_checkpoint(out, model, optimizer)
        start_epoch, step, history = state["epoch"], state["step"], state["history"]
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
    train_seconds = 0.0
    model.train()
    try:
        for epoch in range(start_epoch + 1, tc.epochs + 1):
            t_epoch = time.time()
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
            epoch_loss, epoch_rows = 0.0, []
            for group in bar:
                n_seq = sum(len(b) for b in group)
                step_loss, n_tok, w_sum = 0.0, 0, 0.0
                for mb in group:
                    ws = [windows[i] for i in mb]
                    batch = collate(ws, tokenizer.pad_token_id, device,
                                    [static_weights[i] for i in mb] if static_weights is not None else None)
                    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
                    losses, mask = token_losses(logits, batch["input_ids"], batch["attention_mask"])
                    valid = mask & batch["loss_mask"].bool()
                    if method.dynamic:
                        weights = method.step_weights(losses, valid, ws)
                    else:
                        weights = batch["weights"]
                    if tc.known_masking:  # weight 0 where θ (as it is now) already predicts the token
                        weights = weights * ~known_tokens(logits, batch["input_ids"], batch["attention_mask"])
                    loss = weighted_loss_from_token_losses(losses, mask, weights, batch["loss_mask"],
                                                           reduction="sum") / n_seq
                    loss.backward()
                    step_loss += loss.item()
                    n_tok += int(valid.sum())
                    w_sum += float((weights * valid).sum())
                if tc.max_grad_norm > 0:
                    torch.nn.utils.clip_grad_norm_(list(params.values()), tc.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                epoch_loss += step_loss
                epoch_rows.append({"type": "step", "epoch": epoch, "step": step, "loss": step_loss,
                                   "tokens": n_tok, "mean_weight": w_sum / max(n_tok, 1)})
                if progress:
                    bar.set_postfix(loss=f"{step_loss:.3f}")
            epoch_seconds.append(time.time() - t_epoch)
            train_seconds += epoch_seconds[-1]
            metrics.extend(epoch_rows)
            row = evaluate(epoch) if (cfg.eval.every_epoch or epoch == tc.epochs) else None
            if row:
                history.append(row)
                metrics.append({"type": "eval", **row})
            msg = f"epoch {epoch}: train loss {epoch_loss / max(len(groups), 1):.4f}"
            if row and "accuracy" in row:
                msg += f", probe accuracy {row['accuracy']:.3f}, answer NLL {row['nll']:.3f}"
            for name in extra:
                if row and name in row:
                    msg += f", {name} accuracy {row[name]['accuracy']:.3f}"
            log(msg)
            if out is not None:
                write_jsonl(out / "metrics.jsonl", metrics)
                if epoch % max(tc.checkpoint_every, 1) == 0 or epoch == tc.epochs:
                    _save_checkpoint(out, epoch, step, model, optimizer, history)
            for cb in callbacks:
                cb({"event": "epoch", "epoch": epoch, "step": step, "eval": row, "loss": epoch_loss,
                    "seconds": epoch_seconds[-1]})
    except BaseException:  # killed or failed: say so in run.json; the checkpoint stays resumable
        if out is not None and (out / "run.json").is_file():
            info = json.loads((out / "run.json").read_text())
            info.update(status="interrupted", last_checkpoint_epoch=_checkpoint_epoch(out))
            atomic_write_json(out / "run.json", info)
        raise
    model.eval()

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
            from .reporting import plot_history

            plot_history({method.name: history}, out / "accuracy.png")
        result.info = write_run_info("complete")
    return result


__all__ = ["learn", "LearnResult", "micro_batches", "prepare_windows", "check_documents"]
