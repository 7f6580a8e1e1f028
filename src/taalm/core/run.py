"""One run's life cycle: what every command that writes a folder does around its own work.

``learn``, ``train-attention`` (and its supervised start), ``bench``, ``data tailor``, ``data
pool``, ``demo`` and ``report`` all go through
:class:`Run`, a context manager::

    with Run(out, resume=resume, overwrite=overwrite, inputs=fingerprints, input_paths=paths,
             config=to_dict(cfg), defaults=to_dict(LearnConfig()), device=cfg.model.device,
             log=log, progress=progress) as run:
        ...  # run.folder, run.resume_dir, run.log, run.progress, run.failure_fields

In order:

1. **checks that need no model**, before anything is written: the output folder's rules
   (:func:`~taalm.core.runfolder.check_run_dir`: a fresh folder, or ``--resume`` of a taalm run,
   or ``--overwrite`` of a taalm run that holds none of the inputs) and, on ``--resume``, that the
   inputs' fingerprints and the resolved configuration are the run's own
   (:func:`~taalm.core.runfolder.check_resume`);
2. **the ranks** (under ``torchrun``): join the process group and wait until every rank has checked;
   ranks other than 0 write nothing: their ``folder`` is None, ``log`` is silent, ``progress`` off,
   and ``resume_dir`` names the folder whose checkpoint they read;
3. **the lock** of rank 0 on the folder (:class:`~taalm.core.runfolder.RunLock`);
4. **the start**, by the loop, once its own checks and the model have passed:
   :meth:`Run.start` (a new run is staged, then swapped into place);
5. **the end**: a started run that raised is marked in ``run.json``: ``failed`` for a
   :class:`~taalm.core.errors.TrainingDiverged`, ``interrupted`` for anything else (SIGTERM, a full
   disk), with the loop's ``failure_fields()`` (e.g. the last checkpoint); the lock is released.

``folder_rule`` says which rules the output folder follows:

- ``"run"`` (learn, train-attention): the above; the loop starts the folder itself and writes
  its ``run.json`` through :meth:`Run.write_info` (status ``running``, in the staged folder) and
  :meth:`Run.finish` (status ``complete``). ``run.json`` has one writer:
  :func:`~taalm.core.runfolder.write_run_json`, used by :class:`Run` alone (and ``mark_status``).
- ``"tool"`` (data tailor, data pool, demo, report; ``kind`` names the command): a fresh folder, or one
  that taalm made for the same command, continued in place (their score caches make a rerun
  cheap), or with ``overwrite`` emptied first (only when it holds nothing but ``owned`` names).
  :class:`Run` itself writes its ``run.json`` (``kind``, status ``running``, the configuration)
  on entry and marks it ``complete`` or ``interrupted`` on the way out.
- ``"none"`` (bench: a folder of per-method runs with its own rules): steps 2, 3 and 5 only.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Literal

from . import distributed
from .errors import TaalmError, TrainingDiverged
from .runfolder import (RUN_SCHEMA, RunFolder, RunLock, check_no_symlinks, check_resume, check_run_dir,
                        check_tool_dir, config_paths, mark_status, read_run_info, remove_interrupted_writes,
                        write_run_json)

FOLDER_RULES = ("run", "tool", "none")


def _real_out(out: Path) -> Path:
    """``--out`` as written, or the folder a symlink names (taalm writes through the link, which
    stays as it is); a symlink loop or a path under a file is refused in one line."""
    import errno
    import os

    try:
        os.stat(out)
    except FileNotFoundError:
        pass
    except NotADirectoryError:
        raise TaalmError(f"{out}: a part of this path is a file, not a folder; choose another --out") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise TaalmError(f"{out}: a symlink loop; choose another --out") from None
        raise
    if out.is_symlink():
        return Path(os.path.realpath(out))
    return out


@dataclass
class RunOptions:
    """How a long-running call treats its output folder and talks to its caller: not what it
    computes (that is the config). Every public loop takes one as ``options=``; the default is
    a new folder, progress bars, and messages printed::

        learn(docs, probes, cfg, "runs/x", options=RunOptions(resume=True, progress=False))
    """

    resume: bool = False  # continue the folder from its last checkpoint (its own inputs and config)
    overwrite: bool = False  # replace a folder taalm made (never one holding the inputs)
    progress: bool = True  # progress bars on stderr
    log: Callable[[str], None] = print  # where one-line messages go


QUIET = RunOptions(progress=False, log=lambda message: None)  # no bars, no messages (tests, notebooks)


def options_for(options: RunOptions | None, command: str, allow: tuple[str, ...] = ("resume", "overwrite")
                ) -> RunOptions:
    """``options`` (default :class:`RunOptions`) for ``command``, refusing a folder policy it does
    not have: the benchmarks and the data tools continue their own folders in place by themselves
    (no ``resume``), and a benchmark folder is never emptied (no ``overwrite``)."""
    opts = options or RunOptions()
    for name in ("resume", "overwrite"):
        if getattr(opts, name) and name not in allow:
            raise TaalmError(f"{command} takes no {name}: it continues a folder it made in place by itself "
                             f"(rerun it into the same folder)")
    return opts


def _silent(message: str) -> None:
    """The log of a rank other than 0."""


@dataclass
class Run:
    """The life cycle of one run (module docstring). ``out`` None: nothing is written (the work
    runs in memory); ``inputs``: name -> fingerprint, recorded in ``run.json`` and compared on
    resume; ``input_paths``: the files the run reads (``--overwrite`` never deletes them);
    ``config``/``defaults``: the resolved configuration and the schema's defaults, compared on
    resume (keys in ``allowed`` may change)."""

    out: str | Path | None
    resume: bool = False
    overwrite: bool = False
    inputs: dict = field(default_factory=dict)
    input_paths: Iterable = ()
    config: dict | None = None
    defaults: dict | None = None
    allowed: tuple[str, ...] = ("train.epochs", "updates", "train.keep_checkpoints")  # what a resume may change
    device: str = "auto"
    log: Callable[[str], None] = print
    progress: bool = True
    folder_rule: str = "run"
    kind: str = ""  # folder_rule "tool": the command (run.json's kind)
    owned: tuple[str, ...] = ()  # folder_rule "tool": the names it writes at the folder's top
    legacy: Callable[[Path], bool] | None = None  # folder_rule "tool": a folder of the command made before run.json
    failure_fields: Callable[[], dict] = dict  # set by the loop: what run.json records on a failure
    folder: RunFolder | None = field(default=None, init=False)
    resume_dir: Path | None = field(default=None, init=False)
    is_main: bool = field(default=True, init=False)
    mode: str = field(default="new", init=False)  # folder_rule "tool": new | continue | replace
    _lock: RunLock | None = field(default=None, init=False, repr=False)
    _t0: float = field(default_factory=time.time, init=False, repr=False)

    def __post_init__(self) -> None:
        self.out = _real_out(Path(self.out)) if self.out is not None else None
        # every file or folder the configuration names is an input too (a model folder, an init= φ, ...)
        self.input_paths = [p for p in self.input_paths if p is not None] + config_paths(self.config)
        if self.folder_rule not in FOLDER_RULES:
            raise ValueError(f"folder_rule {self.folder_rule!r}: use one of {FOLDER_RULES}")

    def _out_path(self) -> Path | None:
        """``out`` as :meth:`__post_init__` left it: a Path, or None."""
        assert self.out is None or isinstance(self.out, Path)
        return self.out

    def __enter__(self) -> "Run":
        out = self._out_path()
        if self.folder_rule == "run":
            check_run_dir(out, resume=self.resume, overwrite=self.overwrite, inputs=self.input_paths)
            if self.resume and self.config is not None:
                assert out is not None  # check_run_dir refuses resume without a folder
                info = read_run_info(out)
                if info is None:  # check_run_dir found one a moment ago
                    raise TaalmError(f"{out}: nothing to resume (not a taalm run folder: no run.json)")
                check_resume(info, self.inputs, self.config, self.allowed, self.defaults)
        elif self.folder_rule == "tool" and out is not None:
            self.mode = check_tool_dir(out, self.kind, overwrite=self.overwrite, inputs=self.input_paths,
                                       legacy=self.legacy, owned=self.owned)
        elif out is not None and out.is_dir():  # "none": a benchmark folder continued in place
            check_no_symlinks(out, "continuing it")
        d = distributed.init_from_env(self.device)  # under torchrun: join the ranks (core/distributed.py)
        distributed.barrier()  # every rank checked the folder before rank 0 touches it
        self.is_main = d.is_main
        if not d.is_main:  # only rank 0 writes, logs and draws progress; the others read a checkpoint
            self.log, self.progress = _silent, False
            self.resume_dir = out if self.resume else None
            return self
        if out is not None:
            self._lock = RunLock(out).acquire()
            if self.folder_rule != "none":
                self.folder = RunFolder(out, resume=self.resume, overwrite=self.overwrite)
        return self

    def start(self, write_first_files: Callable[[Path], None] | None = None) -> None:
        """The folder starts for real, once the command's own checks and its model have passed:
        folder_rule "run": :meth:`RunFolder.start` with ``write_first_files(folder)``; "tool": the
        folder is emptied on ``replace`` (only names the command writes) and gets its ``run.json``.
        Nothing on a rank other than 0 or without a folder."""
        if self.folder is None:
            return
        if self.folder_rule == "run":
            self.folder.start(write_first_files)
            return
        out = self._out_path()
        assert out is not None  # a folder is made only for an out
        if self.mode == "replace":  # checked on entry: it holds only what this command writes
            for p in out.iterdir():
                shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
        elif self.mode == "continue":  # a killed run's half-written temporary files: ours
            remove_interrupted_writes(out, (*self.owned, "run.json"))
        out.mkdir(parents=True, exist_ok=True)
        from .files import environment_info

        write_run_json(out, {"schema": RUN_SCHEMA, "kind": self.kind, "status": "running",
                             **environment_info(self.device), "mode": self.mode,
                             "inputs": self.inputs, "config": self.config})
        if write_first_files is not None:
            write_first_files(out)
        self.folder.started = True

    def write_info(self, status: str, fields: dict, *, device=None, folder: Path | None = None,
                   kind: str = "") -> dict:
        """Write ``run.json`` of a loop that writes its own (folder_rule "run"): the schema, ``kind``
        (if any), the environment on ``device``, ``status`` and ``fields``, in that order, into
        ``folder`` (the staged folder of :meth:`start`'s ``write_first_files``) or the run's
        folder; returns what was written."""
        from .files import environment_info

        where = folder if folder is not None else (self.folder.path if self.folder is not None else None)
        assert where is not None  # called with the staged folder, or for a run with a folder
        return write_run_json(where, {"schema": RUN_SCHEMA, **({"kind": kind} if kind else {}),
                                      **environment_info(device), "status": status, **fields})

    def finish(self, fields: dict, *, device=None, kind: str = "") -> dict:
        """The loop's work is done: ``run.json`` says ``complete`` (with ``fields``, as
        :meth:`write_info`); returns what was written."""
        return self.write_info("complete", fields, device=device, kind=kind)

    def __exit__(self, exc_type, exc, tb) -> Literal[False]:
        try:
            if exc is not None and self.folder is not None and self.folder.started:
                self._mark_failure(exc)
            elif exc is None and self.folder_rule == "tool" and self.folder is not None and self.folder.started:
                out = self._out_path()
                assert out is not None  # a folder is made only for an out
                mark_status(out, "complete", seconds=round(time.time() - self._t0, 1))
        finally:
            if self._lock is not None:
                self._lock.release()
                self._lock = None
        return False  # the exception (if any) goes on

    def _mark_failure(self, exc: BaseException) -> None:
        """``run.json`` of a started run that raised: failed (diverged) or interrupted (resumable)."""
        try:
            fields = dict(self.failure_fields())
        except Exception:  # noqa: BLE001 - the loop's state may be half-built; the status matters more
            fields = {}
        assert self.folder is not None  # called for a started folder only
        if isinstance(exc, TrainingDiverged):
            mark_status(self.folder.path, "failed", error=str(exc), **fields)
        elif isinstance(exc, (KeyboardInterrupt, SystemExit)):
            mark_status(self.folder.path, "interrupted", **fields)
        else:
            mark_status(self.folder.path, "interrupted", error=f"{type(exc).__name__}: {exc}"[:500], **fields)


__all__ = ["Run"]
