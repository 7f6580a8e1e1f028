"""taalm: continual knowledge learning of language models with Train-Attention (TAALM).

The public API is imported lazily so that ``import taalm`` (and ``taalm --help``) does not pay
for torch and transformers:

    from taalm import load_model, learn, evaluate_probes, read_documents, read_probes
"""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "load_model": "taalm.models",
    "load_tokenizer": "taalm.models",
    "resolve_device": "taalm.devices",
    "resolve_dtype": "taalm.devices",
    "weighted_lm_loss": "taalm.loss",
    "token_losses": "taalm.loss",
    "read_documents": "taalm.data",
    "read_probes": "taalm.data",
    "make_probe": "taalm.data",
    "Document": "taalm.data",
    "Probe": "taalm.data",
    "evaluate_probes": "taalm.evaluation",
    "learn": "taalm.learner",
    "LearnResult": "taalm.learner",
    "get_method": "taalm.weighting",
    "register_method": "taalm.weighting",
    "available_methods": "taalm.weighting",
    "weights_for_documents": "taalm.weighting",
    "TrainAttention": "taalm.train_attention",
    "offset_map": "taalm.train_attention",
    "PhiConfig": "taalm.config",
    "LearnConfig": "taalm.config",
    "load_config": "taalm.config",
    "run_demo": "taalm.demo",
    "run_lama_ckl": "taalm.bench",
    "register_benchmark": "taalm.bench",
    "available_benchmarks": "taalm.bench",
    "TaalmError": "taalm.errors",
    "InputError": "taalm.errors",
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
