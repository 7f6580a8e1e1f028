"""Random weights: a control."""

from __future__ import annotations

from dataclasses import dataclass

from ...core.config import Rules, option
import torch

from ...core.errors import ConfigError
from .base import WEIGHTINGS, WeightingMethod

@dataclass
class RandomConfig:
    """The `random` weighting method (a control)."""

    mean: float = option(0.5, "weights ~ Beta(2*mean, 2*(1-mean)): mean `mean`, uniform at 0.5")

    def _rules(self, r: Rules) -> None:
        r.finite("mean", 0.0, 1.0, low_open=True, high_open=True)


@WEIGHTINGS.register("random", config=RandomConfig)
class RandomWeights(WeightingMethod):
    """Random weights ~ Beta(2m, 2(1-m)) (mean m), seeded per (seed, document): a control."""

    def document_weights(self, doc_index, encoded):
        import numpy as np

        m = self.cfg.random.mean
        if not 0.0 < m < 1.0:
            raise ConfigError(f"method.random.mean must be in (0, 1), got {m}")
        rng = np.random.default_rng([self.seed, doc_index])
        return torch.from_numpy(rng.beta(2 * m, 2 * (1 - m), len(encoded.input_ids))).float()
