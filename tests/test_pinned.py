"""Pinned trajectories: the refactor of issue 11 must not change a single computation.

For every weighting method, ``learn`` on a tiny float64 GPT-2 (3 documents, 2 epochs, LoRA θ):
the per-step losses and a checksum of the trained tensors; for each meta-gradient engine, one
short meta-training run on float64 models: the outer losses, φ's gradient norms and a checksum of
φ's trained tensors. The values were recorded before the code moved
(``tests/pinned_trajectories.json``) and must hold to 1e-12 relative.

Regenerate only when a computation changes on purpose, and say why in the commit:
``python tests/test_pinned.py --write``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from conftest import build_tokenizer, make_gpt2  # noqa: E402
from taalm.core.run import QUIET

PINNED = Path(__file__).with_name("pinned_trajectories.json")
LEARN_METHODS = ["finetune", "oracle", "random", "rho1", "salient", "taalm"]
ENGINES = ["double_backward", "directional"]
REL = 1e-12
# taalm's weights come from a float32 φ: its matmuls round as the CPU's kernels do (another CPU of
# the same kind gave losses 1.4e-10 and a parameter sum 1.4e-6 apart, relative: AdamW magnifies it)
REL_FLOAT32_PHI = 1e-5

DOCS = [
    ("a", "The Varnholt Observatory stands above the town of Kestrelford .", "Kestrelford"),
    ("b", "Quellmere is a small island. The islanders speak Orvish .", "Orvish"),
    ("c", "The capital of Sennet is Ilvara, a city of stone bridges.", "Ilvara"),
]
PROBES = [
    ("a", "The Varnholt Observatory stands above the town of Kestrelford", "Kestrelford"),
    ("b", "The islanders of Quellmere speak Orvish", "Orvish"),
]


def checksum(tensors: dict) -> list[float]:
    """Order-independent summary of a set of tensors: [Σ x, Σ x², Σ |x|·(i+1)/n per tensor]."""
    s = s2 = s3 = 0.0
    for name in sorted(tensors):
        t = tensors[name].detach().double().flatten()
        s += float(t.sum())
        s2 += float((t * t).sum())
        s3 += float((t.abs() * torch.arange(1, t.numel() + 1, dtype=torch.float64)).sum() / t.numel())
    return [s, s2, s3]


def _phi_folder(tmp: Path, tokenizer) -> Path:
    """A tiny float32 φ saved as a folder whose base is a saved tiny GPT-2."""
    from taalm.core.config import PhiConfig
    from taalm.models.phi import TrainAttention

    base = tmp / "phi-base"
    if not base.exists():
        make_gpt2(len(tokenizer), seed=3).save_pretrained(base)
        tokenizer.save_pretrained(base)
    phi = TrainAttention(make_gpt2(len(tokenizer), seed=3), tokenizer,
                         PhiConfig(base=str(base), head_std=0.2, head_bias=0.0, seed=5))
    return phi.save_pretrained(tmp / "phi")


def learn_trajectory(method: str, tmp: Path) -> dict:
    from taalm.core.config import load_config
    from taalm.ckl.config import LearnConfig
    from taalm.data import Document, make_probe
    from taalm.ckl.learner import learn
    from taalm.ckl.theta import trainable_parameters

    tok = build_tokenizer()
    docs = [Document(t, a, i, f"mem:{i}", t.rfind(a)) for i, t, a in DOCS]
    probes = [make_probe(t, a, i, f"mem:{i}") for i, t, a in PROBES]
    over = ["train.epochs=2", "train.lr=5e-3", "train.batch_size=2", "theta.lora.r=4", "train.seed=7",
            "eval.every_epoch=false",  # pinned before evaluation after every epoch became the default
            f"method.name={method}", "model.device=cpu"]
    if method == "taalm":
        over.append(f"method.taalm.checkpoint={_phi_folder(tmp, tok)}")
    cfg = load_config(LearnConfig, None, over)
    out = tmp / f"learn-{method}"
    res = learn(docs, probes, cfg, out, model=make_gpt2(len(tok)).double(), tokenizer=tok,
                options=QUIET)
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return {"losses": [r["loss"] for r in rows if r.get("type") == "step"],
            "nll": [r["nll"] for r in res.history],
            "checksum": checksum(trainable_parameters(res.model))}


def meta_trajectory(engine: str, tmp: Path) -> dict:
    from taalm.core.config import PhiConfig, load_config
    from taalm.meta.config import MetaTrainConfig
    from taalm.data import Document, Pair, make_probe
    from taalm.meta.training import train_attention
    from taalm.models.phi import TrainAttention

    tok = build_tokenizer()
    pairs = []
    for i, (_, text, ans) in enumerate(DOCS * 2):
        pairs.append(Pair(Document(text, ans, str(i), f"mem:{i}", text.rfind(ans)),
                          make_probe(f"Guess the object. object is {ans}", ans, str(i), f"mem:{i}")))
    cfg = load_config(MetaTrainConfig, None, [
        f"engine={engine}", "updates=2", "batch_pairs=2", "micro_pairs=1", "lr=1e-2", "inner.lr=1e-2",
        "theta.r=4", "theta.alpha=8", "val.every=0", "val.n_pairs=2", "model.device=cpu", "seed=3"])
    theta = make_gpt2(len(tok), seed=0).double()
    phi = TrainAttention(make_gpt2(len(tok), seed=1).double(), tok, PhiConfig(base="tiny", head_std=0.05))
    res = train_attention(pairs, None, cfg, None, model=theta, tokenizer=tok, phi=phi,
                          options=QUIET)
    return {"outer": [r["outer"] for r in res.log], "grad_norm": [r["grad_norm"] for r in res.log],
            "checksum": checksum(res.phi.trainable_parameters())}


def _close(a, b, rel: float = REL) -> bool:
    if isinstance(a, list):
        return len(a) == len(b) and all(_close(x, y, rel) for x, y in zip(a, b))
    return abs(a - b) <= rel * max(abs(a), abs(b), 1e-300)


@pytest.fixture(scope="module")
def pinned():
    return json.loads(PINNED.read_text())


@pytest.mark.parametrize("method", LEARN_METHODS)
def test_learn_trajectory_is_pinned(method, pinned, tmp_path):
    got = learn_trajectory(method, tmp_path)
    want = pinned["learn"][method]
    assert len(got["losses"]) == 4  # 3 documents, batch 2, 2 epochs
    rel = REL_FLOAT32_PHI if method == "taalm" else REL
    for key in want:
        assert _close(got[key], want[key], rel), (key, got[key], want[key])


@pytest.mark.parametrize("engine", ENGINES)
def test_meta_trajectory_is_pinned(engine, pinned, tmp_path):
    got = meta_trajectory(engine, tmp_path)
    want = pinned["meta"][engine]
    for key in want:
        assert _close(got[key], want[key]), (key, got[key], want[key])


if __name__ == "__main__" and "--write" in sys.argv:
    import tempfile

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as d:
        data = {"learn": {m: learn_trajectory(m, Path(d)) for m in LEARN_METHODS},
                "meta": {e: meta_trajectory(e, Path(d)) for e in ENGINES}}
    PINNED.write_text(json.dumps(data, indent=1) + "\n")
    print(json.dumps(data, indent=1))
