"""θ for meta-training: a frozen base model plus trainable tensors passed functionally.

:class:`MetaTheta` holds the frozen model and θ's tensors as a dict (per-pair LoRA matrices with
a leading pair dimension ``[P, ...]``, or whole decoder layers), applied with
``torch.func.functional_call``, so the inner update (:mod:`taalm.meta.inner_optim`) can be
differentiated by :mod:`taalm.meta.gradient`. Also the checks that make that exact: eager
attention (no fused SDPA kernel has a double-backward or forward-mode rule on CPU) and a
plain linear LM head (the ``directional`` engine contracts through it).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.func import functional_call

from .config import MetaThetaConfig
from ..core.errors import ConfigError


class _LoRALinear(torch.nn.Module):
    """``base(x) + scale · B A x``. A, B are ``[r, in]``/``[out, r]`` or, per pair,
    ``[P, r, in]``/``[P, out, r]`` with x ``[P, T, in]`` (each pair its own adapter)."""

    def __init__(self, base: torch.nn.Module, r: int, alpha: float):
        super().__init__()
        self.base = base
        self.scale = alpha / r
        shape = _linear_shape(base)
        assert shape is not None  # MetaTheta wraps only the layers _linear_shape knows
        n_in, n_out = shape
        dt, dev = inner_dtype(base.weight.dtype), base.weight.device
        # placeholders; the real (per-pair) tensors are passed with functional_call
        self.lora_A = torch.nn.Parameter(torch.zeros(r, n_in, dtype=dt, device=dev), requires_grad=False)
        self.lora_B = torch.nn.Parameter(torch.zeros(n_out, r, dtype=dt, device=dev), requires_grad=False)

    def forward(self, x):
        y = self.base(x)
        A, B = self.lora_A, self.lora_B
        xa = x.to(A.dtype)  # the adapter path runs in the adapters' dtype (float32 on a bf16 base)
        if A.dim() == 2:
            return y + (self.scale * F.linear(F.linear(xa, A), B)).to(y.dtype)
        # [P, T, in] @ [P, in, r] -> [P, T, r] @ [P, r, out] -> [P, T, out]
        return y + (self.scale * torch.matmul(torch.matmul(xa, A.transpose(1, 2)), B.transpose(1, 2))).to(y.dtype)


def inner_dtype(base_dtype: torch.dtype) -> torch.dtype:
    """The dtype of the inner-step state (per-pair LoRA, Adam moments, w): float32 on a float16 /
    bfloat16 base, as CKL keeps its adapters (an inner AdamW in bf16 loses the small updates);
    float64 stays float64 (gradient checks)."""
    return torch.float32 if base_dtype in (torch.float16, torch.bfloat16) else base_dtype


def _linear_shape(mod: torch.nn.Module) -> tuple[int, int] | None:
    """(in, out) of a linear layer: ``nn.Linear`` or HF's ``Conv1D`` (GPT-2: weight [in, out])."""
    if isinstance(mod, torch.nn.Linear):
        return mod.in_features, mod.out_features
    if type(mod).__name__ == "Conv1D" and hasattr(mod, "nf"):
        return mod.weight.shape[0], mod.nf
    return None


class MetaTheta:
    """The base model θ as used by meta-training.

    ``init`` holds θ0 (unbatched tensors). ``pairs(P)`` gives P fresh copies for P pairs: a
    leading pair dimension in LoRA mode (one forward pass serves all pairs), plain tensors in
    layers mode (P must be 1: whole layers are not batched per pair). ``hidden`` runs the
    backbone, ``logits`` adds the frozen LM head.
    """

    def __init__(self, model: torch.nn.Module, spec: MetaThetaConfig | None = None, seed: int = 0,
                 state_dtype: torch.dtype | None = None):
        """``state_dtype``: the per-pair LoRA's dtype (and so the inner step's); default
        :func:`inner_dtype` (float32 on a half-precision base). Set only to reproduce the public
        release's bf16 inner state for comparison (benchmarks/gpu_check.py): an inner AdamW in
        bf16 rounds away most of its small update."""
        spec = spec or MetaThetaConfig()
        self.spec = spec
        self.model = model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        attn = getattr(model.config, "_attn_implementation", None)
        if attn not in (None, "eager"):
            # fused SDPA on CPU has no double-backward and no forward-mode (JVP) rule
            raise ConfigError(f"meta-training needs eager attention in θ (got '{attn}'); "
                              "load it with attn='eager'")
        for key in ("final_logit_softcapping", "logit_scale", "logits_scaling", "output_multiplier_scale"):
            if getattr(model.config, key, None) not in (None, 0, 1, 1.0):
                raise ConfigError(f"meta-training needs logits = lm_head(h); this model's config sets "
                                  f"{key}={getattr(model.config, key)!r}, which it does not support")
        self.backbone = model.base_model
        self.head = model.get_output_embeddings()
        if self.head is None:
            raise ConfigError("meta-training needs a model with an output (LM head) layer")
        check_logit_transform(model, self.backbone, self.head)
        self.batched = spec.mode == "lora"
        base_dt = next(model.parameters()).dtype
        dt = state_dtype or inner_dtype(base_dt)
        if spec.mode == "layers" and dt != base_dt:
            raise ConfigError(f"θ mode 'layers' trains whole decoder layers in the base dtype ({base_dt}); "
                              "its inner AdamW would run in low precision: load θ in float32 or use mode=lora")
        dev = next(model.parameters()).device
        gen = torch.Generator().manual_seed(seed)
        self.init: dict[str, torch.Tensor] = {}
        if spec.mode == "lora":
            targets = [(n, m) for n, m in self.backbone.named_modules() if _linear_shape(m)]
            if spec.lora_layers:  # only the last K decoder layers: the inner backward and the JVP stop there
                layers = _decoder_layers(self.backbone)
                if spec.lora_layers > len(layers):
                    raise ConfigError(f"theta.lora_layers={spec.lora_layers}: the model has {len(layers)} "
                                      "decoder layers", "theta.lora_layers")
                keep = tuple(f"{name}." for name, _ in layers[-spec.lora_layers:])
                targets = [(n, m) for n, m in targets if n.startswith(keep)]
            if not targets:
                raise ConfigError("no linear layers found in the backbone for LoRA")
            for name, lin in targets:
                parent_name, _, child = name.rpartition(".")
                parent = self.backbone.get_submodule(parent_name) if parent_name else self.backbone
                setattr(parent, child, _LoRALinear(lin, spec.r, spec.alpha))
                shape = _linear_shape(lin)
                assert shape is not None  # targets are the layers _linear_shape knows
                n_in, n_out = shape
                bound = 1.0 / math.sqrt(n_in)  # peft's default: kaiming-uniform A, B = 0
                A = (torch.rand(spec.r, n_in, generator=gen, dtype=torch.float64) * 2 - 1) * bound
                self.init[f"{name}.lora_A"] = A.to(dt).to(dev)
                self.init[f"{name}.lora_B"] = torch.zeros(n_out, spec.r, dtype=dt, device=dev)
        elif spec.mode == "layers":
            layers = _decoder_layers(self.backbone)
            n = len(layers)
            idx = sorted({i % n for i in spec.layers})
            for i in idx:
                for pname, p in layers[i][1].named_parameters():
                    self.init[f"{layers[i][0]}.{pname}"] = p.detach().clone()
        else:
            raise ConfigError(f"unknown meta theta mode '{spec.mode}' (lora | layers)")

    @property
    def n_trainable(self) -> int:
        return sum(t.numel() for t in self.init.values())

    def pairs(self, P: int) -> dict[str, torch.Tensor]:
        """θ0 for P pairs (fresh tensors)."""
        if self.batched:
            return {n: t.unsqueeze(0).repeat(P, *([1] * t.dim())) for n, t in self.init.items()}
        if P != 1:
            raise ConfigError("θ mode 'layers' trains one pair per forward pass")
        return {n: t.clone() for n, t in self.init.items()}

    def hidden(self, params: dict, input_ids, attention_mask) -> torch.Tensor:
        """Last hidden states ``[P, T, H]`` of the backbone with θ = ``params``."""
        out = functional_call(self.backbone, params, (input_ids,),
                              {"attention_mask": attention_mask, "use_cache": False})
        return out[0] if isinstance(out, tuple) else out.last_hidden_state

    def logits(self, params: dict, input_ids, attention_mask) -> torch.Tensor:
        return self.head(self.hidden(params, input_ids, attention_mask))


@torch.no_grad()
def check_logit_transform(model: torch.nn.Module, backbone: torch.nn.Module, head: torch.nn.Module) -> None:
    """Refuse a model whose logits are not ``head(backbone(x))``: the meta-gradient's LM-head
    contraction (``_dloss_dhidden``) and every θ forward here assume exactly that. Models that
    scale, cap or post-process logits (Granite's ``logits_scaling``, Gemma-2's soft-capping)
    would silently get a wrong meta-gradient. Checked on a short input at construction."""
    vocab = head.weight.shape[0]
    ids = (torch.arange(1, 9, device=head.weight.device) * 7919 % max(2, vocab - 1)).view(1, -1)
    mask = torch.ones_like(ids)
    ref = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
    out = backbone(input_ids=ids, attention_mask=mask, use_cache=False)
    h = out[0] if isinstance(out, tuple) else out.last_hidden_state
    mine = head(h)
    if mine.shape != ref.shape:
        raise ConfigError(f"meta-training needs logits = lm_head(backbone(x)); shapes differ "
                          f"({tuple(mine.shape)} vs {tuple(ref.shape)})")
    ref, mine = ref.double(), mine.double()
    tol = 1e-4 if head.weight.dtype in (torch.float32, torch.float64) else 2e-2
    err = (ref - mine).abs().max().item()
    scale = ref.abs().max().item()
    if not err <= tol * max(1.0, scale):
        ratio = (ref.norm() / mine.norm().clamp_min(1e-30)).item()
        raise ConfigError(f"meta-training needs logits = lm_head(backbone(x)), but this model transforms "
                          f"them (max difference {err:.3g}; norm ratio model/head {ratio:.4g}, e.g. a "
                          "logits scaling or soft-capping); such models are not supported")


def _decoder_layers(backbone) -> list[tuple[str, torch.nn.Module]]:
    """The repeated decoder blocks (the largest ModuleList) as (name prefix, module) pairs."""
    best = None
    for name, mod in backbone.named_modules():
        if isinstance(mod, torch.nn.ModuleList) and (best is None or len(mod) > len(best[1])):
            best = (name, mod)
    if best is None:
        raise ConfigError("could not find the decoder layers of the backbone")
    return [(f"{best[0]}.{i}", m) for i, m in enumerate(best[1])]
