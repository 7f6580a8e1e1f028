"""The configuration of ``train-attention``, beside its users; the outer objectives and inner
optimizers bring their own settings.

The schemas of meta-training live here: :class:`MetaTrainConfig` and its sections
(:class:`MetaThetaConfig`, :class:`InnerConfig`, :class:`ValidationConfig`,
:class:`SupervisedConfig`; φ's :class:`~taalm.core.config.PhiConfig` is shared with the models
layer, so it stays in :mod:`taalm.core.config` and is re-exported here). As for ``learn``
(:mod:`taalm.ckl.config`), the parts are registered by name in their folders and each part with
settings registers its own config dataclass with it:

- outer objectives, :mod:`taalm.meta.objectives` (``objective=NAME``): a config registered with
  ``@OBJECTIVES.register("NAME", config=ItsConfig)`` becomes the section ``NAME.*`` (top level,
  beside the key ``objective`` that selects it);
- inner optimizers, :mod:`taalm.meta.inner_optim` (``inner.optimizer=NAME``): a config becomes
  the section ``inner.NAME.*``.

So adding an objective or an inner optimizer is one new file in its folder (and its test): the
valid names come from the registries, and nothing here names a part. The schema is built when
this module is first imported, after every shipped part registered; a part defined outside
taalm registers before that (a later one that brings a config is refused with a message).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..ckl.config import PartSections, part_section
from ..core.config import PROBE_FIELDS, LoraConfig, ModelConfig, PhiConfig, Rules, logger_rule, option
from ..core.registry import Registry
from ..core.schedules import LR_SCHEDULES
from .inner_optim import INNER_OPTIMIZERS
from .objectives import OBJECTIVES

__all__ = ["MetaTrainConfig", "MetaThetaConfig", "InnerConfig", "ValidationConfig", "SupervisedConfig",
           "PhiConfig", "LoraConfig", "META_THETA_MODES", "ENGINES", "DIRECTIONAL"]

# Allowed values of meta-training's string keys that are not registered parts
META_THETA_MODES = ("lora", "layers")
ENGINES = ("directional", "double_backward")
DIRECTIONAL = ("forward", "fd")


def meta_section(name: str, settings: type, registry: Registry) -> type:
    """:func:`taalm.ckl.config.part_section` for a meta-training section: ``settings``' keys plus
    one sub-section per config registered in ``registry``; a part's section may not take the
    name of one of the settings' keys."""
    taken = sorted({f.name for f in dataclasses.fields(settings)} & set(registry.configs()))
    if taken:
        raise ValueError(f"{registry.kind} section(s) {', '.join(taken)} would hide {name}'s own key(s) "
                         f"of that name: register the part under another name")
    built = part_section(name, settings, registry)
    built.__module__ = __name__
    return built


@dataclass
class MetaThetaConfig:
    """What θ trains in the inner step of meta-training (per pair, reset to θ0 every time)."""

    mode: str = option("lora", "lora (per-pair adapters; pairs are batched) | layers (whole decoder layers)")
    r: int = option(16, "rank of the per-pair LoRA")
    alpha: float = option(32.0, "LoRA scale numerator")
    layers: list[int] = option(factory=lambda: [-2, -1], help="mode=layers; negative = from the end")
    lora_layers: int = option(0, "mode=lora: 0 = adapters on every decoder layer; K = on the last K only (cheaper)")

    def _rules(self, r: Rules) -> None:
        r.choice("mode", META_THETA_MODES)
        r.at_least("lora_layers", 0)
        r.at_least("r", 1)
        r.finite("alpha", 0.0, low_open=True)


@dataclass
class InnerSettings(PartSections):
    """The inner loop: ``k_warm`` steps with w fixed, then one differentiable step (SPEC 2.3)."""

    optimizer: str = option("adamw", "a registered inner optimizer (taalm.meta.inner_optim): adamw | sgd")
    lr: float = option(2e-4, "the release's inner lr")
    k_warm: int = option(1, "warm-up steps not differentiated into φ (Adam needs a state first)")
    weight_decay: float = option(0.0, "the inner optimizer's weight decay")
    betas: list[float] = option(factory=lambda: [0.9, 0.999], help="the inner AdamW's betas")
    eps: float = option(1e-8, "AdamW's ε")

    def _rules(self, r: Rules) -> None:
        r.choice("optimizer", tuple(INNER_OPTIMIZERS.names()))
        r.finite("eps", 0.0, low_open=True)
        r.finite("lr", 0.0, low_open=True)
        r.at_least("k_warm", 0)
        r.finite("weight_decay", 0.0)
        r.betas("betas")


if TYPE_CHECKING:
    InnerConfig = InnerSettings
else:
    InnerConfig = meta_section("InnerConfig", InnerSettings, INNER_OPTIMIZERS)


@dataclass
class ValidationConfig:
    """Held-out check: θ0 learns the held-out documents with φ's weights; answer accuracy."""

    every: int = option(10, "φ updates between validations (and once before the first update, see at_start)")
    at_start: bool = option(True, "validate φ before its first update (≈ the uniform reference: φ starts near 0.98)")
    n_pairs: int = option(32, "held out from the training pairs when no --val file is given")
    epochs: int = option(3, "CKL epochs on the held-out documents")
    lr: float = option(1e-3, "CKL lr (LoRA θ)")
    batch_size: int = option(8, "batch size of the validation learner")
    references: bool = option(True, "also validate uniform (finetune) and oracle weights once, for scale")
    known_masking: bool = option(False, "the validation learner masks tokens θ already predicts (train.known_masking)")

    def _rules(self, r: Rules) -> None:
        r.at_least("every", 0)
        r.at_least("n_pairs", 0)
        r.at_least("epochs", 1)
        r.finite("lr", 0.0, low_open=True)
        r.at_least("batch_size", 1)


@dataclass
class SupervisedConfig:
    """The supervised start of φ (``taalm train-attention --supervised``): φ's head and LoRA learn
    to predict the answer's tokens in each training document (binary cross-entropy with a
    positive-class weight): one forward and one backward of φ per document, minutes on a CPU. A
    start for meta-training (``init=``), not a replacement for it."""

    steps: int = option(200, "φ optimizer steps")
    batch_size: int = option(8, "documents per step")
    lr: float = option(1e-3, "φ's AdamW lr")
    pos_weight: float = option(0.0, "weight of the answer tokens' term; 0 = auto: non-answer / answer tokens of the pool")

    def _rules(self, r: Rules) -> None:
        r.at_least("steps", 1)
        r.at_least("batch_size", 1)
        r.finite("lr", 0.0, low_open=True)
        r.finite("pos_weight", 0.0)


@dataclass
class MetaTrainSettings(PartSections):
    """Everything `taalm train-attention` (and :func:`taalm.meta.training.train_attention`) needs."""

    model: ModelConfig = option(factory=ModelConfig, help="θ (its attention is forced to eager)")
    phi: PhiConfig = field(default_factory=PhiConfig)
    theta: MetaThetaConfig = field(default_factory=MetaThetaConfig)
    inner: InnerConfig = field(default_factory=InnerConfig)
    engine: str = option("directional", "directional | double_backward (both exact; see meta_gradient)")
    directional: str = option("forward", "forward (JVP through the backbone) | fd (finite differences)")
    fd_step: float = option(1e-2, "directional=fd: length of the parameter-space step ‖h·v‖ (float32: 1e-2)")
    objective: str = option("answer_nll", "a registered outer objective (taalm.meta.objectives): answer_nll | change3 | change2")
    unrelated_weight: float = option(0.0, ">0: penalise θ' moving on an unrelated task (another pair's)")
    updates: int = option(100, "φ updates")
    batch_pairs: int = option(16, "pairs per φ update (the release uses 16)")
    micro_pairs: int = option(4, "pairs per forward pass (each keeps its own θ')")
    lr: float = option(2e-4, "φ's AdamW lr")
    lr_schedule: str = option("constant", "φ's lr schedule: constant | cosine | linear (towards lr_final · lr)")
    lr_final: float = option(0.1, "the decayed schedules' last lr, as a fraction of lr")
    warmup_updates: int = option(0, "φ's lr rises linearly over these first updates (then the schedule)")
    init: str = option("", "warm start: a saved φ folder (TrainAttention.save_pretrained); its phi config replaces `phi`")
    stream_offset: int = option(0, "pairs of the seeded pair stream to skip (e.g. those a warm-start parent saw)")
    weight_decay: float = option(0.0, "φ's AdamW weight decay")
    max_grad_norm: float = option(1.0, "0 disables clipping of φ's gradient")
    max_doc_tokens: int = option(256, "longer documents are truncated for meta-training")
    log_outer0: bool = option(True, "also compute θ0's task loss for the log (\"outer0\", \"gain\"); false saves a task forward")
    task_field: str = option("task_schematic", "LAMA units: the probe used as the task")
    checkpoint_every: int = option(10, "φ updates between resumable checkpoints")
    seed: int = option(0, "seed of the pair stream, θ's per-pair LoRA and validation")
    fsdp: bool = option(False, "not supported (refused): meta-training shards its pairs over the ranks, never θ or φ")
    logger: str = option("jsonl", "metric logs: jsonl (always) plus tensorboard and/or wandb, comma-separated")
    val: ValidationConfig = field(default_factory=ValidationConfig)
    supervised: SupervisedConfig = option(factory=SupervisedConfig, help="only with --supervised")

    def _rules(self, r: Rules) -> None:
        r.choice("engine", ENGINES)
        r.choice("directional", DIRECTIONAL)
        r.finite("fd_step", 0.0, low_open=True)
        r.choice("objective", tuple(OBJECTIVES.names()))
        r.finite("unrelated_weight", 0.0)
        r.at_least("updates", 0)
        r.at_least("batch_pairs", 1)
        r.at_least("micro_pairs", 1)
        r.finite("lr", 0.0, low_open=True)
        r.choice("lr_schedule", LR_SCHEDULES)
        r.finite("lr_final", 0.0, 1.0)
        r.at_least("warmup_updates", 0)
        r.finite("weight_decay", 0.0)
        r.finite("max_grad_norm", 0.0)
        r.at_least("max_doc_tokens", 2)
        r.choice("task_field", PROBE_FIELDS)
        r.at_least("checkpoint_every", 1)
        r.at_least("stream_offset", 0)
        logger_rule(r, self.logger)
        r.need(not self.fsdp, "fsdp",
               "meta-training cannot shard θ or φ with FSDP: it differentiates through θ's inner update "
               "(second order), and FSDP2's double backward needs set_reshard_after_backward(False) "
               "(pytorch/pytorch#172543) while JVPs through FSDP2 fail (#182641); torchrun without fsdp "
               "shares each update's pairs over the ranks instead")
        r.need(self.theta.mode != "layers" or self.micro_pairs == 1, "micro_pairs",
               "theta.mode=layers trains one pair per forward pass: set micro_pairs=1")
        r.need(not self.init or (Path(self.init).expanduser() / "phi_config.json").is_file(), "init",
               "not a saved φ folder (no phi_config.json)")


if TYPE_CHECKING:
    MetaTrainConfig = MetaTrainSettings
else:
    MetaTrainConfig = meta_section("MetaTrainConfig", MetaTrainSettings, OBJECTIVES)
