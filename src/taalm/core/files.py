"""Files: atomic writes, safetensors, JSON/JSONL, and the metadata that makes a run self-describing.

Nothing is ever left half-written: every file is written to a temporary sibling and renamed
into place (rename is atomic on POSIX). Tensors go to safetensors, everything else to JSON,
JSONL or YAML; never pickle.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temporary sibling, then rename: readers see the old file or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def finite_json(obj: Any, where: str = "") -> tuple[Any, list[str]]:
    """``obj`` with every NaN/Inf float replaced by None, and the dotted keys where that happened.
    JSON has no NaN: a bare ``NaN`` makes a file that strict readers refuse."""
    import math

    if isinstance(obj, float) and not math.isfinite(obj):
        return None, [where or "<value>"]
    if isinstance(obj, dict):
        out: dict[Any, Any] = {}
        bad: list[str] = []
        for k, v in obj.items():
            out[k], b = finite_json(v, f"{where}.{k}" if where else str(k))
            bad += b
        return out, bad
    if isinstance(obj, (list, tuple)):
        items: list[Any] = []
        bad = []
        for i, v in enumerate(obj):
            x, b = finite_json(v, f"{where}[{i}]")
            items.append(x)
            bad += b
        return items, bad
    return obj, []


def _dumps(obj: Any, **kw) -> str:
    clean, bad = finite_json(obj)
    if bad and isinstance(clean, dict):  # say why a value is null
        clean["nonfinite"] = {"keys": bad, "note": "these values were NaN or Inf; JSON has no such numbers, so null"}
    return json.dumps(clean, ensure_ascii=False, allow_nan=False, **kw)


def json_line(row: Any) -> str:
    """One JSON Lines line (with its newline); NaN/Inf as in :func:`atomic_write_json`."""
    return _dumps(row) + "\n"


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """JSON, atomically; NaN/Inf become null, listed under ``nonfinite`` (:func:`finite_json`)."""
    atomic_write_text(path, _dumps(obj, indent=2) + "\n")


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> None:
    """JSON Lines, atomically; NaN/Inf as in :func:`atomic_write_json`."""
    atomic_write_text(path, "".join(_dumps(r) + "\n" for r in rows))


def read_jsonl(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def save_tensors(path: str | Path, tensors: dict, metadata: dict[str, str] | None = None) -> None:
    """safetensors file, written atomically. Tensors are made contiguous and moved to CPU."""
    from safetensors.torch import save

    flat = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    atomic_write_bytes(path, save(flat, metadata=metadata))


def load_tensors(path: str | Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


def git_commit(start: str | Path | None = None) -> str | None:
    """Commit of the git checkout holding ``start`` (default: this package), with '+dirty' if changed."""
    start = Path(start or Path(__file__).resolve().parent)
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=start, capture_output=True,
                                text=True, timeout=5)
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=start,
                               capture_output=True, text=True, timeout=5)
        return commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def environment_info(device: Any = None) -> dict:
    """Versions, machine and device: written into every run folder."""
    from importlib import metadata

    versions: dict[str, str | None] = {}
    for pkg in ("taalm", "torch", "transformers", "peft", "safetensors", "gguf", "numpy"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    info = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]) if sys.argv else None,
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "versions": versions,
    }
    if device is not None:
        info["device"] = str(device)
        try:
            import torch

            from .devices import device_name

            if device_name(device) is not None:
                info["device_name"] = device_name(device)
            info["torch_threads"] = torch.get_num_threads()
        except Exception:  # pragma: no cover - informational only
            pass
    return info
