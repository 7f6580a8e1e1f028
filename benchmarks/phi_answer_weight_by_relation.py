"""Where does a φ put its weight, per relation? The share of φ's weight that lands on the answer
tokens (the oracle's tokens) of LAMA-ckl-unit documents, grouped by ``relation_code``.

A diagnostic of what φ learned: the shipped φ weights place and language answers but hardly any
common-noun answer, which motivated the relation-capped pool (``benchmarks/cap_pool.py``).

    python benchmarks/phi_answer_weight_by_relation.py --files POOL/val128.jsonl TAILORED/to_learn.jsonl \\
        --limit 200 --out benchmarks/results/phi_answer_weight_by_relation_smollm2.json
"""

from __future__ import annotations

import argparse
import collections
import json
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

    from taalm.ckl.weighting import get_method, weights_for_documents
    from taalm.core.config import MethodConfig, TaalmMethodConfig
    from taalm.core.files import atomic_write_json, environment_info
    from taalm.data import read_documents
    from taalm.models.loading import load_model

    model, tok = load_model(a.model)
    out = {}
    for path in a.files:
        t0 = time.time()
        docs = read_documents(path, limit=a.limit)
        rels = [json.loads(x)["relation_code"] for x in path.read_text().splitlines() if x.strip()][:len(docs)]
        phi = get_method(MethodConfig(name="taalm", taalm=TaalmMethodConfig(checkpoint=a.phi)))
        w_phi = weights_for_documents(phi, model, tok, docs)
        w_orc = weights_for_documents(get_method(MethodConfig(name="oracle")), model, tok, docs)
        agg = collections.defaultdict(lambda: {"n": 0, "answer_weight": 0.0, "weight": 0.0})
        for rel, (_, wp), (_, wo) in zip(rels, w_phi, w_orc):
            wp, on = wp.float(), wo > 0.5
            g = agg[rel]
            g["n"] += 1
            g["answer_weight"] += float(wp[on].sum())
            g["weight"] += float(wp.sum())
        out[str(path)] = {
            "seconds": round(time.time() - t0, 1),
            "by_relation": {r: {"n": g["n"], "answer_share_of_weight": round(g["answer_weight"] / g["weight"], 4)}
                            for r, g in sorted(agg.items(), key=lambda kv: -kv[1]["n"])}}
    atomic_write_json(a.out, {"what": "share of φ's weight on the answer tokens, per relation",
                              "phi": a.phi or "shipped default", "model": a.model, "limit": a.limit,
                              "files": out, "environment": environment_info()})
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
