"""Metric logging behind a small interface: the training loops call ``log_row`` / ``log_scalars``
and ``close``, never a file API, so another backend (TensorBoard, W&B) plugs in without touching
the loops.

The default, :class:`JsonlLogger`, appends one JSON line per row and flushes it: the file is never
rewritten while a run lives (a step costs one line of I/O, not a rewrite of the whole log). A
resumed run first drops the rows past its checkpoint (``keep``), which is the only rewrite, done
once and atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

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


class NullLogger(MetricLogger):
    """Writes nothing (a run without an output folder); keeps the rows in memory."""

    def __init__(self):
        self.rows: list[dict] = []

    def log_row(self, row: dict) -> None:
        self.rows.append(row)


class JsonlLogger(MetricLogger):
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


def open_logger(path: str | Path | None, keep: Callable[[dict], bool] | None = None) -> MetricLogger:
    """A :class:`JsonlLogger` at ``path``, or a :class:`NullLogger` when there is no folder."""
    return JsonlLogger(path, keep) if path is not None else NullLogger()
