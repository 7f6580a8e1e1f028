"""Device and dtype resolution: the one place that decides where tensors live.

``auto`` means: CUDA if available, then Apple MPS, then CPU. The dtype ``auto`` means bfloat16
on an accelerator that supports it, float32 otherwise (CPU bf16 matmuls are slow and lossy for
training). Nothing else in the library names a device type literally.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

DEVICE_KINDS = ("auto", "cpu", "cuda", "mps", "xpu")  # what a device spec may name (before ":N")

_DTYPES = {
    "fp32": "float32", "float32": "float32", "float": "float32",
    "bf16": "bfloat16", "bfloat16": "bfloat16",
    "fp16": "float16", "float16": "float16", "half": "float16",
    "fp64": "float64", "float64": "float64", "double": "float64",
}
DTYPE_NAMES = ("auto", *_DTYPES)  # what a dtype spec may name


def resolve_device(spec: "str | torch.device | None" = "auto"):
    """``"auto"`` -> the best available ``torch.device``; any torch device string otherwise."""
    import torch

    from .errors import ConfigError

    if isinstance(spec, torch.device):
        return spec
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        # torch.accelerator knows CUDA/ROCm, MPS, XPU...; the order of preference is torch's own
        if torch.accelerator.is_available():
            kind = torch.accelerator.current_accelerator().type
            local = os.environ.get("LOCAL_RANK")  # under torchrun: one accelerator per process
            return torch.device(kind, int(local)) if local is not None and kind == "cuda" else torch.device(kind)
        return torch.device("cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise ConfigError(f"unknown device '{spec}' (use auto, cpu, cuda, cuda:N or mps)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device '{spec}' was asked for but no CUDA GPU is available (use device=auto)")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError(f"device '{spec}' was asked for but MPS is not available (use device=auto)")
    return device


def supports_bf16(device) -> bool:
    import torch

    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "mps":
        return False
    return False  # CPU: supported but slow for training; opt in with dtype=bf16


def resolve_dtype(spec: "str | torch.dtype | None" = "auto", device=None):
    """``"auto"`` -> bf16 where the accelerator supports it, else float32."""
    import torch

    from .errors import ConfigError

    if isinstance(spec, torch.dtype):
        return spec
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        device = device if device is not None else resolve_device("auto")
        return torch.bfloat16 if supports_bf16(device) else torch.float32
    if spec not in _DTYPES:
        raise ConfigError(f"unknown dtype '{spec}' (use auto, fp32, bf16, fp16 or fp64)")
    return getattr(torch, _DTYPES[spec])


def distributed_backend(device) -> str:
    """torch.distributed's backend for ``device``: NCCL on CUDA, gloo elsewhere (CPU tests)."""
    return "nccl" if getattr(device, "type", None) == "cuda" else "gloo"


def supports_4bit(device) -> bool:
    """Whether bitsandbytes' 4-bit NF4 kernels serve training on ``device`` (CUDA only: its other
    back ends are partial and slow, so taalm's ``qlora`` θ form refuses them)."""
    return getattr(device, "type", None) == "cuda"


def device_name(device) -> str | None:
    """The accelerator's product name (None on CPU and where unknown)."""
    import torch

    if getattr(device, "type", None) == "cuda":
        return torch.cuda.get_device_name(device)
    return None


def free_cached_memory(device) -> None:
    """Return the allocator's cached blocks to the device (after a big temporary model)."""
    import torch

    if getattr(device, "type", None) == "cuda":
        torch.cuda.empty_cache()


def reset_peak_memory(device) -> None:
    import torch

    if getattr(device, "type", None) == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mib(device) -> float | None:
    """Peak memory the allocator handed out on ``device`` since the last reset (None on CPU)."""
    import torch

    if getattr(device, "type", None) == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return None
