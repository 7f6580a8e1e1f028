"""Where does a φ put its weight? Answer tokens vs the rest, on any LAMA-ckl unit files.

For each file, the documents (``evidence``) are weighted by φ (the shipped default unless
``--phi DIR``) and by ``oracle`` (1 on the tokens of the answer's last occurrence, the ``object``);
reported per file: mean φ weight on answer tokens and on the other tokens, the share of φ's total
weight that lands on answer tokens (the oracle's share is 1), and the fraction of documents whose
highest-weighted token belongs to the answer. A diagnostic for the LAMA-ckl results: how well the
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", nargs="+", required=True, type=Path, help="LAMA-ckl unit files (JSONL)")
    ap.add_argument("--limit", type=int, default=200, help="first N units of each file")
    ap.add_argument("--phi", default=None, help="φ folder (default: the shipped φ)")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)

    import torch

    from taalm.core.config import MethodConfig, TaalmMethodConfig
    from taalm.data import read_documents
    from taalm.models.loading import load_model
    from taalm.core.files import atomic_write_json, environment_info
    from taalm.ckl.weighting import get_method, weights_for_documents

    model, tok = load_model(a.model)
    rows = {}
    for path in a.files:
        t0 = time.time()
        docs = read_documents(path, limit=a.limit)
        phi = get_method(MethodConfig(name="taalm", taalm=TaalmMethodConfig(checkpoint=a.phi)))
        w_phi = weights_for_documents(phi, model, tok, docs)
        w_orc = weights_for_documents(get_method(MethodConfig(name="oracle")), model, tok, docs)
        ans_sum = other_sum = 0.0
        n_ans = n_other = 0
        top_is_answer = 0
        for (_, wp), (_, wo) in zip(w_phi, w_orc):
            wp, mask = wp.float(), wo > 0.5  # [n_tokens]
            ans_sum += float(wp[mask].sum())
            other_sum += float(wp[~mask].sum())
            n_ans += int(mask.sum())
            n_other += int((~mask).sum())
            top_is_answer += int(bool(mask[int(torch.argmax(wp))]))
        rows[str(path)] = {
            "n_documents": len(docs), "n_answer_tokens": n_ans, "n_other_tokens": n_other,
            "mean_weight_answer": ans_sum / max(n_ans, 1), "mean_weight_other": other_sum / max(n_other, 1),
            "answer_share_of_weight": ans_sum / max(ans_sum + other_sum, 1e-12),
            "answer_share_of_tokens": n_ans / max(n_ans + n_other, 1),
            "top_token_is_answer": top_is_answer / max(len(docs), 1),
            "seconds": round(time.time() - t0, 1)}
        print(path.name, json.dumps(rows[str(path)]))
    atomic_write_json(a.out, {"what": "φ weight on answer tokens vs other tokens", "phi": a.phi or "shipped default",
                              "model": a.model, "limit": a.limit, "files": rows,
                              "environment": environment_info(next(model.parameters()).device)})
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
