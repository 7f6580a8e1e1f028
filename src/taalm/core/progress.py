"""Progress on long work: a tqdm bar on a terminal, plain lines in a log file.

A bar redrawn with ``\\r`` is what a person at a terminal wants; in a log (``nohup``, a job
scheduler, CI) the same bytes become one endless line of clutter. :func:`progress` therefore
returns tqdm only when stderr is a terminal, and otherwise a :class:`LineProgress` that prints
one line every tenth of the work (or every ``TAALM_PROGRESS_SECONDS`` seconds, default 60,
whichever comes first) and one at the end. Both have the same small interface: iterate, or
``update(n)``; ``set_postfix(**values)``; ``close()``.
"""

from __future__ import annotations

import os
import sys
import time


def progress(iterable=None, *, total: int | None = None, desc: str = "", unit: str = "it", leave: bool = True,
             initial: int = 0, stream=None):
    """A progress bar over ``iterable`` (or ``total`` steps driven by ``update``)."""
    stream = stream if stream is not None else sys.stderr
    if _is_terminal(stream):
        from tqdm.auto import tqdm

        return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave, initial=initial, file=stream)
    return LineProgress(iterable, total=total, desc=desc, unit=unit, initial=initial, stream=stream)


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or not a file
        return False


class LineProgress:
    """Progress as whole lines: ``desc: 30/300 steps (10%), 2.1 steps/s, loss=3.12``."""

    def __init__(self, iterable=None, *, total: int | None = None, desc: str = "", unit: str = "it",
                 initial: int = 0, stream=None):
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.total, self.desc, self.unit, self.n = total, desc, unit, initial
        self.stream = stream if stream is not None else sys.stderr
        self.every = max(1, (total or 0) // 10) if total else 50
        self.seconds = float(os.environ.get("TAALM_PROGRESS_SECONDS", "60"))
        self.start = self.last = time.monotonic()
        self.start_n, self.postfix, self.closed, self._last_n = initial, "", False, initial

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.update(1)
        self.close()

    def __len__(self):
        return self.total or 0

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if self.n % self.every == 0 or now - self.last >= self.seconds:
            self._line(now)

    def set_postfix(self, **values) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def close(self) -> None:
        """The closing line (unless the last line already said it)."""
        if not self.closed:
            self.closed = True
            if self.n != self.start_n and self._last_n != self.n:
                self._line(time.monotonic())

    def _line(self, now: float) -> None:
        done = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        pct = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        rate = (self.n - self.start_n) / max(now - self.start, 1e-9)
        tail = f", {self.postfix}" if self.postfix else ""
        print(f"{self.desc}: {done} {self.unit}{pct}, {rate:.2f} {self.unit}/s{tail}", file=self.stream, flush=True)
        self.last, self._last_n = now, self.n


__all__ = ["progress", "LineProgress"]
