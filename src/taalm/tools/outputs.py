"""Output files of the tools (``--json``, ``--html``, ...): checked before any model loads."""

from __future__ import annotations

from pathlib import Path

from ..core.errors import TaalmError


def check_output_file(path: str | Path | None, option: str, suffix: str | None = None) -> None:
    """An output file's path: not a folder, in a writable folder, ending in ``suffix`` when one is
    required. ``option`` names it in the error (``--json``, ``--html``). None: no such output."""
    from ..core.runfolder import check_writable

    if not path:
        return
    if Path(path).is_dir():
        raise TaalmError(f"{option} {path}: is a folder; give a file name")
    check_writable(Path(path), f"{option} {path}: ")
    if suffix and not str(path).endswith(suffix):
        raise TaalmError(f"{option} {path}: the file name must end in {suffix}")
