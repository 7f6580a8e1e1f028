"""Where does a φ put its weight? Answer tokens vs the rest, on any LAMA-ckl unit files
(``--by-relation``: also per relation).

For each file, the documents (``evidence``) are weighted by φ (the shipped default unless
``--phi DIR``) and by ``oracle`` (1 on the tokens of the answer's last occurrence, the ``object``);
reported per file: mean φ weight on answer tokens and on the other tokens, the share of φ's total
weight that lands on answer tokens (the oracle's share is 1), and the fraction of documents whose
highest-weighted token belongs to the answer. Every statistic is over the tokens that have a
loss: a document's first token has none (nothing predicts it), so φ's weight there (often ~0.97)
is unused and left out (``taalm.reporting.weights_data.has_loss``). A diagnostic for the LAMA-ckl results: how well the
φ meta-trained on the φ pool transfers to To-Learn documents (other relations).

    python benchmarks/phi_answer_weight.py --files TAILORED/to_learn.jsonl TAILORED/phi_pool_invariant.jsonl \
        --limit 200 --out benchmarks/results/phi_answer_weight_smollm2.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def phi_and_answer_weights(model, tok, path: Path, limit: int, phi: str | None):
    """``(documents, [(φ's weights [n_tokens], answer mask [n_tokens] bool)])`` for the first
    ``limit`` units of ``path``: φ's weight on every θ token and the oracle's answer tokens."""
    from taalm.ckl.weighting import weights_for_documents
    from taalm.ckl.method import get_method
    from taalm.ckl.config import MethodConfig
    from taalm.ckl.weighting.taalm import TaalmMethodConfig
    from taalm.data import read_documents

    docs = read_documents(path, limit=limit)
    method = get_method(MethodConfig(name="taalm", taalm=TaalmMethodConfig(checkpoint=phi)))
    w_phi = weights_for_documents(method, model, tok, docs)
    w_orc = weights_for_documents(get_method(MethodConfig(name="oracle")), model, tok, docs)
    return docs, [(wp.float(), wo > 0.5) for (_, wp), (_, wo) in zip(w_phi, w_orc)]


def with_loss(wp, on):
    """``(wp, on)`` on the tokens that have a loss only: position 0 has none, so φ's weight there
    is unused and must not count in any statistic."""
    import torch

    from taalm.reporting.weights_data import has_loss

    keep = torch.tensor(has_loss(wp), dtype=torch.bool)
    return wp[keep], on[keep]


def answer_weight_stats(weighted) -> dict:
    """The per-file numbers of the module docstring from ``weighted`` (:func:`phi_and_answer_weights`),
    over the tokens with a loss."""
    ans_sum = other_sum = 0.0
    n_ans = n_other = top_is_answer = 0
    for wp, mask in (with_loss(wp, on) for wp, on in weighted):  # [n_tokens - 1] each
        ans_sum += float(wp[mask].sum())
        other_sum += float(wp[~mask].sum())
        n_ans += int(mask.sum())
        n_other += int((~mask).sum())
        top_is_answer += int(len(wp) > 0 and bool(mask[int(wp.argmax())]))
    return {"n_documents": len(weighted), "n_answer_tokens": n_ans, "n_other_tokens": n_other,
            "mean_weight_answer": ans_sum / max(n_ans, 1), "mean_weight_other": other_sum / max(n_other, 1),
            "answer_share_of_weight": ans_sum / max(ans_sum + other_sum, 1e-12),
            "answer_share_of_tokens": n_ans / max(n_ans + n_other, 1),
            "top_token_is_answer": top_is_answer / max(len(weighted), 1)}


def share_by_relation(relations: list[str], weighted) -> dict:
    """relation -> {n, answer_share_of_weight}: φ's weight on answer tokens / all φ's weight, over
    the tokens with a loss."""
    agg: dict[str, list] = {}
    for rel, (wp, on) in zip(relations, (with_loss(wp, on) for wp, on in weighted)):
        g = agg.setdefault(rel, [0, 0.0, 0.0])
        g[0] += 1
        g[1] += float(wp[on].sum())
        g[2] += float(wp.sum())
    return {r: {"n": g[0], "answer_share_of_weight": round(g[1] / max(g[2], 1e-12), 4)}
            for r, g in sorted(agg.items(), key=lambda kv: -kv[1][0])}


def arguments(doc: str) -> argparse.ArgumentParser:
    """The command line shared by this script and ``phi_answer_weight_by_relation.py``."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--files", nargs="+", required=True, type=Path, help="LAMA-ckl unit files (JSONL)")
    ap.add_argument("--limit", type=int, default=200, help="first N units of each file")
    ap.add_argument("--phi", default=None, help="φ folder (default: the shipped φ)")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--by-relation", action="store_true",
                    help="also the share of φ's weight on answer tokens per relation_code")
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = arguments(__doc__)
    a = ap.parse_args(argv)

    from taalm.core.files import atomic_write_json, environment_info
    from taalm.models.loading import load_model

    model, tok = load_model(a.model)
    rows = {}
    for path in a.files:
        t0 = time.time()
        docs, weighted = phi_and_answer_weights(model, tok, path, a.limit, a.phi)
        if a.by_relation:
            rels = [json.loads(x)["relation_code"] for x in path.read_text().splitlines() if x.strip()][:len(docs)]
            by_relation = share_by_relation(rels, weighted)
        rows[str(path)] = {
            **({"by_relation": by_relation} if a.by_relation else {}),
            **answer_weight_stats(weighted), "seconds": round(time.time() - t0, 1)}
        print(path.name, json.dumps(rows[str(path)]))
    atomic_write_json(a.out, {"what": "φ weight on answer tokens vs other tokens", "phi": a.phi or "shipped default",
                              "model": a.model, "limit": a.limit,
                              "tokens": "those with a loss: each document's first token (no loss) is left out",
                              "files": rows,
                              "environment": environment_info(next(model.parameters()).device)})
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
