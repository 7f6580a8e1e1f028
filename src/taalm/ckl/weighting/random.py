"""Random weights: a control."""

from __future__ import annotations

import torch

from ...core.errors import ConfigError
from .base import WEIGHTINGS, WeightingMethod

@WEIGHTINGS.register("random")
class RandomWeights(WeightingMethod):
    """Random weights ~ Beta(2m, 2(1-m)) (mean m), seeded per (seed, document): a control."""

    def document_weights(self, doc_index, encoded):
        import numpy as np

        m = self.cfg.random.mean
        if not 0.0 < m < 1.0:
            raise ConfigError(f"method.random.mean must be in (0, 1), got {m}")
        rng = np.random.default_rng([self.seed, doc_index])
        return torch.from_numpy(rng.beta(2 * m, 2 * (1 - m), len(encoded.input_ids))).float()
