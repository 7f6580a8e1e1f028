"""The meta-gradient of Train-Attention: how the answer loss after one weighted update of θ
depends on the token weights w (SPEC 2.3). Pure functions of tensors; no PyTorch internals
are patched or copied.

Notation (one training pair = document D + task T with an answer span; P pairs at once)
---------------------------------------------------------------------------------------
θ          trainable tensors of the base model (LoRA matrices, or whole decoder layers), kept
           as a dict of tensors and applied with ``torch.func.functional_call``. In LoRA mode
           every pair has its own copy: tensors carry a leading pair dimension ``[P, ...]`` and
           one forward pass serves all P pairs, each with its own θ.
ℓ_t(θ)     per-token NLL of the document, aligned with the tokens (``taalm.ckl.loss``), mask m_t.
L(θ; w)    = Σ_t m_t w_t ℓ_t / S,   S = Σ_t m_t w_t                        (weighted loss)
g          = ∇θ L(θ_k; w)   at θ_k, the state after ``k_warm`` warm-up steps (taken with w
           detached: they carry no gradient to φ)
θ'         = θ_k (1 − lr·λ) − U(g)                                       (one differentiable step)
           U(g) = lr·g (SGD),  U(g) = lr·m̂/(√v̂ + ε) with m = β1 m_k + (1−β1) g,
           v = β2 v_k + (1−β2) g², m̂ = m/(1−β1^t), v̂ = v/(1−β2^t) (AdamW; warm-up state fixed)
O(θ')      the outer objective on the task's answer tokens (``answer_nll``, ``change3``,
           ``change2``), plus optionally λ_U · mean |ℓ'(T_U) − ℓ⁰(T_U)| on an unrelated task.

The exact derivative with respect to w (weight decay does not depend on w):

    ∂O/∂w_i = −⟨∇θ'O ⊙ U'(g), ∂g/∂w_i⟩,     ∂g/∂w_i = m_i (∇θ ℓ_i − g) / S

    U'(g) = lr                                              (SGD)
    U'(g) = lr/bc1 · [ (1−β1)/D − m · (1−β2) g / (bc2 · s · D²) ],
            s = √(v/bc2),  D = s + ε,  bc_j = 1 − β_j^t                        (AdamW, elementwise)

so with one direction per pair, v = ∇θ'O ⊙ U'(g), and d_i = ⟨v, ∇θ ℓ_i(θ_k)⟩:

    ∂O/∂w_i = −m_i (d_i − Σ_j m_j w_j d_j / S) / S                              (★)

Every d_i is a directional derivative of the per-token losses at θ_k in the single direction v.
Two engines compute ∂O/∂w:

``double_backward``  the reference: g is taken with ``create_graph=True``, θ' is a
                     differentiable function of w, and autograd differentiates O(θ') back to w.
``directional``      (★): d comes from one forward-mode JVP through the *backbone only*,
                     contracted with ∂ℓ_i/∂h_{i−1} = W_headᵀ(softmax(z_{i−1}) − e_{x_i}) (the LM
                     head is frozen, so ℓ_i depends on θ only through the hidden state h_{i−1});
                     the vocabulary-sized logit tangent is never formed and θ's graph is never
                     differentiated twice. Central finite differences (two forwards at θ ± h·v)
                     are an option (``fd``) for models without forward-mode rules.

Both return ∂O/∂w; the caller then runs one ordinary backward through φ with that vector.
At v̂ = 0 (an entry whose gradient has always been 0, e.g. LoRA A while B = 0) the derivative
of √v̂ is taken as 0 in both engines (``_safe_sqrt``), so no NaN appears; such entries carry no
gradient to w anyway.

Second order on CPU: PyTorch's fused SDPA kernels have neither a double-backward nor a
forward-mode rule, so the θ model used here must run eager attention (``MetaTheta`` checks it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
import torch.autograd.forward_ad as fwAD
from torch.func import functional_call

from ..ckl.loss import per_sequence_weighted_loss, token_losses
from ..core.config import ENGINES, OBJECTIVES, InnerConfig, MetaThetaConfig, MetaTrainConfig
from ..core.errors import ConfigError


# --------------------------------------------------------------------------------------------
# θ for meta-training: a frozen model + trainable tensors passed functionally
# --------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------------------------
def outer_objective(name: str, task_losses: torch.Tensor, answer_mask: torch.Tensor,
                    task_losses0: torch.Tensor | None = None) -> torch.Tensor:
    """Outer loss per pair ``[P]`` from the task's per-token losses at θ' (and at θ0).

    answer_nll: mean answer-token NLL (the release's ``phi_loss`` with the label mask);
    change3: Σ (ℓ' − ℓ⁰)³ / |answer|; change2: Σ sign(Δ) Δ² / |answer|.
    """
    a = answer_mask.to(task_losses.dtype)
    n = a.sum(1).clamp_min(1)
    if name == "answer_nll":
        return (a * task_losses).sum(1) / n
    if task_losses0 is None:
        raise ValueError(f"objective {name} needs the task losses at θ0")
    d = task_losses - task_losses0
    if name == "change3":
        return (a * d ** 3).sum(1) / n
    if name == "change2":
        return (a * torch.sign(d) * d ** 2).sum(1) / n
    raise ConfigError(f"unknown meta objective '{name}' (use {', '.join(OBJECTIVES)})")


# --------------------------------------------------------------------------------------------
# Functional optimizers (out of place, differentiable)
# --------------------------------------------------------------------------------------------
def _safe_sqrt(x: torch.Tensor) -> torch.Tensor:
    """√x with derivative 0 (instead of ∞·0 = NaN) where x = 0."""
    pos = x > 0
    return torch.where(pos, torch.sqrt(torch.where(pos, x, torch.ones_like(x))), torch.zeros_like(x))


def init_state(params: dict, moments: bool = True) -> dict:
    """Optimizer state: step count and (AdamW) zero moments; SGD needs no moments."""
    if not moments:
        return {"t": 0, "m": {}, "v": {}}
    return {"t": 0, "m": {n: torch.zeros_like(p) for n, p in params.items()},
            "v": {n: torch.zeros_like(p) for n, p in params.items()}}


def optim_step(opt: InnerConfig, params: dict, grads: dict, state: dict) -> tuple[dict, dict]:
    """One step of ``opt`` out of place: returns (new params, new state).

    Same arithmetic as ``torch.optim.AdamW`` / ``torch.optim.SGD`` (decoupled weight decay for
    AdamW, L2-free SGD with the same decoupled decay); differentiable when the inputs carry a
    graph. Tested against torch.optim in float64.
    """
    lr, wd = opt.lr, opt.weight_decay
    new, t = {}, state["t"] + 1
    ms, vs = {}, {}
    b1, b2 = tuple(opt.betas)
    for n, p in params.items():
        g = grads[n]
        q = p * (1 - lr * wd) if wd else p
        if opt.optimizer == "sgd":
            new[n] = q - lr * g
            continue
        m = b1 * state["m"][n] + (1 - b1) * g
        v = b2 * state["v"][n] + (1 - b2) * g * g
        bc1, bc2 = 1 - b1 ** t, 1 - b2 ** t
        new[n] = q - (lr / bc1) * m / (_safe_sqrt(v / bc2) + opt.eps)
        ms[n], vs[n] = m, v
    return new, ({"t": t, "m": ms, "v": vs} if opt.optimizer == "adamw" else {**state, "t": t})


def update_derivative(opt: InnerConfig, grads: dict, state: dict) -> dict:
    """U'(g): elementwise derivative of the step U with respect to g, the state before the step
    held fixed (see the module docstring)."""
    if opt.optimizer == "sgd":
        return {n: torch.full_like(g, opt.lr) for n, g in grads.items()}
    b1, b2 = tuple(opt.betas)
    t = state["t"] + 1
    bc1, bc2 = 1 - b1 ** t, 1 - b2 ** t
    out = {}
    for n, g in grads.items():
        m = b1 * state["m"][n] + (1 - b1) * g
        v = b2 * state["v"][n] + (1 - b2) * g * g
        s = _safe_sqrt(v / bc2)
        D = s + opt.eps
        ds = torch.where(s > 0, (1 - b2) * g / (bc2 * torch.where(s > 0, s, torch.ones_like(s))),
                         torch.zeros_like(s))
        out[n] = (opt.lr / bc1) * ((1 - b1) / D - m * ds / (D * D))
    return out


def _step_and_derivative(opt: InnerConfig, p: torch.Tensor, g: torch.Tensor, state: dict, name: str):
    """θ' and U'(g) for one tensor, without keeping the new optimizer state (the directional
    engine needs nothing else; same arithmetic as :func:`optim_step` / :func:`update_derivative`)."""
    one = {"t": state["t"], "m": {name: state["m"].get(name)}, "v": {name: state["v"].get(name)}}
    new, _ = optim_step(opt, {name: p}, {name: g}, one)
    return new[name], update_derivative(opt, {name: g}, one)[name]


# --------------------------------------------------------------------------------------------
# One meta-step
# --------------------------------------------------------------------------------------------
@dataclass
class PairBatch:
    """P pairs, right-padded. Document: ``doc_ids``/``doc_mask`` ``[P, T]``; task:
    ``task_ids``/``task_mask`` ``[P, Tq]`` and ``answer`` ``[P, Tq]`` (1 on answer tokens,
    aligned with the tokens); optional unrelated task ``u_ids``/``u_mask``/``u_answer``."""

    doc_ids: torch.Tensor
    doc_mask: torch.Tensor
    task_ids: torch.Tensor
    task_mask: torch.Tensor
    answer: torch.Tensor
    u_ids: torch.Tensor | None = None
    u_mask: torch.Tensor | None = None
    u_answer: torch.Tensor | None = None

    @property
    def P(self) -> int:
        return self.doc_ids.shape[0]


@dataclass
class MetaStepResult:
    grad_w: torch.Tensor  # ∂(mean outer loss)/∂w  [P, T]
    outer: torch.Tensor  # outer loss per pair at θ' [P] (detached)
    outer0: torch.Tensor  # the same objective at θ0 [P] (answer_nll; 0 for the change objectives; NaN if not logged)
    inner_loss: torch.Tensor  # weighted document loss at θ_k [P]


def _grads(loss, params: dict, **kw) -> dict:
    names = list(params)
    gs = torch.autograd.grad(loss, [params[n] for n in names], allow_unused=True, **kw)
    return {n: (g if g is not None else torch.zeros_like(params[n])) for n, g in zip(names, gs)}


def _task_terms(theta: MetaTheta, params, batch: PairBatch, s: MetaTrainConfig, ref: dict) -> torch.Tensor:
    """The outer loss per pair ``[P]`` at θ = ``params`` (differentiable in params)."""
    lt, _ = token_losses(theta.logits(params, batch.task_ids, batch.task_mask), batch.task_ids, batch.task_mask)
    out = outer_objective(s.objective, lt, batch.answer, ref.get("task0"))
    if s.unrelated_weight:
        if batch.u_answer is None:
            raise ConfigError("unrelated_weight > 0 needs an unrelated task in the batch")
        lu, _ = token_losses(theta.logits(params, batch.u_ids, batch.u_mask), batch.u_ids, batch.u_mask)
        a = batch.u_answer.to(lu.dtype)
        out = out + s.unrelated_weight * (a * (lu - ref["u0"]).abs()).sum(1) / a.sum(1).clamp_min(1)
    return out


@torch.no_grad()
def _reference_losses(theta: MetaTheta, params0, batch: PairBatch, s: MetaTrainConfig) -> dict:
    """Task (and unrelated-task) losses at θ0: constants of the change/penalty objectives."""
    ref = {}
    if s.objective != "answer_nll":
        ref["task0"], _ = token_losses(theta.logits(params0, batch.task_ids, batch.task_mask),
                                        batch.task_ids, batch.task_mask)
    if s.unrelated_weight:
        if batch.u_ids is None:
            raise ConfigError("unrelated_weight > 0 needs an unrelated task in the batch")
        ref["u0"], _ = token_losses(theta.logits(params0, batch.u_ids, batch.u_mask), batch.u_ids, batch.u_mask)
    return ref


def _doc_loss(theta: MetaTheta, batch: PairBatch, p: dict, weights: torch.Tensor):
    """(L [P], logits, ℓ [P, T], m [P, T]): the weighted document loss of each pair's θ."""
    lg = theta.logits(p, batch.doc_ids, batch.doc_mask)
    losses, m = token_losses(lg, batch.doc_ids, batch.doc_mask)
    L, _ = per_sequence_weighted_loss(losses, m, weights)
    return L, lg, losses, m


@torch.enable_grad()  # works when called under no_grad (e.g. finite-difference checks)
def meta_step(theta: MetaTheta, batch: PairBatch, w: torch.Tensor, s: MetaTrainConfig,
              params0: dict | None = None, warm_weights: torch.Tensor | None = None) -> MetaStepResult:
    """∂O/∂w for P pairs (see the module docstring). ``w`` ``[P, T]`` may carry φ's graph; it is
    detached here: the caller finishes with ``w.backward(result.grad_w)``.

    θ starts at ``params0`` (default θ0 for every pair), takes ``k_warm`` warm-up steps with w
    fixed, then the differentiable step. ``warm_weights`` (default: ``w``) are the weights of the
    warm-up steps; the result does not differentiate through them either way (SPEC 2.3).
    """
    if s.engine not in ENGINES:
        raise ConfigError(f"unknown meta engine '{s.engine}' (use {', '.join(ENGINES)})")
    if s.objective not in OBJECTIVES:
        raise ConfigError(f"unknown meta objective '{s.objective}' (use {', '.join(OBJECTIVES)})")
    P = batch.P
    w = w.detach().to(theta.init[next(iter(theta.init))].dtype)
    params = params0 if params0 is not None else theta.pairs(P)
    params_init = params  # θ0 (the warm-up builds new tensors)
    ref = _reference_losses(theta, params, batch, s)
    state = init_state(params, moments=s.inner.optimizer == "adamw")
    ww = w if warm_weights is None else warm_weights.detach().to(w.dtype)
    params, state = _warm_up(theta, batch, params, state, ww, s)
    with torch.no_grad():  # θ0's answer loss, for the log only (NaN when log_outer0 is off)
        if s.objective == "answer_nll" and s.log_outer0:
            outer0 = outer_objective("answer_nll", token_losses(
                theta.logits(params_init, batch.task_ids, batch.task_mask),
                batch.task_ids, batch.task_mask)[0], batch.answer)
        else:
            outer0 = torch.full((P,), 0.0 if s.objective != "answer_nll" else math.nan, dtype=w.dtype)
    p = {n: t.detach().requires_grad_(True) for n, t in params.items()}
    engine = _double_backward if s.engine == "double_backward" else _directional
    grad_w, outer, L = engine(theta, batch, w, p, state, s, ref)
    return MetaStepResult(grad_w, outer, outer0, L)


def _warm_up(theta: MetaTheta, batch: PairBatch, params: dict, state: dict, ww: torch.Tensor,
             s: MetaTrainConfig) -> tuple[dict, dict]:
    """``k_warm`` inner steps with the weights fixed; nothing is tracked into φ."""
    for _ in range(s.inner.k_warm):
        p = {n: t.detach().requires_grad_(True) for n, t in params.items()}
        L = _doc_loss(theta, batch, p, ww)[0]
        g = _grads(L.sum(), p)  # Σ over pairs: every pair's θ gets its own gradient
        del L
        with torch.no_grad():
            params, state = optim_step(s.inner, p, g, state)
        del p, g
    return params, state


def _double_backward(theta, batch, w, p, state, s: MetaTrainConfig, ref):
    """Engine ``double_backward``: differentiate the unrolled step with autograd (create_graph)."""
    wl = w.clone().requires_grad_(True)
    L, *_ = _doc_loss(theta, batch, p, wl)
    g = _grads(L.sum(), p, create_graph=True)
    p_new, _ = optim_step(s.inner, p, g, state)
    outer = _task_terms(theta, p_new, batch, s, ref)
    (grad_w,) = torch.autograd.grad(outer.mean(), wl)
    return grad_w.detach(), outer.detach(), L.detach()


def _directional(theta, batch, w, p, state, s: MetaTrainConfig, ref):
    """Engine ``directional``, (★) of the module docstring: one first-order backward for
    v = ∇θ'O ⊙ U'(g), then d = ∂ℓ/∂θ · v per token by a JVP (or finite differences).
    Memory matters here (P copies of θ): every per-pair tensor is freed as soon as it is used."""
    L, logits, _, m = _doc_loss(theta, batch, p, w)
    g = _grads(L.sum(), p)  # frees the inner graph
    L = L.detach()
    with torch.no_grad():
        dldh = _dloss_dhidden(logits, batch.doc_ids, theta.head.weight) if s.directional == "forward" else None
        del logits  # dldh: [P, T, H]
        p0 = {n: t.detach() for n, t in p.items()}
        p_new, Up, structural_zero = {}, {}, {}
        for n in list(g):
            gn = g.pop(n)
            if s.directional == "fd":
                structural_zero[n] = gn == 0
            p_new[n], Up[n] = _step_and_derivative(s.inner, p0[n], gn, state, n)
        del state
    p_new = {n: t.requires_grad_(True) for n, t in p_new.items()}
    outer = _task_terms(theta, p_new, batch, s, ref)
    go = _grads(outer.mean(), p_new)
    del p_new
    with torch.no_grad():
        v = {n: go.pop(n).mul_(Up.pop(n)) for n in list(go)}  # v = ∇θ'O ⊙ U'(g)
        if s.directional == "forward":
            hdot = _jvp_hidden(theta, p0, v, batch)
            assert dldh is not None  # computed above for directional "forward"
            d = F.pad((dldh[:, :-1] * hdot[:, :-1].to(dldh.dtype)).sum(-1), (1, 0))  # [P, T]
            del hdot, dldh
        elif s.directional == "fd":
            # Entries whose gradient is exactly 0 (LoRA A while B = 0: every ∇_A ℓ_i is 0) add
            # nothing to d, but Adam's U' there is lr/ε-sized and would swamp the step length;
            # they are left out of the finite-difference direction.
            for n in v:
                v[n].masked_fill_(structural_zero.pop(n), 0.0)
            d = _fd_directional(theta, p0, v, batch, s.fd_step)
        else:
            raise ConfigError(f"unknown directional mode '{s.directional}' (forward | fd)")
        d = d * m
        vg, S = per_sequence_weighted_loss(d, m, w)  # ⟨v, g⟩ per pair and S = Σ m w   [P]
        grad_w = -m.to(d.dtype) * (d - vg[:, None]) / S[:, None]
    return grad_w, outer.detach(), L


def _jvp_hidden(theta: MetaTheta, p0: dict, v: dict, batch: PairBatch) -> torch.Tensor:
    """Tangent of the backbone's last hidden states at θ = ``p0`` in direction ``v``
    (forward-mode AD with dual tensors; no graph is recorded)."""
    with fwAD.dual_level():
        dual = {n: fwAD.make_dual(p0[n], v[n]) for n in p0}
        h = theta.hidden(dual, batch.doc_ids, batch.doc_mask)
        return fwAD.unpack_dual(h).tangent


def _dloss_dhidden(logits: torch.Tensor, input_ids: torch.Tensor, head_weight: torch.Tensor) -> torch.Tensor:
    """∂ℓ_{t+1}/∂h_t = W_headᵀ (softmax(z_t) − e_{x_{t+1}}), at position t; ``[P, T, H]``
    (the last position predicts nothing and is 0)."""
    p = torch.softmax(logits[:, :-1].float() if logits.dtype != torch.float64 else logits[:, :-1], dim=-1)
    p.scatter_add_(-1, input_ids[:, 1:, None], -torch.ones_like(p[..., :1]))
    out = p @ head_weight.to(p.dtype)  # [P, T-1, H]
    return F.pad(out, (0, 0, 0, 1))


def _fd_directional(theta: MetaTheta, p0: dict, v: dict, batch: PairBatch, step: float) -> torch.Tensor:
    """d_t ≈ (ℓ_t(θ + h v) − ℓ_t(θ − h v)) / 2h per pair, h chosen so that ‖h v‖ = ``step``."""
    if theta.batched:
        sq = sum((t.reshape(t.shape[0], -1).double() ** 2).sum(1) for t in v.values())  # [P]
        h = (step / sq.sqrt().clamp_min(1e-30)).to(next(iter(v.values())).dtype)

        def shift(sign):
            return {n: p0[n] + sign * h.view(-1, *([1] * (p0[n].dim() - 1))) * v[n] for n in p0}
    else:
        sq = sum((t.double() ** 2).sum() for t in v.values())
        h = float(step / max(sq.sqrt().item(), 1e-30))

        def shift(sign):
            return {n: p0[n] + sign * h * v[n] for n in p0}

    lp, _ = token_losses(theta.logits(shift(1.0), batch.doc_ids, batch.doc_mask), batch.doc_ids, batch.doc_mask)
    lm, _ = token_losses(theta.logits(shift(-1.0), batch.doc_ids, batch.doc_mask), batch.doc_ids, batch.doc_mask)
    hh = h.view(-1, 1) if torch.is_tensor(h) else h
    return (lp - lm) / (2 * hh)
