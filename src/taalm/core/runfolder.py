"""Run folders that never lose a user's data: the one home of their life cycle.

A run folder (``taalm learn --out``, ``taalm train-attention --out``) goes through:

1. **checks, before anything is written or loaded** (:func:`check_run_dir`): ``--out`` is not a
   file, its parent is writable, ``--resume`` finds a taalm run, and ``--overwrite`` only ever
   replaces a folder that taalm created (one holding a ``run.json`` of a taalm run) and that
   holds none of the run's inputs;
2. **a lock** (:class:`RunLock`) for the run's lifetime: an ``O_EXCL`` lock file beside the folder
   holding the owner's pid and host; a second run into the same folder is refused, a lock left by
   a dead process is recognised and taken over;
3. **the start** (:meth:`RunFolder.start`), once the configuration, the inputs and the model have
   passed every check: a new run is written into a temporary sibling first and swapped into
   place, so ``--overwrite`` deletes the previous run only when the new one really starts;
4. **resume verification** (:func:`check_resume`): the inputs' fingerprints and the resolved
   configuration recorded in ``run.json`` must match (more epochs are allowed).

Inside a folder taalm made, a symlink that leads out of it is never followed: ``--resume``,
``--overwrite`` and a tool or benchmark continuing its folder refuse it (:func:`check_no_symlinks`).
The temporary file an atomic write leaves when it is killed (``.<name>.<8 random>.tmp``) is
taalm's own: not a foreign file, and removed on the next run (:func:`remove_interrupted_writes`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import stat
import time
from pathlib import Path
from typing import Iterable

from .errors import TaalmError
from .files import atomic_write_json

RUN_SCHEMA = "taalm.run/1"  # the "schema" key of run.json: this folder was made by taalm
_LEGACY_RUN_KEYS = {"status", "config", "versions", "git_commit"}  # run.json of runs made before the key


#: every name a run of ``learn`` or ``train-attention`` writes at the top of its folder: ``--overwrite``
#: replaces only a folder that holds nothing else (and a run.json of the keys of earlier runs counts
#: as a taalm run only in such a folder: a hand-made run.json beside a user's files does not)
RUN_FILES = frozenset({
    "run.json", "config.yaml", "summary.json", "checkpoints", "tensorboard", "wandb", "wandb_run_id",
    "metrics.jsonl", "accuracy.png", "eval", "adapter", "model", "kadapter",  # learn
    "log.jsonl", "val.jsonl", "val_references.json", "weights_before.json", "best", "phi",  # train-attention
    "validation.png", "weights.png", "weights.html",
})


#: the name :func:`~taalm.core.files.atomic_write_bytes` gives its temporary file: ``.<name>.<8 random>.tmp``
#: (``tempfile.mkstemp``); one left behind is the write of a killed taalm process
_INTERRUPTED_WRITE = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp$")


def interrupted_write(name: str, owned: Iterable[str] | None = None) -> bool:
    """``name`` is the temporary file of an atomic write that a kill interrupted (of one of the
    ``owned`` names when given): taalm's own, removed on a rerun, ``--overwrite`` or ``--resume``."""
    m = _INTERRUPTED_WRITE.match(name)
    return m is not None and (owned is None or m.group("name") in owned)


def remove_interrupted_writes(folder: Path, owned: Iterable[str] | None) -> list[Path]:
    """Delete the temporary files of interrupted atomic writes in ``folder``: at its top those of
    the ``owned`` names (None: the whole folder is taalm's), below them any (everything below an
    owned name is taalm's). Regular files only; a symlink is never followed. Returns what was deleted."""
    names = set(owned) if owned is not None else None
    gone = []
    for root, dirs, files in os.walk(folder):
        top = Path(root) == Path(folder) and names is not None
        if top and names is not None:
            dirs[:] = [d for d in dirs if d in names]
        for name in files:
            p = Path(root) / name
            if interrupted_write(name, names if top else None) and p.is_file() and not p.is_symlink():
                p.unlink()
                gone.append(p)
    return gone


def check_no_symlinks(folder: Path, doing: str) -> None:
    """Refuse a symlink anywhere inside ``folder`` (a folder taalm made; ``folder`` itself may be a
    link the user gave as --out) that leads out of it: taalm never deletes, overwrites or continues
    through one. A link to a place inside the folder (wandb's ``latest-run``) leads nowhere else.
    Inside ``wandb/`` (W&B's own files, which link to its logs in ~/.cache; taalm writes nothing
    there) links are W&B's. ``doing``: what the command was about to do, for the message."""
    real = Path(os.path.realpath(folder))
    for root, dirs, files in os.walk(folder):  # followlinks=False: a linked folder is listed, not entered
        if Path(root) == Path(folder) and (Path(root) / "wandb").is_dir():
            dirs[:] = [d for d in dirs if d != "wandb" or (Path(root) / d).is_symlink()]
        for name in sorted(dirs + files):
            p = Path(root) / name
            if p.is_symlink() and not _inside(Path(os.path.realpath(p)), real):
                raise TaalmError(f"{p}: a symlink inside a folder taalm made ({doing} would follow it to "
                                 f"{os.path.realpath(p)}); taalm never writes or deletes through a link. Remove "
                                 f"the link (its target stays as it is), or choose another --out")


def foreign_files(folder: Path) -> list[str]:
    """Names at the top of ``folder`` that no taalm run writes (sorted); the temporary files of
    interrupted writes of run files are taalm's."""
    try:
        return sorted(p.name for p in Path(folder).iterdir()
                      if p.name not in RUN_FILES and not interrupted_write(p.name, RUN_FILES))
    except OSError:
        return []


def read_run_info(folder: Path) -> dict | None:
    """``run.json`` of a taalm run in ``folder``, or None when there is none (or it is not ours)."""
    path = Path(folder) / "run.json"
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict):
        return None
    if info.get("schema") == RUN_SCHEMA:
        return info
    if _LEGACY_RUN_KEYS <= set(info) and not foreign_files(folder):
        return info
    return None


def is_taalm_run(folder: Path) -> bool:
    return read_run_info(folder) is not None


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def config_paths(config: dict | None) -> list[Path]:
    """Every existing file or folder that a resolved configuration names (a model folder, an
    ``init=`` φ, a replay pool, a reference model, ...): inputs that no output may replace."""
    found = []
    for v in _flatten(config).values():
        for x in (v if isinstance(v, list) else [v]):
            if isinstance(x, str) and x and len(x) < 4096 and (x.startswith(("/", ".", "~")) or "/" in x or "\\" in x
                                                               or Path(x).suffix):
                p = Path(x).expanduser()
                try:
                    if p.exists():
                        found.append(p)
                except OSError:
                    continue
    return found


def check_outputs(outputs: dict[str, str | Path | None], inputs: Iterable[str | Path | None]) -> None:
    """Refuse an output file that is (through symlinks) one of the command's inputs or lies in an
    input folder, and two outputs that are the same file. ``outputs``: option -> path."""
    given = {opt: Path(p) for opt, p in outputs.items() if p}
    ins = [Path(p) for p in inputs if p]
    for opt, path in given.items():
        for i in ins:
            if _inside(path, i) or (path.exists() and i.exists() and _same(path, i)):
                raise TaalmError(f"{opt} {path}: is an input of this command ({i}); taalm never overwrites its "
                                 f"inputs. Choose another file")
    seen: dict[Path, str] = {}
    for opt, path in given.items():
        key = path.resolve()
        if key in seen:
            raise TaalmError(f"{opt} {path}: the same file as {seen[key]}; give each output its own file")
        seen[key] = opt


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_writable(path: Path, what: str = "", hint: str = "choose another path") -> None:
    """Refuse a path whose nearest existing folder (itself, if it is one) cannot be written."""
    p = path.resolve() if path.is_dir() else path.resolve().parent
    while not p.exists():
        p = p.parent
    if not os.access(p, os.W_OK):
        raise TaalmError(f"{what}{p}: not writable (read-only file system or no permission); {hint}")


def check_run_dir(out: Path | None, *, resume: bool, overwrite: bool, inputs: Iterable[str | Path] = ()) -> None:
    """Every check of the output folder that needs no model; writes nothing."""
    if out is None:
        if resume:
            raise TaalmError("resume needs the run folder (out_dir)")
        return
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise TaalmError(f"{out}: exists and is a file, not a folder; choose another --out")
    if resume and overwrite:
        raise TaalmError("--resume continues a run and --overwrite replaces it: give one of them")
    if resume:
        if read_run_info(out) is None:
            raise TaalmError(f"{out}: nothing to resume (not a taalm run folder: no run.json)")
        check_no_symlinks(out, "--resume")
        return
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise TaalmError(f"{out}: output folder exists and is not empty "
                             f"(use --resume to continue it, --overwrite to replace it)")
        if read_run_info(out) is None:
            raise TaalmError(f"{out}: not a taalm run folder (no run.json of a taalm run); --overwrite "
                             f"only replaces folders taalm created. Choose another --out")
        foreign = foreign_files(out)
        if foreign:
            raise TaalmError(f"{out}: holds {foreign[0]}, which no taalm run writes; --overwrite would delete it. "
                             f"Move it out, or choose another --out")
        check_no_symlinks(out, "--overwrite")
        for p in inputs:
            if p is not None and _inside(Path(p), out):
                raise TaalmError(f"{out}: holds an input of this run ({p}); --overwrite would delete it. "
                                 f"Choose another --out")
        if _inside(Path.cwd(), out):
            raise TaalmError(f"{out}: is the current folder or holds it; --overwrite will not delete it")
    check_writable(out, hint="choose another --out")


def check_tool_dir(out: Path, kind: str, *, overwrite: bool, inputs: Iterable[str | Path] = (),
                   legacy=None, owned: Iterable[str] = ()) -> str:
    """The rules of a folder that a command continues in place (``data tailor``, ``data pool``,
    ``demo``: their caches make a rerun cheap). Returns what the run will do with it: ``"new"``
    (absent or empty), ``"continue"`` (a folder of the same command that taalm made: its
    ``run.json`` says ``kind``, or ``legacy(folder)`` recognises one made before the marker) or
    ``"replace"`` (``overwrite``: a taalm folder of this command that holds nothing but the
    ``owned`` names and ``run.json``, emptied when the run starts).
    Anything else is refused; so is a folder that holds one of ``inputs``. Writes nothing."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise TaalmError(f"{out}: exists and is a file, not a folder; choose another --out")
    for p in inputs:
        if p is not None and (_inside(Path(p), out) or _inside(out, Path(p))):
            raise TaalmError(f"{out}: is or holds an input of this command ({p}); choose another --out")
    check_writable(out, hint="choose another --out")
    if not out.exists() or not any(out.iterdir()):
        return "new"
    info = read_run_info(out)
    ours = (info or {}).get("kind") == kind or (info is None and legacy is not None and legacy(out))
    if not ours:
        made = f"a taalm '{(info or {}).get('kind', 'run')}' folder" if info else "not a folder taalm made"
        raise TaalmError(f"{out}: {made}, not one of `taalm {kind}`; choose another --out")
    if _inside(Path.cwd(), out):
        raise TaalmError(f"{out}: is the current folder or holds it; choose another --out")
    check_no_symlinks(out, "--overwrite" if overwrite else "continuing it")
    if not overwrite:
        return "continue"
    ours = (*owned, "run.json")
    foreign = sorted(p.name for p in out.iterdir() if p.name not in ours and not interrupted_write(p.name, ours))
    if foreign:
        raise TaalmError(f"{out}: holds {foreign[0]}, which `taalm {kind}` does not write; --overwrite only "
                         f"empties folders that hold nothing else. Choose another --out")
    return "replace"


# --------------------------------------------------------------------------------------------
# Locking
# --------------------------------------------------------------------------------------------
def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


LOCK_WRITE_GRACE_S = 5.0  # a lock file without an owner younger than this may be being written


class RunLock:
    """An exclusive lock on a run folder: ``.<name>.taalm-lock`` beside it, created with
    ``O_EXCL`` and holding ``pid host``. A lock whose process is gone (same host) is stale and is
    taken over; a live one refuses the second run."""

    def __init__(self, out: Path):
        out = Path(out)
        self.path = out.parent / f".{out.name}.taalm-lock"
        self.out = out
        self.held = False

    def acquire(self) -> "RunLock":
        me = f"{os.getpid()} {socket.gethostname()}"
        for _ in range(2):
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if not self._stale():
                    raise TaalmError(f"{self.out}: another taalm run is using this folder "
                                     f"({self._owner()}; lock {self.path}); wait for it or choose another --out")
                try:
                    self.path.unlink()
                except FileNotFoundError:
                    pass
                continue
            except OSError as e:
                raise TaalmError(f"{self.path}: cannot create the run lock ({e.strerror})") from None
            with os.fdopen(fd, "w") as f:
                f.write(me + "\n")
            self.held = True
            return self
        raise TaalmError(f"{self.path}: could not take the run lock")

    def _owner(self) -> str:
        try:
            pid, host = self.path.read_text().split()[:2]
            return f"pid {pid} on {host}"
        except (OSError, ValueError):
            return "owner unknown"

    def _stale(self) -> bool:
        """A lock whose process is gone, or a lock file that holds no owner (empty, garbage) and
        was last written more than :data:`LOCK_WRITE_GRACE_S` ago (an owner writes it at once)."""
        if self.path.is_dir() and not self.path.is_symlink():
            raise TaalmError(f"{self.path}: the run lock of {self.out} is a folder, which taalm never makes; "
                             f"delete it if no taalm run uses {self.out}, then run again")
        try:
            mode = os.lstat(self.path).st_mode
        except FileNotFoundError:
            return True
        if not stat.S_ISREG(mode):  # a FIFO would block the read below for ever; a link is not ours
            raise TaalmError(f"{self.path}: the run lock of {self.out} is not a regular file (a FIFO, device, socket "
                             f"or symlink), which taalm never makes; delete it if no taalm run uses {self.out}, "
                             f"then run again")
        try:
            pid_s, host = self.path.read_text().split()[:2]
            pid = int(pid_s)
        except FileNotFoundError:
            return True
        except (OSError, ValueError, UnicodeDecodeError):
            try:
                return time.time() - self.path.stat().st_mtime > LOCK_WRITE_GRACE_S
            except FileNotFoundError:
                return True
        return host == socket.gethostname() and not pid_alive(pid)

    def release(self) -> None:
        if self.held:
            try:
                if self.path.read_text().split()[0] == str(os.getpid()):
                    self.path.unlink()
            except (OSError, IndexError):
                pass
            self.held = False

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


# --------------------------------------------------------------------------------------------
# Starting: staged, then swapped into place
# --------------------------------------------------------------------------------------------
class RunFolder:
    """The output folder of one run (see the module docstring); ``path`` is where files go."""

    def __init__(self, out: Path, *, resume: bool, overwrite: bool):
        self.path = Path(out)
        self.resume = resume
        self.overwrite = overwrite
        self.started = False  # True once the folder holds this run's first files

    def start(self, write_first_files) -> None:
        """Create the folder with ``write_first_files(folder)`` (config, run.json) done inside it.
        A resumed run writes in place; a new one is staged in a hidden sibling and renamed into
        place, replacing (``--overwrite``) the previous taalm run only at this point."""
        out = self.path
        if self.resume:
            remove_interrupted_writes(out, RUN_FILES)  # of the killed part of this run
            write_first_files(out)
            self.started = True
            return
        for left in out.parent.glob(f".{out.name}.taalm-new-*"):  # stages of killed taalm processes
            pid = left.name.rsplit("-", 1)[-1]
            if pid.isdigit() and (int(pid) == os.getpid() or not pid_alive(int(pid))):
                shutil.rmtree(left, ignore_errors=True)
        stage = out.parent / f".{out.name}.taalm-new-{os.getpid()}"
        stage.mkdir(parents=True)
        try:
            write_first_files(stage)
            old = None
            if out.exists():
                if any(out.iterdir()) and read_run_info(out) is None:  # checked before; re-checked now
                    raise TaalmError(f"{out}: not a taalm run folder; refusing to replace it")
                old = out.parent / f".{out.name}.taalm-old-{os.getpid()}"
                os.replace(out, old)
            os.replace(stage, out)
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise
        self.started = True
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def mark_status(out: Path, status: str, **fields) -> None:
    """Set ``run.json``'s status (and ``fields``) of a started taalm run; nothing if there is none."""
    info = read_run_info(out)
    if info is not None:
        info.update(status=status, **fields)
        write_run_json(out, info)


def write_run_json(folder: Path, content: dict) -> dict:
    """Write ``content`` as ``folder``'s ``run.json``: the one writer of that file (through
    :class:`~taalm.core.run.Run`, and :func:`mark_status` for its failures); returns ``content``."""
    atomic_write_json(Path(folder) / "run.json", content)
    return content


# --------------------------------------------------------------------------------------------
# Resume verification
# --------------------------------------------------------------------------------------------
def _flatten(d, prefix: str = "") -> dict:
    out = {}
    for k, v in (d or {}).items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


_HOW_IT_RUNS = (".device", "train.fsdp", "train.gradient_checkpointing")


def check_resume(info: dict, inputs: dict, config: dict, allowed: Iterable[str] = ("train.epochs", "updates"),
                 defaults: dict | None = None) -> None:
    """Refuse to resume a run with other inputs or another configuration; name what differs.
    ``allowed``: keys that may change (more epochs or updates). ``defaults`` (the schema's default
    config): a key that a run of an older taalm did not have yet may hold its default value."""
    old_inputs = info.get("inputs")
    if isinstance(old_inputs, dict):
        for name in sorted(set(old_inputs) | set(inputs)):
            a, b = old_inputs.get(name), inputs.get(name)
            if a != b:
                what = lambda x: "none" if not x else f"{x.get('n')} items, sha256 {str(x.get('sha256'))[:12]}"
                raise TaalmError(f"--resume: the run was started with other {name} ({what(a)}; now {what(b)}); "
                                 f"resume with the same inputs, or start a new run")
    old_cfg, new_cfg = _flatten(info.get("config")), _flatten(config)
    for k, v in _flatten(defaults).items() if defaults else ():
        if k not in old_cfg and new_cfg.get(k) == v:
            old_cfg[k] = v
    diff = [k for k in sorted(set(old_cfg) | set(new_cfg))
            if k not in allowed and old_cfg.get(k) != new_cfg.get(k)
            and not k.endswith(_HOW_IT_RUNS)]  # where and how it runs may change, not what it computes
    if diff:
        shown = ", ".join(f"{k}: {old_cfg.get(k)!r} -> {new_cfg.get(k)!r}" for k in diff[:3])
        raise TaalmError(f"--resume: the configuration differs from the run's ({shown}"
                         f"{', ...' if len(diff) > 3 else ''}); only {' / '.join(allowed)} may change")


def newest_usable_checkpoint(root: Path, pattern: str, read_one, log=print, none_yet: str = "none was written yet"):
    """``read_one(folder, latest)`` of the newest usable checkpoint below ``root``: the one
    ``latest.json`` points to, else the newest folder matching ``pattern`` that ``read_one``
    accepts (it must verify everything and raise if anything is wrong, loading nothing). None
    usable: a :class:`TaalmError` that says why for each."""
    latest, problems = None, []
    try:
        latest = json.loads((root / "latest.json").read_text())
        if not isinstance(latest, dict) or "folder" not in latest:
            raise ValueError("not a checkpoint pointer")
    except (OSError, ValueError) as e:
        problems.append(f"latest.json: {getattr(e, 'strerror', None) or e}")
        latest = None
    names = [latest["folder"]] if latest else []
    names += sorted((d.name for d in root.glob(pattern) if d.is_dir() and d.name not in names), reverse=True)
    for name in names:
        try:
            found = read_one(root / name, latest)
        except Exception as e:  # noqa: BLE001 - safetensors raises its own types for truncated files
            problems.append(f"{name}: {getattr(e, 'strerror', None) or e}")
            continue
        if problems:
            log(f"warning: {'; '.join(problems)}; resuming from the checkpoint {name} instead")
        return found
    raise TaalmError(f"{root.parent}: no usable checkpoint to resume from ({'; '.join(problems) or none_yet})")


def commit_checkpoint(root: Path, folder: Path, state: dict, pattern: str, keep: int = 2) -> None:
    """Finish a checkpoint whose tensors are written in ``folder``: its ``state.json`` (the folder
    is complete once it exists), then the ``latest.json`` pointer, then prune all but the newest
    ``keep`` folders matching ``pattern`` (the older one is the fallback of a damaged newest)."""
    full = {**state, "folder": folder.name}
    atomic_write_json(folder / "state.json", full)
    atomic_write_json(root / "latest.json", full)
    done = sorted(d for d in root.glob(pattern) if d.is_dir())
    for old in done[:-keep]:
        shutil.rmtree(old, ignore_errors=True)  # our own older checkpoints


def checkpoint_state(folder: Path, latest: dict | None) -> dict:
    """A checkpoint folder's ``state.json`` (or, for folders written before it existed, the
    ``latest.json`` that points to it)."""
    if (folder / "state.json").is_file():
        return json.loads((folder / "state.json").read_text())
    if latest is not None and latest.get("folder") == folder.name:
        return latest
    raise ValueError("incomplete (no state.json)")


def fingerprint(items: Iterable[object], fields: tuple[str, ...]) -> dict | None:
    """``{"n", "sha256"}`` of a list of records (documents, probes, pairs): their ``fields`` in
    order, so a resumed run can tell whether it was given the same inputs."""
    import hashlib

    items = list(items or [])
    if not items:
        return None
    h = hashlib.sha256()
    for it in items:
        h.update(json.dumps([getattr(it, f, None) for f in fields], ensure_ascii=False, default=str).encode())
        h.update(b"\n")
    return {"n": len(items), "sha256": h.hexdigest()}


__all__ = ["RUN_SCHEMA", "RunFolder", "RunLock", "check_outputs", "check_run_dir", "check_tool_dir", "config_paths", "foreign_files", "RUN_FILES", "check_resume", "fingerprint",
           "check_no_symlinks", "interrupted_write", "remove_interrupted_writes",
           "newest_usable_checkpoint", "checkpoint_state", "commit_checkpoint",
           "is_taalm_run", "mark_status", "read_run_info", "write_run_json"]


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


def input_fingerprints(documents, probes, extra: dict[str, list] | None = None) -> dict:
    """What ``--resume`` compares: every input set's size and content hash."""
    fp = {"documents": fingerprint(documents, ("text", "answer", "id")),
          "probes": fingerprint(probes, ("text", "answer", "answer_start", "id"))}
    for name, ps in (extra or {}).items():
        fp[f"probes.{name}"] = fingerprint(ps, ("text", "answer", "answer_start", "id"))
    return fp

