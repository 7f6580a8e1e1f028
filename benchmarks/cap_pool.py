"""Cap a φ pool's train split per relation (the rule of ``taalm data pool --cap``: the first N kept
facts of each relation, in file order), leaving its validation split (and the uniform/oracle
references measured on it) untouched.

Why: the uncapped SmolLM2 T-REx pool is dominated by place and language relations (P937, P20,
P27, P19, P740, P495: 1,611 of 5,308 train facts), and the φ meta-trained on it learned to weight
place names: on the pool's own validation split its answer-token share of weight is 0.16-0.29 for
P19/P20/P103/P159/P1412 but 0.004-0.03 for P101/P106/P108/P136/P178 (common-noun answers).
A per-relation cap gives every relation the same say in φ's updates.

    python benchmarks/cap_pool.py runs/POOL/train.jsonl 100 runs/POOL/train_cap100.jsonl
"""

from __future__ import annotations

import collections
import json
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    src, cap, dst = Path(argv[0]), int(argv[1]), Path(argv[2])
    kept, seen = [], collections.Counter()
    for line in src.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        code = json.loads(line)["relation_code"]
        if seen[code] < cap:
            kept.append(line)
        seen[code] += 1
    if dst.exists():
        sys.exit(f"{dst} exists: not overwritten")
    dst.write_text("".join(x + "\n" for x in kept), encoding="utf-8")
    counts = {c: min(n, cap) for c, n in sorted(seen.items())}
    print(json.dumps({"source": str(src), "cap": cap, "facts_in": sum(seen.values()), "facts_out": len(kept),
                      "relations": len(seen), "per_relation": counts}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
