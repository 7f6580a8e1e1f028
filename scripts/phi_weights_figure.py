"""The token-weight figure (reporting.plots.plot_weights_before_after) for the shipped φ on the
demo documents: φ0 (a fresh φ, the weights before meta-training) against the shipped φ. Each
document's first token has no loss, so the figure marks it "n/a" instead of drawing its weight
(the shipped φ puts ~0.97 there, which would read as its favourite token) and leaves it out of
the scales.

    python scripts/phi_weights_figure.py docs/img/phi_weights_demo.png
"""

from __future__ import annotations

import sys
from pathlib import Path

from taalm.core.config import PhiConfig
from taalm.data import encode_document, read_documents
from taalm.demo import demo_files
from taalm.models.loading import load_model
from taalm.models.phi import TrainAttention, default_phi_checkpoint
from taalm.reporting.plots import plot_weights_before_after


def main(out: str) -> None:
    docs = read_documents(demo_files()[0])[:3]
    model, tok = load_model("smollm2-135m", "cpu", "fp32")
    enc = [encode_document(tok, d) for d in docs]
    phi0 = TrainAttention.from_config(PhiConfig(), model=model, tokenizer=tok)
    before = [w.tolist() for w in phi0.weights(docs, theta_tokenizer=tok)]
    phi = TrainAttention.from_pretrained(default_phi_checkpoint(), device="cpu", dtype="fp32")
    after = [w.tolist() for w in phi.weights(docs, theta_tokenizer=tok)]
    items = [([d.text[s:t] for s, t in e.offsets], wb, wa, e.span) for d, e, wb, wa in zip(docs, enc, before, after)]
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    plot_weights_before_after(items, out)
    print(out)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/img/phi_weights_demo.png")
