"""θ forms, one file per form; importing this package registers them all (``lora``, ``full``, ``kadapter``, ``qlora``)."""

from .base import (THETA_FORMS, ThetaForm, adapter_folder, count_parameters, get_theta_form, load_adapter,
                   trainable_parameters)
from .full import Full
from .kadapter import KAdapter, KAdapterModel, load_kadapter
from .lora import Lora
from .qlora import QLora, quantize_nf4


def wrap_theta(model, cfg, seed: int = 0):
    """``get_theta_form(cfg, seed).prepare(model)``: the model made trainable as ``cfg.mode`` says."""
    return get_theta_form(cfg, seed).prepare(model)


__all__ = ["THETA_FORMS", "ThetaForm", "adapter_folder", "count_parameters", "get_theta_form", "load_adapter",
           "trainable_parameters", "wrap_theta", "Full", "KAdapter", "KAdapterModel", "Lora", "QLora",
           "load_kadapter", "quantize_nf4"]

from ...core.registry import import_submodules  # noqa: E402

import_submodules(__name__, __path__)  # any other file in this folder registers its part too
