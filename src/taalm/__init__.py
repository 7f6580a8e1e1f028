"""taalm: continual knowledge learning of language models with Train-Attention (TAALM).

The public API is imported lazily so that ``import taalm`` (and ``taalm --help``) does not pay
for torch and transformers:

    from taalm import load_model, learn, evaluate_probes, read_documents, read_probes
"""

from __future__ import annotations

import logging as _logging

__version__ = "0.1.0"

# Two third-party lines we silence on every path, once at import: bitsandbytes (when installed) logs
# that its CPU 4-bit kernel could not be fetched, and the `kernels` package that it skips a hub
# trust check in offline mode. taalm runs 4-bit (QLoRA) on CUDA only, so the CPU kernel is never
# used; both lines would only puzzle a CPU user. Errors still show.
for _name in ("bitsandbytes.backends.cpu.ops", "kernels"):
    _logging.getLogger(_name).setLevel(_logging.ERROR)

_LAZY = {
    "load_model": "taalm.models.loading",
    "load_tokenizer": "taalm.models.loading",
    "resolve_device": "taalm.core.devices",
    "resolve_dtype": "taalm.core.devices",
    "weighted_lm_loss": "taalm.ckl.loss",
    "token_losses": "taalm.ckl.loss",
    "read_documents": "taalm.data",
    "read_probes": "taalm.data",
    "make_probe": "taalm.data",
    "Document": "taalm.data",
    "Probe": "taalm.data",
    "evaluate_probes": "taalm.evaluation.probes",
    "learn": "taalm.ckl.learner",
    "LearnResult": "taalm.ckl.learner",
    "LearnOptions": "taalm.ckl.learner",
    "RunOptions": "taalm.core.run",
    "QUIET": "taalm.core.run",
    "get_method": "taalm.ckl.method",
    "register_method": "taalm.ckl.weighting",
    "available_methods": "taalm.ckl.weighting",
    "weights_for_documents": "taalm.ckl.weighting",
    "TrainAttention": "taalm.models.phi",
    "offset_map": "taalm.models.phi",
    "PhiConfig": "taalm.core.config",
    "LearnConfig": "taalm.ckl.config",
    "load_config": "taalm.core.config",
    "run_demo": "taalm.demo",
    "run_lama_ckl": "taalm.bench.lama_ckl",
    "register_benchmark": "taalm.bench.registry",
    "available_benchmarks": "taalm.bench.registry",
    "TaalmError": "taalm.core.errors",
    "InputError": "taalm.core.errors",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'taalm' has no attribute {name!r}")


def __dir__():
    return __all__
