"""The meta-gradient engines (SPEC 2.3), checked in float64.

The float64 model is the tiny GPT-2 (it truly computes in float64 when cast with ``.double()``;
HF Llama keeps RMSNorm and the eager softmax in float32 internally, so it is only used for the
looser checks). GPT-2's linear layers are HF ``Conv1D``; LoRA wraps them the same way.
"""

from __future__ import annotations

import pytest
import torch

from conftest import make_gpt2, make_llama
from taalm.core.errors import ConfigError
from taalm.meta.config import InnerConfig, MetaThetaConfig, MetaTrainConfig
from taalm.meta.gradient import PairBatch, meta_step
from taalm.meta.inner_optim import init_state, optim_step, update_derivative
from taalm.meta.theta import MetaTheta

P, T, TQ = 2, 12, 8


def inner_cfg(name="adamw", lr=2e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    """The inner optimizer's config (taalm.meta.config.InnerConfig)."""
    return InnerConfig(optimizer=name, lr=lr, betas=list(betas), eps=eps, weight_decay=weight_decay)


def step_cfg(k_warm=1, inner=None, **kw):
    """A MetaTrainConfig holding the meta-step's settings (k_warm lives in its inner section)."""
    inner = inner or InnerConfig()
    inner.k_warm = k_warm
    return MetaTrainConfig(inner=inner, **kw)


def theta_cfg(**kw):
    return MetaThetaConfig(**kw)


def make_batch(vocab: int, seed: int = 0) -> PairBatch:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (P, T), generator=g)
    mask = torch.ones(P, T, dtype=torch.long)
    mask[1, 9:] = 0  # pair 1's document is shorter (right padding)
    tids = torch.randint(3, vocab, (P, TQ), generator=g)
    tmask = torch.ones(P, TQ, dtype=torch.long)
    tmask[0, 6:] = 0
    ans = torch.zeros(P, TQ)
    ans[0, 4:6] = 1
    ans[1, 5:8] = 1
    u = torch.randint(3, vocab, (P, TQ), generator=g)
    ua = torch.zeros(P, TQ)
    ua[:, 3:5] = 1
    return PairBatch(ids, mask, tids, tmask, ans, u, torch.ones(P, TQ, dtype=torch.long), ua)


def rel(a, b):
    return ((a - b).norm() / b.norm()).item()


@pytest.fixture(scope="module")
def gpt2_theta(tokenizer):
    return MetaTheta(make_gpt2(len(tokenizer)).double(), theta_cfg(r=4, alpha=8))


def weights(seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(P, T, generator=g, dtype=torch.float64) * 0.8 + 0.1


# ---- the functional optimizer ------------------------------------------------------------------
@pytest.mark.parametrize("name", ["adamw", "sgd"])
def test_functional_optimizer_matches_torch(name):
    torch.manual_seed(0)
    p = torch.randn(5, 3, dtype=torch.float64)
    opt = inner_cfg(name, lr=0.03, betas=(0.8, 0.95), eps=1e-8, weight_decay=0.1)
    ref = p.clone().requires_grad_(True)
    if name == "adamw":
        torch_opt = torch.optim.AdamW([ref], lr=0.03, betas=(0.8, 0.95), eps=1e-8, weight_decay=0.1)
    else:
        torch_opt = torch.optim.SGD([ref], lr=0.03)
    params, state = {"p": p}, init_state({"p": p})
    for k in range(4):
        g = torch.randn(5, 3, dtype=torch.float64)
        if k == 1:
            g[0] = 0.0  # entries with a zero gradient
        ref.grad = g.clone()
        if name == "sgd":  # torch's SGD couples weight decay; apply the decoupled decay by hand
            with torch.no_grad():
                ref.mul_(1 - 0.03 * 0.1)
        torch_opt.step()
        params, state = optim_step(opt, params, {"p": g}, state)
        assert torch.allclose(params["p"], ref.detach(), rtol=0, atol=1e-14)


@pytest.mark.parametrize("name", ["adamw", "sgd"])
def test_update_derivative_matches_autograd(name):
    """U'(g) (closed form, elementwise) = d(step)/dg by autograd, with a warm-up state."""
    torch.manual_seed(1)
    opt = inner_cfg(name, lr=0.01)
    p = {"p": torch.randn(7, dtype=torch.float64)}
    _, state = optim_step(opt, p, {"p": torch.randn(7, dtype=torch.float64)}, init_state(p))
    g = torch.randn(7, dtype=torch.float64)
    g[2] = 0.0
    gg = g.clone().requires_grad_(True)
    new, _ = optim_step(opt, p, {"p": gg}, state)
    auto = torch.stack([torch.autograd.grad(-new["p"][i], gg, retain_graph=True)[0][i] for i in range(7)])
    closed = update_derivative(opt, {"p": g}, state)["p"]
    assert torch.allclose(closed, auto, rtol=1e-12, atol=1e-15)


def test_adam_first_step_passes_little_gradient():
    """SPEC 2.3: from a zero state Adam's step is ≈ lr·sign(g), so U'(g) ≈ 0."""
    opt = inner_cfg("adamw", lr=1e-3)
    g = {"p": torch.tensor([0.5, -2.0, 1e-3], dtype=torch.float64)}
    d = update_derivative(opt, g, init_state(g))["p"]
    # closed form for t = 1: lr·ε/(|g| + ε)², against SGD's derivative lr
    assert torch.allclose(d, 1e-3 * 1e-8 / (g["p"].abs() + 1e-8) ** 2, rtol=1e-9)
    assert (d[:2] < 1e-7 * 1e-3).all()


# ---- the two engines agree (float64) --------------------------------------------------------------
@pytest.mark.parametrize("opt", ["sgd", "adamw"])
@pytest.mark.parametrize("objective", ["answer_nll", "change3", "change2"])
@pytest.mark.parametrize("k_warm", [0, 1])
def test_directional_equals_double_backward(gpt2_theta, tokenizer, opt, objective, k_warm):
    batch = make_batch(len(tokenizer))
    w = weights()
    lr = 0.05 if opt == "sgd" else 0.01
    s = step_cfg(engine="double_backward", objective=objective, k_warm=k_warm,
                     inner=inner_cfg(opt, lr=lr, weight_decay=0.01))
    ref = meta_step(gpt2_theta, batch, w, s)
    s.engine = "directional"
    fast = meta_step(gpt2_theta, batch, w, s)
    assert ref.grad_w.abs().max() > 0
    assert rel(fast.grad_w, ref.grad_w) <= 1e-8
    assert torch.allclose(fast.outer, ref.outer, rtol=1e-12, atol=0)
    assert (ref.grad_w[1, 9:] == 0).all() and (fast.grad_w[1, 9:] == 0).all()  # pads


def test_unrelated_penalty_is_differentiated(gpt2_theta, tokenizer):
    batch = make_batch(len(tokenizer))
    w = weights()
    base = step_cfg(engine="double_backward", k_warm=1, inner=inner_cfg("sgd", lr=0.05))
    pen = step_cfg(engine="double_backward", k_warm=1, inner=inner_cfg("sgd", lr=0.05),
                       unrelated_weight=0.5)
    g0 = meta_step(gpt2_theta, batch, w, base).grad_w
    g1 = meta_step(gpt2_theta, batch, w, pen)
    assert rel(g1.grad_w, g0) > 1e-3  # the penalty changes the gradient
    pen.engine = "directional"
    assert rel(meta_step(gpt2_theta, batch, w, pen).grad_w, g1.grad_w) <= 1e-8
    with pytest.raises(ConfigError, match="unrelated"):
        meta_step(gpt2_theta, PairBatch(*[getattr(batch, f) for f in
                                          ("doc_ids", "doc_mask", "task_ids", "task_mask", "answer")]), w, pen)


@pytest.mark.parametrize("k_warm", [0, 1])
def test_finite_difference_directional_is_close(gpt2_theta, tokenizer, k_warm):
    """k_warm=0: LoRA A has an exactly-zero gradient (B = 0) where Adam's U' is lr/ε-sized; those
    entries are left out of the fd direction, else they would swamp the step length."""
    batch = make_batch(len(tokenizer))
    w = weights()
    s = step_cfg(engine="double_backward", k_warm=k_warm, inner=inner_cfg("adamw", lr=0.01))
    ref = meta_step(gpt2_theta, batch, w, s)
    s.engine, s.directional, s.fd_step = "directional", "fd", 1e-5
    assert rel(meta_step(gpt2_theta, batch, w, s).grad_w, ref.grad_w) < 1e-6


# ---- against finite differences of the outer loss in φ ---------------------------------------------
class TinyPhi(torch.nn.Module):
    """A stand-in φ: token embedding -> causal running mean -> linear -> sigmoid (float64)."""

    def __init__(self, vocab):
        super().__init__()
        torch.manual_seed(3)
        self.emb = torch.nn.Embedding(vocab, 6, dtype=torch.float64)
        self.head = torch.nn.Linear(6, 1, dtype=torch.float64)

    def forward(self, ids):
        h = self.emb(ids).cumsum(1) / torch.arange(1, ids.shape[1] + 1, dtype=torch.float64)[None, :, None]
        return torch.sigmoid(self.head(h)).squeeze(-1)


@pytest.mark.parametrize("engine", ["double_backward", "directional"])
@pytest.mark.parametrize("opt", ["sgd", "adamw"])
def test_phi_gradient_matches_finite_differences(gpt2_theta, tokenizer, engine, opt):
    batch = make_batch(len(tokenizer))
    phi = TinyPhi(len(tokenizer))
    s = step_cfg(engine=engine, k_warm=1, inner=inner_cfg(opt, lr=0.05 if opt == "sgd" else 0.01))
    w = phi(batch.doc_ids)
    w0 = w.detach().clone()  # the warm-up step is not differentiated: hold its weights fixed
    r = meta_step(gpt2_theta, batch, w, s)
    w.backward(r.grad_w)
    analytic = phi.head.weight.grad.flatten().clone()

    def outer_at(delta, i):
        with torch.no_grad():
            phi.head.weight.view(-1)[i] += delta
            out = meta_step(gpt2_theta, batch, phi(batch.doc_ids), s, warm_weights=w0).outer.mean().item()
            phi.head.weight.view(-1)[i] -= delta
        return out

    h = 1e-5
    fd = torch.tensor([(outer_at(h, i) - outer_at(-h, i)) / (2 * h) for i in range(analytic.numel())],
                      dtype=torch.float64)
    assert analytic.abs().max() > 1e-8
    assert torch.allclose(analytic, fd, rtol=1e-5, atol=1e-10), (analytic, fd)


# ---- batching: P pairs in one pass = one at a time --------------------------------------------------
@pytest.mark.parametrize("engine", ["double_backward", "directional"])
def test_batched_pairs_equal_one_at_a_time(gpt2_theta, tokenizer, engine):
    batch = make_batch(len(tokenizer))
    w = weights()
    s = step_cfg(engine=engine, k_warm=1, inner=inner_cfg("adamw", lr=0.01))
    together = meta_step(gpt2_theta, batch, w, s)
    for i in range(P):
        one = PairBatch(*[getattr(batch, f)[i:i + 1] for f in
                          ("doc_ids", "doc_mask", "task_ids", "task_mask", "answer")])
        r = meta_step(gpt2_theta, one, w[i:i + 1], s)
        # the batch loss is the mean over pairs: one pair alone has P times the gradient
        assert torch.allclose(r.grad_w[0], P * together.grad_w[i], rtol=1e-9, atol=1e-15)
        assert torch.allclose(r.outer[0], together.outer[i], rtol=1e-12)


# ---- other θ parameterisations and checks --------------------------------------------------------
def test_layers_mode_engines_agree(tokenizer):
    theta = MetaTheta(make_gpt2(len(tokenizer)).double(), theta_cfg(mode="layers", layers=[-1]))
    assert all(n.startswith("h.1.") for n in theta.init)
    full = make_batch(len(tokenizer))
    batch = PairBatch(*[getattr(full, f)[:1] for f in ("doc_ids", "doc_mask", "task_ids", "task_mask", "answer")])
    w = weights()[:1]
    s = step_cfg(engine="double_backward", k_warm=1, inner=inner_cfg("sgd", lr=0.05))
    ref = meta_step(theta, batch, w, s)
    s.engine = "directional"
    assert rel(meta_step(theta, batch, w, s).grad_w, ref.grad_w) <= 1e-8
    with pytest.raises(ConfigError, match="one pair"):
        theta.pairs(2)


def test_llama_engines_agree_loosely(tokenizer):
    """HF Llama keeps norms/softmax in float32 inside, so agreement is at float32 level."""
    theta = MetaTheta(make_llama(len(tokenizer)).double(), theta_cfg(r=4, alpha=8))
    batch = make_batch(len(tokenizer))
    w = weights()
    s = step_cfg(engine="double_backward", k_warm=1, inner=inner_cfg("adamw", lr=0.01))
    ref = meta_step(theta, batch, w, s)
    s.engine = "directional"
    assert rel(meta_step(theta, batch, w, s).grad_w, ref.grad_w) < 1e-5


def test_theta_needs_eager_attention(tokenizer):
    m = make_llama(len(tokenizer))
    m.config._attn_implementation = "sdpa"
    with pytest.raises(ConfigError, match="eager"):
        MetaTheta(m)


def test_theta0_is_not_modified_and_base_is_frozen(gpt2_theta, tokenizer):
    before = {n: t.clone() for n, t in gpt2_theta.init.items()}
    base = {n: p.clone() for n, p in gpt2_theta.model.named_parameters()}
    meta_step(gpt2_theta, make_batch(len(tokenizer)), weights(),
              step_cfg(k_warm=2, inner=inner_cfg("adamw", lr=0.01)))
    assert all(torch.equal(before[n], t) for n, t in gpt2_theta.init.items())
    assert all(torch.equal(base[n], p) for n, p in gpt2_theta.model.named_parameters())


# ---- the logit transform, low-precision bases, parity with peft -----------------------------------
def test_models_that_transform_logits_are_refused(tokenizer):
    """θ's logits must be head(backbone(x)): a model whose forward rescales them is refused at
    construction (here by a forward hook; Granite's ``logits_scaling`` by its config key too)."""
    m = make_llama(len(tokenizer))
    MetaTheta(make_llama(len(tokenizer)))  # the plain model passes the check

    def scale(module, args, out):
        out.logits = out.logits / 2.0
        return out

    m.register_forward_hook(scale)
    with pytest.raises(ConfigError, match="transforms"):
        MetaTheta(m)
    g = make_llama(len(tokenizer))
    g.config.logits_scaling = 8.0
    with pytest.raises(ConfigError, match="logits_scaling"):
        MetaTheta(g)


def test_inner_state_stays_float32_on_a_bf16_base(tokenizer):
    """On a bf16 base the per-pair LoRA, the Adam moments and w are float32 (as CKL keeps its
    adapters); the meta-gradient then agrees with the float32 base's to bf16 accuracy."""
    import taalm.meta.gradient as mg

    b16 = MetaTheta(make_llama(len(tokenizer)).to(torch.bfloat16), theta_cfg(r=4, alpha=8))
    f32 = MetaTheta(make_llama(len(tokenizer)), theta_cfg(r=4, alpha=8))
    assert {t.dtype for t in b16.init.values()} == {torch.float32}
    seen = []
    real = mg.optim_step

    def spy(opt, params, grads, state):
        seen.extend(t.dtype for t in [*params.values(), *grads.values(), *state["m"].values(), *state["v"].values()])
        return real(opt, params, grads, state)

    batch = make_batch(len(tokenizer))
    w = weights().float()
    s = step_cfg(engine="double_backward", k_warm=1, inner=inner_cfg("adamw", lr=0.01))
    try:
        mg.optim_step = spy
        r16 = meta_step(b16, batch, w.to(torch.bfloat16), s)
    finally:
        mg.optim_step = real
    assert seen and set(seen) == {torch.float32}
    assert r16.grad_w.dtype == torch.float32 and torch.isfinite(r16.grad_w).all()
    r32 = meta_step(f32, batch, w, s)
    cos = torch.nn.functional.cosine_similarity(r16.grad_w.flatten(), r32.grad_w.flatten(), dim=0)
    assert cos > 0.9, cos
    with pytest.raises(ConfigError, match="float32"):
        MetaTheta(make_llama(len(tokenizer)).to(torch.bfloat16), theta_cfg(mode="layers", layers=[-1]))


@pytest.mark.parametrize("make", [make_llama, make_gpt2])
def test_lora_equals_peft_lora(tokenizer, make):
    """MetaTheta's per-pair LoRA computes what peft's LoRA computes with the same A and B."""
    from peft import LoraConfig, get_peft_model

    r, alpha = 4, 8
    theta = MetaTheta(make(len(tokenizer)).double(), theta_cfg(r=r, alpha=alpha))
    ref = get_peft_model(make(len(tokenizer)).double(),
                         LoraConfig(r=r, lora_alpha=alpha, target_modules="all-linear", lora_dropout=0.0,
                                    fan_in_fan_out=make is make_gpt2))
    g = torch.Generator().manual_seed(3)
    params = {n: torch.randn(t.shape, generator=g, dtype=torch.float64) * 0.1 for n, t in theta.init.items()}
    peft_weights = {n: p for n, p in ref.named_parameters() if "lora_" in n}
    assert len(peft_weights) == len(params)
    with torch.no_grad():
        for n, p in peft_weights.items():  # base_model.model.<backbone>.<name>.lora_A.default.weight
            key = n.removeprefix("base_model.model.").replace(".default.weight", "")
            key = key.split(".", 1)[1]  # drop the backbone attribute (model. / transformer.)
            p.copy_(params[key])
    batch = make_batch(len(tokenizer))
    mine = theta.logits(params, batch.doc_ids, batch.doc_mask)
    theirs = ref(input_ids=batch.doc_ids, attention_mask=batch.doc_mask).logits
    valid = batch.doc_mask.bool()
    assert torch.allclose(mine[valid], theirs[valid], rtol=1e-9, atol=1e-9)
    # the batched form (one LoRA per pair) gives each pair its own adapter
    both = {n: torch.stack([p, torch.zeros_like(p)]) for n, p in params.items()}
    out = theta.logits(both, batch.doc_ids, batch.doc_mask)
    assert torch.allclose(out[0][valid[0]], theirs[0][valid[0]], rtol=1e-9, atol=1e-9)
    assert not torch.allclose(out[1][valid[1]], theirs[1][valid[1]], atol=1e-6)


def test_lora_on_the_last_layers_only(tokenizer):
    """theta.lora_layers=K: per-pair adapters on the last K decoder layers only; the engines still
    agree (float64), and at θ0 the model computes what the base does."""
    base = make_gpt2(len(tokenizer)).double()
    theta = MetaTheta(base, theta_cfg(r=4, alpha=8, lora_layers=1))
    last = f"h.{len(theta.backbone.h) - 1}."  # GPT-2 keeps its decoder layers in `h`
    assert theta.init and all(n.startswith(last) for n in theta.init)
    full = MetaTheta(make_gpt2(len(tokenizer)).double(), theta_cfg(r=4, alpha=8))
    assert theta.n_trainable < full.n_trainable
    batch = make_batch(len(tokenizer))
    w = weights()
    for opt in ("sgd", "adamw"):
        s = step_cfg(engine="double_backward", k_warm=1, inner=inner_cfg(opt, lr=0.05 if opt == "sgd" else 0.01))
        ref = meta_step(theta, batch, w, s)
        s.engine = "directional"
        fast = meta_step(theta, batch, w, s)
        assert ref.grad_w.abs().max() > 0 and rel(fast.grad_w, ref.grad_w) <= 1e-8
    with pytest.raises(ConfigError, match="lora_layers=99"):
        MetaTheta(make_gpt2(len(tokenizer)).double(), theta_cfg(r=4, alpha=8, lora_layers=99))
