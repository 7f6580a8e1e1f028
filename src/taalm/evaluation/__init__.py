"""Evaluation: answer accuracy and NLL of probes under θ. Layer 4 (core, data, models)."""
