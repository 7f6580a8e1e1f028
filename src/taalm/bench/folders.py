"""Benchmark folders (LAMA-ckl and streams alike): the record a folder is reused for, the files a
benchmark wrote read back with one clear error, each method's options, and run-time facts."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from ..core.config import to_dict
from ..ckl.config import LearnConfig
from ..core.errors import TaalmError
from ..core.runfolder import interrupted_write, remove_interrupted_writes


def read_json_object(path: Path, needs: tuple[str, ...] = ()) -> dict:
    """A JSON object that the benchmark wrote (``bench.json``, ``result.json``, ...), checked: a
    damaged or odd file is one clear error naming it, never a traceback."""
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise TaalmError(f"{path}: damaged ({str(e)[:80]}); delete it to redo that part, or use another --out") from None
    missing = [k for k in needs if not isinstance(obj, dict) or k not in obj]
    if not isinstance(obj, dict) or missing:
        what = f"a {type(obj).__name__}" if not isinstance(obj, dict) else f"no {missing[0]!r}"
        raise TaalmError(f"{path}: not a file the benchmark wrote ({what}); delete it to redo that part, "
                         f"or use another --out")
    return obj


def check_out_dir(out: Path, record: dict, marker: str = "bench.json", retired: Iterable[str] = ()) -> None:
    """A folder is reused only for the same benchmark record (in ``marker``). Keys a newer taalm
    added to the schema (absent from the folder's record) hold their defaults there, so they are
    not compared; nor are the ``retired`` keys (dotted paths, e.g. ``config.stream.min_chars``)
    that an older taalm recorded and that no longer bear on the run."""
    marker_name = marker
    marker = out / marker_name
    if marker.is_file():
        old = read_json_object(marker)
        old_rec = {k: old.get(k) for k in record}
        for key in retired:
            *parents, last = key.split(".")
            node = old_rec
            for k in parents:
                node = node.get(k) if isinstance(node, dict) else None
            if isinstance(node, dict):
                node.pop(last, None)
        new_rec = _without_new_keys(json.loads(json.dumps(record)), old_rec)
        if old_rec != new_rec:
            diff = _first_difference(old_rec, new_rec)
            raise TaalmError(f"{out}: holds a benchmark run with another configuration or data "
                             f"({diff} differs); use another --out folder")
    elif out.exists() and (not out.is_dir() or any(not interrupted_write(p.name, (marker_name,))
                                                   for p in out.iterdir())):  # a killed marker write: ours
        raise TaalmError(f"{out}: exists and is not a benchmark folder (no {marker_name}); use another --out folder")


def _without_new_keys(new, old):
    if isinstance(new, dict) and isinstance(old, dict):
        return {k: _without_new_keys(v, old[k]) for k, v in new.items() if k in old}
    return new


def _first_difference(a, b, prefix: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(a) + [k for k in b if k not in a]:
            if a.get(k) != b.get(k):
                return _first_difference(a.get(k), b.get(k), f"{prefix}{k}.")
    return prefix.rstrip(".") or "<top>"


def _method_options(method_cfg: dict, name: str):
    """A method's own options (``method.<name>.*``; None for methods without options)."""
    return method_cfg.get(name) if isinstance(method_cfg.get(name), dict) else None


def check_method_options(out: Path, name: str, cfg: LearnConfig) -> None:
    """A finished or started method must have been run with the same ``method.<name>.*``."""
    import yaml

    want = _method_options(to_dict(cfg.method), name)
    done, started = out / name / "result.json", out / name / "run" / "config.yaml"
    if done.is_file():
        had = _method_options(read_json_object(done, ("config",))["config"].get("method", {}), name)
    elif started.is_file():
        had = _method_options((yaml.safe_load(started.read_text()) or {}).get("method", {}), name)
    else:
        return
    if json.loads(json.dumps(had)) != json.loads(json.dumps(want)):
        raise TaalmError(f"{out / name}: was run with method.{name} = {had}, now {want}; "
                         f"use another --out folder (or delete {out / name})")


@dataclass
class MethodFolders:
    """A benchmark folder of one sub-folder per method (LAMA-ckl, streams): ``OUT/<marker>``
    records what the folder is for; ``OUT/<method>/result.json`` (written last) means the method is
    done, and a rerun reuses it; another record in the folder, or files the benchmark did not
    write, are refused; an interrupted write is cleaned up."""

    out: Path
    marker: str  # e.g. "bench.json": the benchmark record
    top_files: tuple[str, ...]  # what the benchmark writes at the top of the folder (the marker too)
    read_result: Callable[[Path], dict]  # a finished method's result.json, checked

    def check(self, record: dict, methods: Iterable[str], cfg: LearnConfig, retired: Iterable[str] = ()) -> None:
        """Before anything runs: the folder holds this record (or is new), and each method ran
        there (if at all) with the same ``method.<name>.*``."""
        check_out_dir(self.out, record, self.marker, retired)
        for name in methods:
            check_method_options(self.out, name, cfg)

    def open(self, record: dict, methods: Iterable[str]) -> None:
        """The folder made, a killed run's temporary files removed, the record written once."""
        from ..core.files import atomic_write_json

        self.out.mkdir(parents=True, exist_ok=True)
        remove_own_interrupted_writes(self.out, self.top_files, methods)
        if not (self.out / self.marker).is_file():
            atomic_write_json(self.out / self.marker, record)

    def run(self, methods: Iterable[str], run_one: Callable[[str], dict], log: Callable[[str], None],
            before_each: Callable[[], None] | None = None) -> dict[str, dict]:
        """Each method in turn: a finished one's result read back (skipped), the others run."""
        results: dict[str, dict] = {}
        for name in methods:
            if before_each is not None:
                before_each()
            done = self.out / name / "result.json"
            if done.is_file():
                log(f"[{name}] done already ({done}); skipped")
                results[name] = self.read_result(done)
                continue
            results[name] = run_one(name)
        return results

    def with_earlier(self, results: dict[str, dict]) -> dict[str, dict]:
        """``results`` and every other method with a result in the folder (earlier ``--methods``)."""
        for d in sorted(self.out.iterdir()):
            if d.is_dir() and d.name not in results and (d / "result.json").is_file():
                results[d.name] = self.read_result(d / "result.json")
        return results


def peak_memory(device) -> dict:
    import resource  # POSIX

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    rss_mib = rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024
    out = {"ru_maxrss_mib": round(rss_mib, 1),
           "ru_maxrss_note": "peak RSS of the whole process so far (includes earlier methods)"}
    from ..core.devices import peak_memory_mib

    peak = peak_memory_mib(device)
    if peak is not None:
        out["cuda_max_allocated_mib"] = round(peak, 1)
    return out


def fmt_time(seconds: float) -> str:
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    m, s = divmod(int(round(seconds)), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}" if m >= 60 else f"{m}:{s:02d} min"


def sha256_file(path: Path) -> str:
    """The sha256 of an input file, recorded so a rerun on other data is refused."""
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def remove_own_interrupted_writes(out: Path, top_files: tuple[str, ...], methods) -> None:
    """A benchmark folder's temporary files of atomic writes that a kill interrupted: at its top
    those of ``top_files``; in the folder of each of the ``methods`` run now (all of it the
    benchmark's) any."""
    remove_interrupted_writes(out, top_files)
    for m in methods:
        if (out / m).is_dir() and not (out / m).is_symlink():
            remove_interrupted_writes(out / m, None)


__all__ = ["MethodFolders", "remove_own_interrupted_writes", "sha256_file", "read_json_object", "check_out_dir", "check_method_options", "peak_memory", "fmt_time"]
