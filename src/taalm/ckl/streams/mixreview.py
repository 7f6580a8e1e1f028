"""Data stream ``mixreview``: every optimizer step mixes replay documents from a general-text pool
into the batch (Mix-review, as in the CKL paper), so θ keeps rehearsing text it already knew.

Epoch e replays round(n · ratio · decay^(e−1)) windows, n = the run's own windows: the CKL
paper's mix ratio 4 with decay 0.7, or the TAALM release's constant 1:1 (ratio 1, decay 1). The
replay windows are drawn from the pool without repetition (a seeded permutation, continued across
epochs and reshuffled when used up) and dealt round-robin onto the epoch's steps, each step's
share as extra micro-batches of at most ``batch_size`` windows, so the step is normalised over
its own and its replay sequences together. The run's own windows are ordered exactly as the
``plain`` stream orders them. Replay windows weigh 1 (``replay_weights=uniform``) or take the
run's static weighting method (``method``). The pool must not be the evaluation set: the LAMA-ckl
benchmark builds one from units in neither To-Learn nor NF.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...core.config import Rules, option
import torch

from ...core.errors import ConfigError
from .base import STREAMS, micro_batches
from .plain import Plain


@dataclass
class MixReviewConfig:
    """The ``mixreview`` data stream: replay documents from a general pool mixed into every step."""

    pool: str = option("", "replay documents (.txt blocks or JSONL text / LAMA-ckl units); never the evaluation set")
    ratio: float = option(1.0, "replay windows per training window in epoch 1 (the CKL paper: 4; the TAALM release: 1)")
    decay: float = option(1.0, "the ratio is multiplied by this every epoch (the CKL paper: 0.7)")
    replay_weights: str = option("uniform", "uniform (weight 1) | method (the run's static weighting method)")

    def _rules(self, r: Rules) -> None:
        r.finite("ratio", 0.0)
        r.finite("decay", 0.0, low_open=True)
        r.choice("replay_weights", ("uniform", "method"))


@STREAMS.register("mixreview", config=MixReviewConfig)
class MixReview(Plain):
    """Mix replay documents from train.mixreview.pool into every step (ratio, decay per epoch)."""

    replays = True

    def __init__(self, cfg):
        super().__init__(cfg)
        mc = cfg.mixreview
        if not mc.pool:
            raise ConfigError("stream 'mixreview' needs train.mixreview.pool (a file of replay documents)",
                              "train.mixreview.pool")
        from ...data import read_documents

        self.documents = read_documents(mc.pool)  # InputError (file, line, field) before anything is written

    def replay_documents(self) -> list:
        return self.documents

    def replay_weighting(self) -> str:
        return self.cfg.mixreview.replay_weights

    def check_method(self, method) -> None:
        if method.weighting.dynamic:
            raise ConfigError(f"stream 'mixreview' works with static weighting methods; '{method.weighting.name}' "
                              "weighs tokens from θ's losses at every step", "train.stream")

    def n_replay(self, epoch: int) -> int:
        """Replay windows of ``epoch``: round(n_train · ratio · decay^(epoch−1))."""
        mc = self.cfg.mixreview
        if self.n_train is None:
            raise RuntimeError("stream 'mixreview': bind(n_train) must run before n_replay()")
        return round(self.n_train * mc.ratio * mc.decay ** (epoch - 1))

    def replay_order(self, n_pool: int, epoch: int) -> list[int]:
        """Pool positions 0..n_pool−1 drawn for ``epoch``: a seeded stream of permutations,
        continued from where the earlier epochs stopped (a function of (seed, epoch) only)."""
        start = sum(self.n_replay(e) for e in range(1, epoch))
        need, k = self.n_replay(epoch), start // n_pool
        out: list[int] = []
        pos = start % n_pool
        while len(out) < need:
            perm = torch.randperm(n_pool, generator=torch.Generator().manual_seed(self.cfg.seed * 7_919 + k)).tolist()
            out += perm[pos:]
            pos, k = 0, k + 1
        return out[:need]

    def epoch_steps(self, windows, epoch):
        if self.n_train is None:
            raise RuntimeError("stream 'mixreview': bind(n_train) must run before epoch_steps()")
        steps = super().epoch_steps(windows[:self.n_train], epoch)
        n_pool = len(windows) - self.n_train
        if not steps or n_pool == 0:
            return steps
        replay = [self.n_train + i for i in self.replay_order(n_pool, epoch)]
        share: list[list[int]] = [[] for _ in steps]
        for j, idx in enumerate(replay):
            share[j % len(steps)].append(idx)
        return [step + micro_batches(windows, extra, self.cfg.batch_size, self.cfg.batch_tokens) if extra else step
                for step, extra in zip(steps, share)]
