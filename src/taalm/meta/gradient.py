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
O(θ')      the outer objective on the task's answer tokens, a registered part of
           :mod:`taalm.meta.objectives` (``answer_nll``, ``change3``, ``change2``), plus
           optionally λ_U · mean |ℓ'(T_U) − ℓ⁰(T_U)| on an unrelated task.

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
of √v̂ is taken as 0 in both engines (:func:`taalm.meta.inner_optim.adamw.safe_sqrt`), so no NaN
appears; such entries carry no gradient to w anyway. The inner optimizers (SGD, AdamW) are the
registered parts of :mod:`taalm.meta.inner_optim`; the engines ask an objective and an optimizer
for their properties (:class:`~taalm.meta.objectives.OuterObjective`), never for their names.

Second order on CPU: PyTorch's fused SDPA kernels have neither a double-backward nor a
forward-mode rule, so the θ model used here must run eager attention (``MetaTheta`` checks it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
import torch.autograd.forward_ad as fwAD

from ..ckl.loss import per_sequence_weighted_loss, token_losses
from ..core.errors import ConfigError
from .config import MetaTrainConfig
from .inner_optim import build_inner_optimizer, init_state, optim_step, step_and_derivative
from .objectives import OuterObjective, build_objective
from .theta import MetaTheta


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
    outer0: torch.Tensor  # the same objective at θ0 [P] (its theta0_value where it has one; NaN if not logged)
    inner_loss: torch.Tensor  # weighted document loss at θ_k [P]


@dataclass
class OuterTerms:
    """The outer objective of one meta-step and the constants it is measured against, at θ0."""

    objective: OuterObjective
    task0: torch.Tensor | None = None  # the task's per-token losses at θ0 (objective.needs_theta0)
    u0: torch.Tensor | None = None  # the unrelated task's per-token losses at θ0 (unrelated_weight > 0)


@torch.enable_grad()  # works when called under no_grad (e.g. finite-difference checks)
def meta_step(theta: MetaTheta, batch: PairBatch, w: torch.Tensor, s: MetaTrainConfig,
              params0: dict | None = None, warm_weights: torch.Tensor | None = None) -> MetaStepResult:
    """∂O/∂w for P pairs (see the module docstring). ``w`` ``[P, T]`` may carry φ's graph; it is
    detached here: the caller finishes with ``w.backward(result.grad_w)``.

    θ starts at ``params0`` (default θ0 for every pair), takes ``k_warm`` warm-up steps with w
    fixed, then the differentiable step. ``warm_weights`` (default: ``w``) are the weights of the
    warm-up steps; the result does not differentiate through them either way (SPEC 2.3).
    """
    engine = _ENGINE_STEPS.get(s.engine)  # the settings' rules were checked once, by the caller's config
    if engine is None:
        raise ConfigError(f"engine={s.engine!r}: use one of {', '.join(_ENGINE_STEPS)}", "engine")
    P = batch.P
    w = w.detach().to(theta.init[next(iter(theta.init))].dtype)
    params = params0 if params0 is not None else theta.pairs(P)
    params_init = params  # θ0 (the warm-up builds new tensors)
    ref = _reference_losses(theta, params, batch, s, build_objective(s))
    state = init_state(params, moments=build_inner_optimizer(s.inner).moments)
    ww = w if warm_weights is None else warm_weights.detach().to(w.dtype)
    params, state = _warm_up(theta, batch, params, state, ww, s)
    outer0 = _outer0(theta, params_init, batch, s, ref, w.dtype)
    p = {n: t.detach().requires_grad_(True) for n, t in params.items()}
    grad_w, outer, L = engine(theta, batch, w, p, state, s, ref)
    return MetaStepResult(grad_w, outer, outer0, L)


@torch.no_grad()
def _reference_losses(theta: MetaTheta, params0, batch: PairBatch, s: MetaTrainConfig,
                      objective: OuterObjective) -> OuterTerms:
    """Task (and unrelated-task) losses at θ0: constants of the change/penalty objectives."""
    ref = OuterTerms(objective)
    if objective.needs_theta0:
        ref.task0, _ = token_losses(theta.logits(params0, batch.task_ids, batch.task_mask),
                                    batch.task_ids, batch.task_mask)
    if s.unrelated_weight:
        if batch.u_ids is None:
            raise ConfigError("unrelated_weight > 0 needs an unrelated task in the batch")
        ref.u0, _ = token_losses(theta.logits(params0, batch.u_ids, batch.u_mask), batch.u_ids, batch.u_mask)
    return ref


@torch.no_grad()
def _outer0(theta: MetaTheta, params0, batch: PairBatch, s: MetaTrainConfig, ref: OuterTerms,
            dtype: torch.dtype) -> torch.Tensor:
    """The objective at θ0 ``[P]``, for the log only: its ``theta0_value`` where it has one (0 for
    the change objectives), else computed from θ0's task losses (NaN when log_outer0 is off)."""
    if ref.objective.theta0_value is not None:
        return torch.full((batch.P,), ref.objective.theta0_value, dtype=dtype)
    if not s.log_outer0:
        return torch.full((batch.P,), math.nan, dtype=dtype)
    losses0 = ref.task0
    if losses0 is None:
        losses0, _ = token_losses(theta.logits(params0, batch.task_ids, batch.task_mask),
                                  batch.task_ids, batch.task_mask)
    return ref.objective.outer(losses0, batch.answer, losses0)


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


def _doc_loss(theta: MetaTheta, batch: PairBatch, p: dict, weights: torch.Tensor):
    """(L [P], logits, ℓ [P, T], m [P, T]): the weighted document loss of each pair's θ."""
    lg = theta.logits(p, batch.doc_ids, batch.doc_mask)
    losses, m = token_losses(lg, batch.doc_ids, batch.doc_mask)
    L, _ = per_sequence_weighted_loss(losses, m, weights)
    return L, lg, losses, m


def _grads(loss, params: dict, **kw) -> dict:
    names = list(params)
    gs = torch.autograd.grad(loss, [params[n] for n in names], allow_unused=True, **kw)
    return {n: (g if g is not None else torch.zeros_like(params[n])) for n, g in zip(names, gs)}


def _double_backward(theta, batch, w, p, state, s: MetaTrainConfig, ref):
    """Engine ``double_backward``: differentiate the unrolled step with autograd (create_graph)."""
    wl = w.clone().requires_grad_(True)
    L, *_ = _doc_loss(theta, batch, p, wl)
    g = _grads(L.sum(), p, create_graph=True)
    p_new, _ = optim_step(s.inner, p, g, state)
    outer = _task_terms(theta, p_new, batch, s, ref)
    (grad_w,) = torch.autograd.grad(outer.mean(), wl)
    return grad_w.detach(), outer.detach(), L.detach()


def _task_terms(theta: MetaTheta, params, batch: PairBatch, s: MetaTrainConfig, ref: OuterTerms) -> torch.Tensor:
    """The outer loss per pair ``[P]`` at θ = ``params`` (differentiable in params)."""
    lt, _ = token_losses(theta.logits(params, batch.task_ids, batch.task_mask), batch.task_ids, batch.task_mask)
    out = ref.objective.outer(lt, batch.answer, ref.task0)
    if s.unrelated_weight:
        if batch.u_answer is None or ref.u0 is None:
            raise ConfigError("unrelated_weight > 0 needs an unrelated task in the batch")
        lu, _ = token_losses(theta.logits(params, batch.u_ids, batch.u_mask), batch.u_ids, batch.u_mask)
        a = batch.u_answer.to(lu.dtype)
        out = out + s.unrelated_weight * (a * (lu - ref.u0).abs()).sum(1) / a.sum(1).clamp_min(1)
    return out


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
            p_new[n], Up[n] = step_and_derivative(s.inner, p0[n], gn, state, n)
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


def _dloss_dhidden(logits: torch.Tensor, input_ids: torch.Tensor, head_weight: torch.Tensor) -> torch.Tensor:
    """∂ℓ_{t+1}/∂h_t = W_headᵀ (softmax(z_t) − e_{x_{t+1}}), at position t; ``[P, T, H]``
    (the last position predicts nothing and is 0)."""
    p = torch.softmax(logits[:, :-1].float() if logits.dtype != torch.float64 else logits[:, :-1], dim=-1)
    p.scatter_add_(-1, input_ids[:, 1:, None], -torch.ones_like(p[..., :1]))
    out = p @ head_weight.to(p.dtype)  # [P, T-1, H]
    return F.pad(out, (0, 0, 0, 1))


def _jvp_hidden(theta: MetaTheta, p0: dict, v: dict, batch: PairBatch) -> torch.Tensor:
    """Tangent of the backbone's last hidden states at θ = ``p0`` in direction ``v``
    (forward-mode AD with dual tensors; no graph is recorded)."""
    with fwAD.dual_level():
        dual = {n: fwAD.make_dual(p0[n], v[n]) for n in p0}
        h = theta.hidden(dual, batch.doc_ids, batch.doc_mask)
        return fwAD.unpack_dual(h).tangent


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


#: ``engine`` -> the function that computes ∂O/∂w after the warm-up (see the module docstring)
_ENGINE_STEPS = {"directional": _directional, "double_backward": _double_backward}
