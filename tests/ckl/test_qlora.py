"""The ``qlora`` θ form: NF4 base + float32 LoRA, CUDA only.

On CPU the form refuses with one line (tested everywhere). Where bitsandbytes can quantize on the
CPU (≥ 0.48; ``bootstrap.py`` installs it for the tests), the quantize-and-adapt path itself runs
on a tiny model: the linears become 4-bit, only float32 adapters train, the packed base does not
move. On a GPU, ``benchmarks/gpu_check.py`` runs the whole form in a learn run.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch

from conftest import make_llama
from taalm.ckl.method import resolve_method, split_method_name
from taalm.cli import main
from taalm.core.config import load_config
from taalm.ckl.config import LearnConfig, ThetaConfig
from taalm.core.errors import ConfigError

HAS_BNB = importlib.util.find_spec("bitsandbytes") is not None
needs_bnb = pytest.mark.skipif(not HAS_BNB, reason="bitsandbytes is not installed (pip install 'taalm[qlora]')")


def _quantized(seed: int = 0):
    from taalm.ckl.theta import QLora

    model = make_llama(64, seed=seed)
    return model, QLora(ThetaConfig(mode="qlora"), seed=0).quantize_and_adapt(model)


@needs_bnb
def test_quantize_and_adapt_gives_a_4bit_base_and_float32_adapters():
    import bitsandbytes as bnb

    plain = make_llama(64)
    _, model = _quantized()
    quant = [n for n, m in model.named_modules() if isinstance(m, bnb.nn.Linear4bit)]
    n_linear = sum(type(m) is torch.nn.Linear for n, m in plain.named_modules() if not n.endswith("lm_head"))
    assert len(quant) == n_linear == 14  # q, k, v, o, gate, up, down × 2 layers; the head stays float
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    assert {p.dtype for p in trainable.values()} == {torch.float32}
    ids = torch.randint(3, 64, (2, 12))
    with torch.no_grad():  # LoRA B starts at 0: the adapted model is the NF4 base, close to θ0
        diff = (model(input_ids=ids).logits.float() - plain(input_ids=ids).logits).abs().max()
    assert 0 < diff < 0.5


@needs_bnb
def test_training_moves_the_adapters_only():
    _, model = _quantized()
    packed = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    lora = {n: p for n, p in model.named_parameters() if p.requires_grad}
    start = {n: p.detach().clone() for n, p in lora.items()}
    opt = torch.optim.AdamW(lora.values(), lr=1e-2)
    ids = torch.randint(3, 64, (2, 12))
    losses = []
    for _ in range(5):
        loss = model(input_ids=ids, labels=ids).loss
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert losses[-1] < losses[0]
    assert all(not torch.equal(start[n], p) for n, p in lora.items() if "lora_B" in n)
    for n, p in model.named_parameters():
        if n in packed:
            assert torch.equal(p, packed[n]), n


def test_on_cpu_the_form_refuses_in_one_line():
    cfg = load_config(LearnConfig, None, ["method.name=finetune+qlora", "model.device=cpu"])
    if HAS_BNB:
        method = resolve_method(split_method_name(cfg))
        with pytest.raises(ConfigError, match=r"needs a CUDA GPU.*device is cpu"):
            method.theta.prepare(make_llama(64))
    else:
        with pytest.raises(ConfigError, match=r"needs a CUDA GPU.*bitsandbytes is not installed"):
            resolve_method(split_method_name(cfg))


def test_cli_qlora_on_cpu_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, model_dir):
    docs = tmp_path / "docs.txt"
    docs.write_text("Paris is the capital of France.\n")
    out = tmp_path / "run"
    rc = main(["learn", str(docs), "--method", "finetune+qlora", "--out", str(out),
               f"model.name={model_dir}", "model.device=cpu", "train.epochs=1"])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error" in line]
    assert rc == 2 and "Traceback" not in err
    assert len(errors) == 1 and "needs a CUDA GPU" in errors[0]
    assert not out.exists()
