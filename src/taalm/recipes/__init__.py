"""The shipped recipes: YAML files of configuration keys, one per documented run.

``taalm recipes`` lists them, ``taalm recipes cp NAME DEST`` copies one out to edit (as
torchtune's ``tune ls`` / ``tune cp``), and ``--config NAME`` accepts a shipped recipe's name
where no file of that name exists. ``phi_*`` recipes are for ``taalm train-attention``, the
others for ``taalm learn``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def shipped_recipes() -> dict[str, Path]:
    """name (file name without ``.yaml``) -> path, sorted by name."""
    return {p.stem: p for p in sorted(HERE.glob("*.yaml"))}


def recipe_path(name: str) -> Path | None:
    """The shipped recipe called ``name`` (with or without ``.yaml``), else None."""
    stem = name[:-5] if name.endswith(".yaml") else name
    return shipped_recipes().get(stem) if "/" not in name and "\\" not in name else None


def recipe_summary(path: Path) -> str:
    """The recipe's first comment sentence (its header says what it is for)."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#") or line.startswith("#  "):  # the header ends at its example commands
            break
        lines.append(line.lstrip("# ").strip())
    text = " ".join(x for x in lines if x)
    end = text.find(". ")
    return (text[: end + 1] if end > 0 else text).rstrip(":")


def copy_recipe(name: str, dest: str | Path) -> Path:
    """Copy shipped recipe ``name`` to ``dest`` (a folder, or a new file name); never overwrites."""
    from ..core.errors import TaalmError

    src = recipe_path(name)
    if src is None:
        raise TaalmError(f"no shipped recipe {name!r} (taalm recipes lists them: {', '.join(shipped_recipes())})")
    dest = Path(dest)
    target = dest / src.name if dest.is_dir() else dest
    if target.exists():
        raise TaalmError(f"{target}: exists; taalm never overwrites a file it did not create (choose another name)")
    if not target.parent.is_dir():
        raise TaalmError(f"{target.parent}: no such folder")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)  # O_EXCL: never a planted file
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(src.read_bytes())
        os.chmod(tmp, 0o644)
        try:
            os.link(tmp, target)  # atomic and never replaces: a file that appeared meanwhile stays
        except FileExistsError:
            raise
        except OSError:  # a file system without hard links: create the target exclusively instead
            with os.fdopen(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644), "wb") as f:
                f.write(src.read_bytes())
    except FileExistsError:
        raise TaalmError(f"{target}: exists; taalm never overwrites a file it did not create (choose another name)") from None
    finally:
        os.unlink(tmp)
    return target


__all__ = ["shipped_recipes", "recipe_path", "recipe_summary", "copy_recipe"]
