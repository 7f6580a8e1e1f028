"""A CKL method = token weighting × θ form × optimizer × data stream, resolved in one place.

Each kind of part has its own registry (:data:`~taalm.ckl.weighting.WEIGHTINGS`,
:data:`~taalm.ckl.theta.THETA_FORMS`, :data:`~taalm.ckl.optim.OPTIMIZERS`,
:data:`~taalm.ckl.streams.STREAMS`). A run picks them with the config keys ``method.name``,
``theta.mode``, ``train.optimizer`` and ``train.stream``, or all at once with a composed method
name, weighting first: ``--method taalm+full`` = ``method.name=taalm theta.mode=full``. A name
that starts with a part other than a weighting takes uniform weights, as the baselines of the
paper's Table 1 do: ``kadapter`` = ``finetune+kadapter``, ``recadam`` = ``finetune+recadam``. A part
named in the composed name and set differently by its own key is refused, as is a name that is no
registered part, or a combination a part declares incompatible (:meth:`check_method`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from .config import LearnConfig, MethodConfig
from ..core.errors import ConfigError
from ..core.registry import Registry
from .optim import OPTIMIZERS, OptimizerPart
from .streams import STREAMS, DataStream
from .theta import THETA_FORMS, ThetaForm
from .weighting import WEIGHTINGS, WeightingMethod

# kind -> (registry, (section, key) of the config key that selects it)
PART_KINDS: dict[str, tuple[Registry[Any], tuple[str, str]]] = {
    "theta": (THETA_FORMS, ("theta", "mode")),
    "optimizer": (OPTIMIZERS, ("train", "optimizer")),
    "stream": (STREAMS, ("train", "stream")),
}


@dataclass
class CklMethod:
    """The four resolved parts of one run."""

    weighting: WeightingMethod
    theta: ThetaForm
    optimizer: OptimizerPart
    stream: DataStream

    @property
    def name(self) -> str:
        """The weighting's name, plus every part that is not the default (``taalm+full``)."""
        default = LearnConfig()
        parts = [self.weighting.name]
        for kind, (_, (section, key)) in PART_KINDS.items():
            part = getattr(self, kind).name
            if part != getattr(getattr(default, section), key):
                parts.append(part)
        return "+".join(parts)


def split_method_name(cfg: LearnConfig) -> LearnConfig:
    """``cfg`` with a composed ``method.name`` (``taalm+full``) spread onto its config keys.

    Returns a copy whose ``method.name`` is the weighting alone and whose ``theta.mode`` /
    ``train.optimizer`` / ``train.stream`` hold the named parts. Raises :class:`ConfigError` for
    an unknown part, two parts of one kind, or a part that contradicts its own key.
    """
    names = cfg.method.name.split("+")
    if names[0] not in WEIGHTINGS and any(names[0] in reg for reg, _ in PART_KINDS.values()):
        names = ["finetune", *names]  # "kadapter": the baseline with uniform weights
    if len(names) == 1:
        return cfg
    out = copy.deepcopy(cfg)
    out.method.name = names[0]
    default = LearnConfig()
    seen: dict[str, str] = {}  # kind -> the part named for it
    for part in names[1:]:
        kinds = [k for k, (reg, _) in PART_KINDS.items() if part in reg]
        if not kinds:
            known = "; ".join(f"{k}: {', '.join(reg.names())}" for k, (reg, _) in PART_KINDS.items())
            raise ConfigError(f"method.name={cfg.method.name}: '{part}' is no method part ({known})", "method.name")
        kind = kinds[0]
        if kind in seen:
            raise ConfigError(f"method.name={cfg.method.name}: two {kind} parts ('{seen[kind]}', '{part}')",
                              "method.name")
        seen[kind] = part
        section, key = PART_KINDS[kind][1]
        now, dflt = getattr(getattr(cfg, section), key), getattr(getattr(default, section), key)
        if now not in (dflt, part):
            raise ConfigError(f"method.name={cfg.method.name} names {kind} '{part}' but {section}.{key}={now}",
                              f"{section}.{key}")
        setattr(getattr(out, section), key, part)
    return out


def resolve_method(cfg: LearnConfig, weighting: WeightingMethod | None = None) -> CklMethod:
    """The run's four parts from a config whose ``method.name`` was split (:func:`split_method_name`);
    ``weighting`` replaces the configured weighting (e.g. precomputed weights)."""
    method = CklMethod(
        weighting=weighting if weighting is not None else get_method(cfg.method, seed=cfg.train.seed),
        theta=THETA_FORMS.get(cfg.theta.mode)(cfg.theta, seed=cfg.train.seed),
        optimizer=OPTIMIZERS.get(cfg.train.optimizer)(cfg.train),
        stream=STREAMS.get(cfg.train.stream)(cfg.train))
    for part in (method.weighting, method.theta, method.optimizer, method.stream):
        check = getattr(part, "check_method", None)
        if check is not None:
            check(method)  # a part refuses a combination it cannot work with (ConfigError)
        check_config = getattr(part, "check_config", None)
        if check_config is not None:
            check_config(cfg)  # ... or settings of the run it cannot train with (e.g. train.fsdp)
    return method


def get_method(cfg: MethodConfig | str, seed: int = 0) -> WeightingMethod:
    """The weighting method of a ``method`` config section, or of a bare name with its default
    options (``get_method("rho1")``)."""
    from .weighting import build_weighting

    return build_weighting(MethodConfig(name=cfg) if isinstance(cfg, str) else cfg, seed)


def available_parts() -> dict[str, list[str]]:
    """kind -> registered part names (``taalm methods``)."""
    return {"weighting": WEIGHTINGS.names(), **{k: reg.names() for k, (reg, _) in PART_KINDS.items()}}
