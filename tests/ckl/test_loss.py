import pytest
import torch

from taalm.ckl.loss import target_mask, token_losses, weighted_lm_loss


def _batch(tokenizer, texts, side="right"):
    from taalm.evaluation.probes import pad_batch

    seqs = [tokenizer(t)["input_ids"] for t in texts]
    return pad_batch(seqs, tokenizer.pad_token_id, side)


TEXTS = ["The capital of Sennet is Ilvara .", "Quellmere is a small island in the northern sea ."]


def test_all_ones_equals_standard_loss_per_sequence(tiny_model, tokenizer):
    """weights = 1 gives exactly the ordinary masked causal-LM loss of each sequence (HF's own)."""
    ids, att, pos = _batch(tokenizer, TEXTS)
    with torch.no_grad():
        logits = tiny_model(input_ids=ids, attention_mask=att).logits
        per_seq = weighted_lm_loss(logits, ids, att, torch.ones_like(ids, dtype=torch.float), reduction="none")
        for b in range(len(TEXTS)):
            n = int(att[b].sum())
            ref = tiny_model(input_ids=ids[b:b + 1, :n], labels=ids[b:b + 1, :n]).loss
            assert torch.allclose(per_seq[b], ref, atol=1e-6), (per_seq[b], ref)
        # batch loss = mean over sequences; weights=None is the same as all ones
        assert torch.allclose(weighted_lm_loss(logits, ids, att), per_seq.mean())


def test_pads_never_count(tiny_llama, tokenizer):
    ids, att, _ = _batch(tokenizer, TEXTS)
    with torch.no_grad():
        logits = tiny_llama(input_ids=ids, attention_mask=att).logits
    w = torch.rand(ids.shape)
    base = weighted_lm_loss(logits, ids, att, w, reduction="none")
    # change what sits at the pad positions (tokens, logits, weights): nothing moves
    pad = att == 0
    assert pad.any()
    ids2, logits2, w2 = ids.clone(), logits.clone(), w.clone()
    ids2[pad] = 7
    logits2[pad] = torch.randn_like(logits2[pad]) * 10
    w2[pad] = 1.0
    assert torch.equal(base, weighted_lm_loss(logits2, ids2, att, w2, reduction="none"))
    # the pad-free token count is what the mask says
    assert target_mask(att, ids).sum() == (att.sum(1) - 1).sum()


def test_left_and_right_padding_same_loss(tiny_llama, tokenizer):
    out = {}
    for side in ("right", "left"):
        ids, att, pos = _batch(tokenizer, TEXTS, side)
        w = torch.linspace(0.1, 1.0, ids.shape[1]).expand_as(ids).clone()
        if side == "left":  # same weights per *token*, whatever the padding
            w = torch.stack([torch.roll(w[b], int(ids.shape[1] - att[b].sum())) for b in range(len(TEXTS))])
        with torch.no_grad():
            logits = tiny_llama(input_ids=ids, attention_mask=att, position_ids=pos).logits
        out[side] = weighted_lm_loss(logits, ids, att, w, reduction="none")
    assert torch.allclose(out["right"], out["left"], atol=1e-5)


def test_matches_formula_with_random_weights():
    torch.manual_seed(0)
    B, T, V = 3, 7, 11
    logits = torch.randn(B, T, V, dtype=torch.float64)
    ids = torch.randint(0, V, (B, T))
    att = torch.ones(B, T, dtype=torch.long)
    att[1, 5:] = 0
    w = torch.rand(B, T, dtype=torch.float64)
    lm = torch.ones(B, T)
    lm[2, :3] = 0  # e.g. context shared with a previous window
    got = weighted_lm_loss(logits, ids, att, w, loss_mask=lm, reduction="none")
    logp = torch.log_softmax(logits, -1)
    for b in range(B):
        num = den = 0.0
        for t in range(1, T):
            m = att[b, t] * att[b, t - 1] * lm[b, t]
            num += m * w[b, t] * -logp[b, t - 1, ids[b, t]]
            den += m * w[b, t]
        assert torch.allclose(got[b], num / den)


def test_gradcheck_float64():
    """Gradients w.r.t. logits and weights match central finite differences in float64."""
    torch.manual_seed(1)
    B, T, V = 2, 6, 5
    logits = torch.randn(B, T, V, dtype=torch.float64, requires_grad=True)
    w = torch.rand(B, T, dtype=torch.float64).add(0.1).requires_grad_(True)
    ids = torch.randint(0, V, (B, T))
    att = torch.ones(B, T, dtype=torch.long)
    att[0, 4:] = 0
    assert torch.autograd.gradcheck(lambda lg, ww: weighted_lm_loss(lg, ids, att, ww), (logits, w))


def test_finite_difference_through_model_float64(tokenizer):
    """d L / d(one parameter) of a real (tiny GPT-2, truly float64) model vs central differences."""
    from conftest import make_gpt2

    model = make_gpt2(len(tokenizer)).double()
    ids, att, _ = _batch(tokenizer, TEXTS)
    w = torch.rand(ids.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    p = model.transformer.h[0].mlp.c_fc.weight

    def loss():
        return weighted_lm_loss(model(input_ids=ids, attention_mask=att).logits, ids, att, w)

    (g,) = torch.autograd.grad(loss(), p)
    eps = 1e-6
    for idx in [(0, 0), (3, 5), (10, 17)]:
        with torch.no_grad():
            old = p[idx].item()
            p[idx] = old + eps
            up = loss().item()
            p[idx] = old - eps
            down = loss().item()
            p[idx] = old
        assert g[idx].item() == pytest.approx((up - down) / (2 * eps), rel=1e-5, abs=1e-9)


def test_token_losses_alignment():
    """losses[:, t] is -log p(x_t | x_<t): position 0 never counts."""
    V = 4
    ids = torch.tensor([[1, 2, 3]])
    logits = torch.zeros(1, 3, V)
    logits[0, 0, 2] = 5.0  # predicts x_1 = 2 well
    losses, mask = token_losses(logits, ids)
    assert mask.tolist() == [[False, True, True]]
    assert losses[0, 0] == 0
    assert losses[0, 1] < losses[0, 2]
