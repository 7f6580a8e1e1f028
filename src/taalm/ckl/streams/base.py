"""Data streams: which windows form each micro-batch and optimizer step of an epoch, by name.

A :class:`DataStream` turns the training windows into the epoch's optimizer steps, each a list of
micro-batches of window indices. It owns shuffling and batching, so a stream that mixes in replay
documents (Mix-review) or reorders them is one new file, not an ``if`` in the learner.

Add one with a file in ``taalm/ckl/streams/`` (imported by its ``__init__``)::

    @STREAMS.register("mine")
    class Mine(DataStream):
        def epoch_steps(self, windows, epoch): ...
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from typing import ClassVar

import torch

from ...core.registry import Registry
from ...data import Window

if TYPE_CHECKING:  # the schema imports every part: parts never import it at run time
    from ..config import TrainConfig

STREAMS: Registry["DataStream"] = Registry("data stream", "train.stream")


class DataStream:
    name: ClassVar[str] = ""
    replays: ClassVar[bool] = False  # mixes replay documents from a pool into training (train.<name>.pool)

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.n_train: int | None = None  # windows[:n_train] are the run's own; the rest are replay

    def replay_weighting(self) -> str:
        """How the replay documents are weighted: ``uniform`` (1 everywhere) or ``method`` (the
        run's static weighting method applied to them)."""
        return "uniform"

    def replay_documents(self) -> list:
        """Documents this stream mixes into training besides the run's own (none by default).
        The learner windows them after the run's documents and calls :meth:`bind`."""
        return []

    def bind(self, n_train: int) -> None:
        """``windows[:n_train]`` (of every later :meth:`epoch_steps` call) are the run's own windows."""
        self.n_train = n_train

    def epoch_steps(self, windows: list[Window], epoch: int) -> list[list[list[int]]]:
        """The optimizer steps of ``epoch`` (1-based): each a list of micro-batches of indices
        into ``windows``. Must depend only on (seed, epoch), so a resumed run sees the same."""
        raise NotImplementedError


def micro_batches(windows: list[Window], order: list[int], batch_size: int,
                  batch_tokens: int = 0) -> list[list[int]]:
    """Group window indices (in ``order``) into micro-batches of at most ``batch_size``
    sequences and, if ``batch_tokens`` > 0, at most ``batch_tokens`` padded tokens."""
    batches: list[list[int]] = []
    cur: list[int] = []
    cur_max = 0
    for i in order:
        n = len(windows[i].input_ids)
        new_max = max(cur_max, n)
        too_many = len(cur) >= batch_size or (batch_tokens > 0 and new_max * (len(cur) + 1) > batch_tokens)
        if cur and too_many:
            batches.append(cur)
            cur, new_max = [], n
        cur.append(i)
        cur_max = new_max
    if cur:
        batches.append(cur)
    return batches


def length_grouped_order(windows: list[Window], order: list[int], batch_size: int, group: int,
                         gen) -> list[int]:
    """Reorder a shuffled ``order`` so that batches hold windows of similar length.

    The shuffled order is cut into mega-batches of ``group * batch_size`` windows; each is sorted
    by length (longest first) and cut into batches; the batches are then shuffled with ``gen``.
    Documents still meet in a random order every epoch, but padding drops: on the first 200
    SmolLM2 LAMA-ckl evidence documents (batch 8) padded tokens fall from 2.1x to 1.13x the real
    tokens with ``group=8``. ``group <= 0`` returns ``order`` unchanged.
    """
    if group <= 0 or batch_size <= 1:
        return list(order)
    mega = group * batch_size
    batches: list[list[int]] = []
    for k in range(0, len(order), mega):
        chunk = sorted(order[k:k + mega], key=lambda i: -len(windows[i].input_ids))
        batches += [chunk[j:j + batch_size] for j in range(0, len(chunk), batch_size)]
    perm = torch.randperm(len(batches), generator=gen).tolist()
    return [i for b in perm for i in batches[b]]
