"""Data stream ``plain``: every window once per epoch, shuffled (seeded by epoch), optionally
grouped by length, cut into micro-batches and optimizer steps of ``grad_accum`` micro-batches."""

from __future__ import annotations

import torch

from .base import STREAMS, DataStream, length_grouped_order, micro_batches


@STREAMS.register("plain")
class Plain(DataStream):
    """Each window once per epoch in a seeded shuffled order (train.shuffle, train.group_by_length)."""

    def epoch_steps(self, windows, epoch):
        c = self.cfg
        gen = torch.Generator().manual_seed(c.seed * 100_003 + epoch)
        order = torch.randperm(len(windows), generator=gen).tolist() if c.shuffle else list(range(len(windows)))
        if c.shuffle and c.group_by_length > 0:
            order = length_grouped_order(windows, order, c.batch_size, c.group_by_length, gen)
        batches = micro_batches(windows, order, c.batch_size, c.batch_tokens)
        return [batches[i:i + c.grad_accum] for i in range(0, len(batches), c.grad_accum)]
