"""LAMA-ckl's configuration: every :class:`~taalm.ckl.config.LearnConfig` key plus ``bench.*``,
and the size presets applied before the user's overrides."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields
from typing import Iterable

from ...core.config import load_config, option
from ...ckl.config import LearnConfig
from ...core.errors import ConfigError

SUBSETS = ("first", "random")


PROBE_FORMATS = ("descriptive", "schematic")


@dataclass
class BenchOptions:
    """Which units a LAMA-ckl run uses (``bench.*`` keys)."""

    n_to_learn: int = option(0, "To-Learn units (0 = all of the file)")
    n_nf: int = option(0, "Not-To-Forget units (0 = all of the file)")
    subset: str = option("first", "first: the first N lines of each file | random: N drawn with `seed`, file order kept")
    seed: int = option(0, "subset=random only")


@dataclass
class LamaCklConfig(LearnConfig):
    """The learner's configuration (every :class:`LearnConfig` key) plus ``bench.*``."""

    bench: BenchOptions = field(default_factory=BenchOptions)

    def learn_config(self) -> LearnConfig:
        """The part the learner sees (``method.name`` is set per method)."""
        return LearnConfig(**{f.name: copy.deepcopy(getattr(self, f.name)) for f in fields(LearnConfig)})


@dataclass(frozen=True)
class LamaCklSize:
    """A size preset: applied as overrides before the user's ``key=value`` overrides."""

    name: str
    description: str
    n_to_learn: int  # 0 = all units of the file
    n_nf: int  # 0 = all units of the file
    epochs: int
    batch_size: int
    grad_accum: int
    lr: float
    max_length: int
    eval_batch_size: int
    group_by_length: int = option(0, "train.group_by_length (less padding; same documents per epoch)")

    def overrides(self) -> list[str]:
        return [f"bench.n_to_learn={self.n_to_learn}", f"bench.n_nf={self.n_nf}",
                f"train.epochs={self.epochs}", f"train.batch_size={self.batch_size}",
                f"train.grad_accum={self.grad_accum}", f"train.lr={self.lr!r}",
                f"train.max_length={self.max_length}", f"train.group_by_length={self.group_by_length}",
                f"eval.batch_size={self.eval_batch_size}"]


SIZES: dict[str, LamaCklSize] = {
    # CI and tests (tiny models): seconds
    "smoke": LamaCklSize("smoke", "a handful of units, 2 epochs (seconds with a tiny model; CI)",
                         n_to_learn=4, n_nf=4, epochs=2, batch_size=2, grad_accum=1, lr=1e-3,
                         max_length=128, eval_batch_size=8),
    # SmolLM2-135M on the 2-core CPU, LoRA θ (r=16), fp32. Timed on this machine: fwd+bwd+step of
    # 8 x 100 tokens ≈ 3.7 s; the first 200 To-Learn documents are ≈ 97 tokens on average, batched by
    # length (1.13x padding); To-Learn + NF probes (≈ 330) ≈ 5 s per evaluation point. Measured:
    # ≈ 2 min per epoch, 24.6-28.2 min per method for 12 epochs (benchmarks/results/
    # lama_ckl_cpu_smollm2). lr 1e-3 because LoRA θ learns little in 12 epochs at the paper's 1e-4.
    "cpu": LamaCklSize("cpu", "SmolLM2 on a 2-core CPU: 200 units, 12 epochs, batch 8, lr 1e-3 (~25-30 min per method)",
                       n_to_learn=200, n_nf=0, epochs=12, batch_size=8, grad_accum=1, lr=1e-3,
                       max_length=256, eval_batch_size=32, group_by_length=8),
    # The paper's CKL settings (SPEC 2.6): 500 units, 30 epochs, effective batch 64, lr 1e-4 AdamW,
    # no schedule, 512 tokens. (The paper trains Llama-2-7B with QLoRA; θ here is theta.* as set.)
    "paper": LamaCklSize("paper", "the paper's settings: 500 units, 30 epochs, batch 16 x 4, lr 1e-4",
                         n_to_learn=500, n_nf=0, epochs=30, batch_size=16, grad_accum=4, lr=1e-4,
                         max_length=512, eval_batch_size=64),
}


def get_size(name: str) -> LamaCklSize:
    if name not in SIZES:
        raise ConfigError(f"unknown size '{name}' (available: {', '.join(SIZES)})")
    return SIZES[name]


def resolve_config(size: str, overrides: Iterable[str] = (), probe_format: str | None = None) -> LamaCklConfig:
    """Defaults -> size preset -> ``probe_format`` -> ``key=value`` overrides (unknown keys are errors)."""
    preset = get_size(size)
    overrides = [str(o) for o in overrides]
    if any(o.split("=", 1)[0].strip() == "method.name" for o in overrides):
        raise ConfigError("method.name is set per method; choose the methods with --methods", "method.name")
    extra = []
    if probe_format is not None:
        if probe_format not in PROBE_FORMATS:
            raise ConfigError(f"unknown probe format '{probe_format}' (use {' or '.join(PROBE_FORMATS)})")
        extra.append(f"data.probe_field=task_{probe_format}")
    cfg = load_config(LamaCklConfig, None, preset.overrides() + extra + overrides)
    b = cfg.bench
    if b.subset not in SUBSETS:
        raise ConfigError(f"bench.subset must be one of {', '.join(SUBSETS)}, got '{b.subset}'", "bench.subset")
    if b.n_to_learn < 0 or b.n_nf < 0:
        raise ConfigError("bench.n_to_learn and bench.n_nf must be >= 0 (0 = all)")
    if cfg.data.limit:
        raise ConfigError("data.limit is not used by benchmarks; set bench.n_to_learn / bench.n_nf",
                          "data.limit")
    if cfg.train.epochs < 1:
        raise ConfigError("train.epochs must be >= 1 for a benchmark", "train.epochs")
    cfg.eval.every_epoch = True  # the protocol evaluates after every epoch
    return cfg


def probe_format_of(cfg: LearnConfig) -> str:
    return cfg.data.probe_field.removeprefix("task_")


__all__ = ["SUBSETS", "PROBE_FORMATS", "BenchOptions", "LamaCklConfig", "LamaCklSize", "SIZES", "get_size",
           "resolve_config", "probe_format_of"]
