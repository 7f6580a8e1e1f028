"""Run by ``torch.distributed.run`` from tests/test_distributed.py: meta-train φ on the tiny
models of tests/test_meta_train.py, once per engine, into OUT/<engine> (rank 0 writes)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import build_tokenizer, make_gpt2  # noqa: E402
from test_meta_train import cfg, make_pairs  # noqa: E402
from taalm.core.config import PhiConfig  # noqa: E402
from taalm.meta.training import train_attention  # noqa: E402
from taalm.models.phi import TrainAttention  # noqa: E402
from taalm.core.run import QUIET

ENGINES = ("directional", "double_backward")
SETTINGS = {"updates": 2, "batch_pairs": 4, "micro_pairs": 1, "val.every": 2, "val.n_pairs": 0,
            "val.at_start": "false", "val.references": "false"}


def run(engine: str, out: Path | None):
    tok = build_tokenizer()  # float64 models: a comparison to 1e-10 (AdamW magnifies float32 rounding)
    theta = make_gpt2(len(tok), seed=0).double()  # GPT-2: float64 inside (HF Llama keeps norms in float32)
    phi = TrainAttention(make_gpt2(len(tok), seed=1).double(), tok, PhiConfig(base="tiny", head_std=0.05)).double()
    pairs = make_pairs()
    return train_attention(pairs[:5], pairs[5:], cfg(engine=engine, **SETTINGS), out, model=theta, tokenizer=tok, phi=phi,
                           options=QUIET)


if __name__ == "__main__":
    for engine in ENGINES:
        run(engine, Path(sys.argv[1]) / engine)
