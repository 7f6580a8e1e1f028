#!/usr/bin/env python3
"""Turn a trained φ folder into the shipped default: float16 tensors, same config.

    python scripts/ship_phi.py runs/phi_trex/best src/taalm/phi_default

Reads ``SRC/phi.safetensors`` + ``SRC/phi_config.json`` (written by ``TrainAttention.save_pretrained``),
writes them to DST with every floating tensor in float16 (half the size; φ is loaded into the
dtype of the model it runs on), and prints the size and the largest relative rounding error.
DST's ``phi.safetensors`` and ``phi_config.json`` are replaced; its README is left alone.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__)
        return 2
    import torch

    from taalm.core.files import atomic_write_json, load_tensors, save_tensors

    src, dst = Path(argv[0]), Path(argv[1])
    tensors = load_tensors(src / "phi.safetensors")
    config = json.loads((src / "phi_config.json").read_text())
    half, worst = {}, 0.0
    for name, t in tensors.items():
        h = t.to(torch.float16) if t.is_floating_point() else t
        if t.is_floating_point() and t.abs().max() > 0:
            worst = max(worst, ((h.float() - t.float()).abs().max() / t.float().abs().max()).item())
        half[name] = h.contiguous()
    dst.mkdir(parents=True, exist_ok=True)
    save_tensors(dst / "phi.safetensors", half,
                 metadata={"format": "pt", "taalm": config.get("format", ""), "version": str(config.get("format_version", ""))})
    atomic_write_json(dst / "phi_config.json", config)
    size = (dst / "phi.safetensors").stat().st_size
    print(json.dumps({"tensors": len(half), "parameters": sum(t.numel() for t in half.values()),
                      "bytes": size, "max_relative_rounding_error": worst}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
