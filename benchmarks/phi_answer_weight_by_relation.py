"""Where does a φ put its weight, per relation? The share of φ's weight that lands on the answer
tokens (the oracle's tokens) of LAMA-ckl-unit documents, grouped by ``relation_code``.

A diagnostic of what φ learned: the shipped φ weights place and language answers but hardly any
common-noun answer, which motivated the relation-capped pool (``benchmarks/cap_pool.py``).

    python benchmarks/phi_answer_weight_by_relation.py --files POOL/val128.jsonl TAILORED/to_learn.jsonl \\
        --limit 200 --out benchmarks/results/phi_answer_weight_by_relation_smollm2.json
"""

from __future__ import annotations

import sys

from phi_answer_weight import main

if __name__ == "__main__":
    raise SystemExit(main(["--by-relation", *sys.argv[1:]]))
