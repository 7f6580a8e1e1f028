"""The configuration of ``learn``, built from the part registries: every part brings its own settings.

A CKL method is composed of parts (token weighting, θ form, optimizer, data stream), each
registered by name in its folder (:mod:`taalm.ckl.weighting`, :mod:`~taalm.ckl.theta`,
:mod:`~taalm.ckl.optim`, :mod:`~taalm.ckl.streams`). A part with settings registers its own
config dataclass with it (peft-style)::

    @dataclass
    class Rho1Config:
        ratio: float = option(0.4, "fraction of tokens kept (top by excess loss)")

    @WEIGHTINGS.register("rho1", config=Rho1Config)
    class Rho1(WeightingMethod): ...

and the sections here get one sub-section per registered config: ``method.rho1.ratio``,
``theta.kadapter.width``, ``train.recadam.coef``, ``train.mixreview.pool``. The sections' own
keys (``method.name``, ``theta.mode``, ``train.lr``, ...) are the ``*Settings`` dataclasses below.
So adding a part is one new file in its folder (the folder imports every file in it) and its
test: nothing here or in :mod:`taalm.core.config` names a part.

The schema is built when this module is first imported, after every shipped part has
registered. A part defined outside taalm registers before that (import it first); one that
brings a config later is refused with a message that says so.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..core.config import DataConfig, EvalConfig, ModelConfig, Rules, logger_rule, option
from ..core.registry import Registry
from ..core.schedules import LR_SCHEDULES

KEEP_EPOCHS = ("last", "best")  # train.keep
from .optim import OPTIMIZERS
from .streams import STREAMS
from .theta import THETA_FORMS
from .weighting import WEIGHTINGS


class PartSections:
    """A section whose sub-sections are the registered parts' configs (added by
    :func:`part_section`); to the type checker, any of them."""

    if TYPE_CHECKING:
        def __getattr__(self, name: str) -> Any: ...

        def __setattr__(self, name: str, value: Any) -> None: ...


@dataclass
class ThetaSettings(PartSections):
    """How θ is parameterised while it learns."""

    mode: str = option("lora", "a registered θ form (taalm.ckl.theta): lora | full | kadapter | qlora (CUDA + bitsandbytes)")


@dataclass
class TrainSettings(PartSections):
    """How θ learns: epochs, optimizer settings, batching, windows, seeds, checkpoints, parts."""

    epochs: int = option(8, "passes over the documents (8: a small set gets enough optimizer steps to learn)")
    lr: float = option(1e-3, "θ's learning rate (1e-3 suits LoRA on a small model; the paper's 1e-4 is for Llama-2-7B)")
    lr_schedule: str = option("constant", "θ's lr over the run's steps: constant (the paper) | linear | cosine")
    warmup_steps: int = option(0, "the lr rises linearly over these first steps (then the schedule)")
    lr_final: float = option(0.1, "the decayed schedules' last lr, as a fraction of lr")
    weight_decay: float = option(0.0, "AdamW weight decay")
    betas: list[float] = option(factory=lambda: [0.9, 0.999], help="AdamW betas")
    batch_size: int = option(8, "sequences (document windows) per micro-batch")
    batch_tokens: int = option(0, ">0: also cap padded tokens per micro-batch (long documents)")
    grad_accum: int = option(1, "micro-batches per optimizer step")
    max_length: int = option(512, "tokens per window; longer documents are split, never truncated")
    stride: int = option(64, "context tokens shared by consecutive windows of one long document")
    max_grad_norm: float = option(1.0, "0 disables clipping")
    shuffle: bool = option(True, "shuffle the windows every epoch (seeded by seed and epoch)")
    group_by_length: int = option(0, ">0: sort each run of this many shuffled batches' windows by length (less padding)")
    seed: int = option(0, "seed of shuffling, dropout, LoRA initialisation and random weights")
    checkpoint_every: int = option(1, "epochs between checkpoints (a killed run resumes from the last)")
    keep_checkpoints: bool = option(False, "keep checkpoints/ once the run completes (to --resume it with more epochs); "
                                           "by default they are removed and the run folder keeps θ alone")
    gradient_checkpointing: bool = option(False, "recompute activations in backward: less memory, ~1.3× the time")
    fsdp: bool = option(False, "under torchrun, theta.mode=full: shard θ's weights, gradients and optimizer state (FSDP2)")
    known_masking: bool = option(False, "the paper's known-token masking: weight 0 where θ's argmax already predicts the token")
    optimizer: str = option("adamw", "θ's optimizer, a registered part (taalm.ckl.optim)")
    stream: str = option("plain", "how windows become batches each epoch, a registered part (taalm.ckl.streams)")
    keep: str = option("last", "which epoch's θ the run keeps: last | best (the best validation score: data.val's "
                               "accuracy, else the probes', plus kept's where measured; epoch 0 counts)")

    def _rules(self, r: Rules) -> None:
        r.at_least("epochs", 0)
        r.finite("lr", 0.0, low_open=True)
        r.choice("lr_schedule", LR_SCHEDULES)
        r.at_least("warmup_steps", 0)
        r.finite("lr_final", 0.0, 1.0)
        r.finite("weight_decay", 0.0)
        r.betas("betas")
        r.at_least("batch_size", 1)
        r.at_least("batch_tokens", 0)
        r.at_least("grad_accum", 1)
        r.at_least("max_length", 2)
        r.at_least("stride", 0)
        r.need(self.stride < self.max_length, "stride",
               f"must be below train.max_length={self.max_length} (windows must advance)")
        r.finite("max_grad_norm", 0.0)
        r.at_least("group_by_length", 0)
        r.at_least("checkpoint_every", 1)
        r.choice("keep", KEEP_EPOCHS)


@dataclass
class MethodSettings(PartSections):
    """The token-weighting method and each method's options."""

    name: str = option("finetune", "see `taalm.ckl.weighting.available_methods()`")


def part_section(name: str, settings: type, *registries: Registry) -> type:
    """The dataclass ``name``: ``settings``' keys, then one sub-section per config dataclass
    registered in ``registries`` (default: the dataclass's defaults). Each registry then refuses a
    config registered later (it would be missing from this schema)."""
    sections: list[tuple[str, type, Any]] = []
    for registry in registries:
        for key, cls in registry.configs().items():
            sections.append((key, cls, field(default_factory=cls)))
        registry.freeze_configs(name)
    built = dataclasses.make_dataclass(name, sections, bases=(settings,))
    built.__module__, built.__doc__ = __name__, settings.__doc__
    return built


if TYPE_CHECKING:
    ThetaConfig = ThetaSettings
    TrainConfig = TrainSettings
    MethodConfig = MethodSettings
else:
    ThetaConfig = part_section("ThetaConfig", ThetaSettings, THETA_FORMS)
    TrainConfig = part_section("TrainConfig", TrainSettings, OPTIMIZERS, STREAMS)
    MethodConfig = part_section("MethodConfig", MethodSettings, WEIGHTINGS)


@dataclass
class LearnConfig:
    """Everything `taalm learn` (and :func:`taalm.ckl.learner.learn`) needs."""

    model: ModelConfig = field(default_factory=ModelConfig)
    theta: ThetaConfig = field(default_factory=ThetaConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    data: DataConfig = field(default_factory=DataConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    logger: str = option("jsonl", "metric logs: jsonl (always) plus tensorboard and/or wandb, comma-separated")

    def _rules(self, r: Rules) -> None:
        logger_rule(r, self.logger)
        best = self.train.keep == "best"
        r.need(not best or self.eval.every_epoch, "train.keep", "best needs eval.every_epoch=true (a score per epoch)")
        r.need(not best or not self.train.fsdp, "train.keep", "best is not available with train.fsdp")
