"""Metric logging behind a small interface: the training loops call ``log_row`` / ``log_scalars``
and ``close``, never a file API, so another backend (TensorBoard, W&B) plugs in without touching
the loops.

The default, :class:`JsonlLogger`, appends one JSON line per row and flushes it: the file is never
rewritten while a run lives (a step costs one line of I/O, not a rewrite of the whole log). A
resumed run first drops the rows past its checkpoint (``keep``), which is the only rewrite, done
once and atomically.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Callable, Sequence

from .files import atomic_write_text, json_line, read_jsonl


class MetricLogger:
    """The interface the loops use. ``log_scalars(step, values)`` is ``log_row({"step": step, ...})``
    unless a backend has a better notion of a scalar series."""

    def log_row(self, row: dict) -> None:
        raise NotImplementedError

    def log_scalars(self, step: int, values: dict[str, float]) -> None:
        self.log_row({"step": step, **values})

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class RowLogger(MetricLogger):
    """A logger that also keeps every row it logged, in order (``rows``): what :func:`open_logger` returns."""

    rows: list[dict]


class NullLogger(RowLogger):
    """Writes nothing (a run without an output folder); keeps the rows in memory."""

    def __init__(self):
        self.rows: list[dict] = []

    def log_row(self, row: dict) -> None:
        self.rows.append(row)


class JsonlLogger(RowLogger):
    """Append-only JSONL file, flushed per row; non-finite numbers become ``null`` (listed under
    ``nonfinite``), as in every JSON file taalm writes (:func:`taalm.core.files.json_line`).

    ``keep`` (on resume): rows of an existing file for which it returns True are kept, the others
    dropped, once, before appending; without ``keep`` an existing file is started afresh.
    """

    def __init__(self, path: str | Path, keep: Callable[[dict], bool] | None = None):
        self.path = Path(path)
        rows = self._existing(keep) if keep is not None else []
        self.rows: list[dict] = list(rows)  # every row of the file, in order (the run's history)
        atomic_write_text(self.path, "".join(self._line(r) for r in rows))
        self._fh = open(self.path, "a", encoding="utf-8")

    def _existing(self, keep: Callable[[dict], bool]) -> list[dict]:
        return [r for r in read_jsonl(self.path) if keep(r)]

    @staticmethod
    def _line(row: dict) -> str:
        return json_line(row)

    def log_row(self, row: dict) -> None:
        self._fh.write(self._line(row))
        self._fh.flush()
        self.rows.append(row)

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()


LOGGERS = ("jsonl", "tensorboard", "wandb")


def _scalars(row: dict, prefix: str = "") -> dict[str, float]:
    """The row's numbers, nested sets flattened (``{"nf": {"accuracy": .8}}`` -> ``nf/accuracy``)."""
    out = {}
    for k, v in row.items():
        if isinstance(v, bool) or k in ("type",):
            continue
        if isinstance(v, (int, float)):
            out[f"{prefix}{k}"] = float(v)
        elif isinstance(v, dict):
            out.update(_scalars(v, f"{prefix}{k}/"))
    return out


def _x(row: dict) -> int:
    """A row's position: the optimizer step, the φ update, else the epoch."""
    for key in ("step", "update", "epoch"):
        if isinstance(row.get(key), int):
            return row[key]
    return 0


class TensorBoardLogger(MetricLogger):
    """TensorBoard event files in ``log_dir``: each row's numbers as scalars named
    ``<row type>/<key>`` at the row's step (update, epoch). Needs the ``tensorboard`` extra."""

    def __init__(self, log_dir: str | Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            from .errors import ConfigError

            raise ConfigError("logger=tensorboard needs the tensorboard package: pip install 'taalm[tensorboard]'",
                              "logger") from None
        self.writer = SummaryWriter(log_dir=str(log_dir))

    def log_row(self, row: dict) -> None:
        kind, x = row.get("type", "row"), _x(row)
        for k, v in _scalars(row).items():
            if k not in ("step", "update", "epoch"):
                self.writer.add_scalar(f"{kind}/{k}", v, x)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class WandbLogger(MetricLogger):
    """Weights & Biases: one W&B run per taalm run folder (its id kept in ``<folder>/wandb_run_id``,
    so a resumed taalm run continues the same W&B run); project ``$WANDB_PROJECT`` (default
    ``taalm``); offline with ``WANDB_MODE=offline``. Needs the ``wandb`` extra."""

    def __init__(self, folder: str | Path, config: dict | None = None):
        try:
            import wandb
        except ImportError:
            from .errors import ConfigError

            raise ConfigError("logger=wandb needs the wandb package: pip install 'taalm[wandb]'", "logger") from None
        folder = Path(folder)
        id_file = folder / "wandb_run_id"
        run_id = id_file.read_text().strip() if id_file.is_file() else secrets.token_hex(4)  # W&B ids: [a-z0-9]
        atomic_write_text(id_file, run_id + "\n")
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "taalm"), name=folder.name, id=run_id,
                              resume="allow", dir=str(folder), config=config or {}, reinit="create_new")

    def log_row(self, row: dict) -> None:
        kind = row.get("type", "row")
        self.run.log({f"{kind}/{k}": v for k, v in _scalars(row).items()})

    def close(self) -> None:
        self.run.finish()


class MultiLogger(RowLogger):
    """A run folder's JSONL file plus tracking backends (TensorBoard, W&B). Rows without a
    ``type`` reach the backends typed ``kind`` (the file's name). ``owns``: whether closing this
    logger closes the backends (meta-training shares one W&B run between its two files)."""

    def __init__(self, jsonl: MetricLogger, tracking: list[MetricLogger], kind: str, owns: bool = True):
        self.jsonl, self.tracking, self.kind, self.owns = jsonl, list(tracking), kind, owns
        self.rows = getattr(jsonl, "rows", [])

    def log_row(self, row: dict) -> None:
        self.jsonl.log_row(row)
        typed = row if "type" in row else {"type": self.kind, **row}
        for lg in self.tracking:
            lg.log_row(typed)

    def close(self) -> None:
        self.jsonl.close()
        if self.owns:
            for lg in self.tracking:
                lg.close()


def logger_names(spec: str) -> list[str]:
    """``"jsonl,tensorboard"`` -> the backend names in order, once each (checked against
    :data:`LOGGERS` by the configuration's rules, before any run starts)."""
    return list(dict.fromkeys(n.strip() for n in str(spec).split(",") if n.strip()))


def tracking_loggers(folder: str | Path | None, loggers: str = "jsonl", config: dict | None = None) -> list[MetricLogger]:
    """The tracking backends ``loggers`` names beyond jsonl, for run folder ``folder``:
    TensorBoard event files in ``<folder>/tensorboard``, a W&B run (none without a folder)."""
    if folder is None:
        return []
    folder = Path(folder)
    return [TensorBoardLogger(folder / "tensorboard") if name == "tensorboard" else WandbLogger(folder, config)
            for name in logger_names(loggers) if name != "jsonl"]  # jsonl: always, the run folder's record


def open_logger(path: str | Path | None, keep: Callable[[dict], bool] | None = None,
                tracking: Sequence[MetricLogger] = (), owns: bool = True) -> RowLogger:
    """A :class:`JsonlLogger` at ``path`` (plus the ``tracking`` backends of
    :func:`tracking_loggers`), or a :class:`NullLogger` when there is no folder."""
    if path is None:
        return NullLogger()
    jsonl = JsonlLogger(path, keep)
    return MultiLogger(jsonl, list(tracking), Path(path).stem, owns) if tracking else jsonl
