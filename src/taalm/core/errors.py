"""Errors that a user can fix.

Every problem with user input (files, configuration, method names) is raised as a
:class:`TaalmError` whose message names the file, the line and the field involved. The CLI
prints the message on one line and exits with status 2; library users catch the exception.
No torch import here: the CLI must stay fast to start.
"""

from __future__ import annotations

import re
from pathlib import Path

#: what a terminal acts on rather than shows: C0 controls but tab and newline (ESC, CR, BEL,
#: backspace...), DEL, C1 controls, the bidirectional overrides that reorder what is shown, and lone
#: surrogates (no text: they cannot even be encoded for the terminal)
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def printable(text: str, one_line: bool = False) -> str:
    """``text`` safe to print on a terminal: every control character of user data (a document id,
    a file name, a field's value) written as its escape (``\\x1b``), so it cannot move the cursor,
    recolour or hide what follows. ``one_line``: newlines and tabs escaped too."""
    out = _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), str(text))
    return out.replace("\n", "\\n").replace("\t", "\\t") if one_line else out


class TaalmError(Exception):
    """A problem the user can fix; the message says what and where."""


class InputError(TaalmError):
    """Bad input data: names the file, the (1-based) line and the field when known."""

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None,
                 field: str | None = None):
        self.path = str(path) if path is not None else None
        self.line = line
        self.field = field
        self.reason = message
        where = []
        if self.path is not None:
            where.append(self.path)
        if line is not None:
            where.append(f"line {line}")
        if field is not None:
            where.append(f"field '{field}'")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


class ConfigError(TaalmError):
    """Unknown configuration key, wrong type, or bad recipe file. ``key`` is the dotted key."""

    def __init__(self, message: str, key: str | None = None):
        self.key = key
        super().__init__(message)


class ModelLoadError(TaalmError):
    """A model could not be found or loaded; the message says how to fix it."""


class TrainingDiverged(TaalmError):
    """Training met a non-finite loss or gradient; the run is marked failed, its last good
    checkpoint kept. Exit status 1 (a failed run, not bad input)."""

    exit_code = 1
