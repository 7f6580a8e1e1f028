"""Typed configuration: dataclasses are the schema, YAML recipes and ``key.sub=value`` override them.

Resolution order (later wins): dataclass defaults -> YAML recipe file -> command-line overrides.
Unknown keys and values of the wrong type are errors that name the key (and the file), never
silently ignored. The resolved configuration is written into every run folder
(:func:`save_config`), so a run can be repeated with ``--config DIR/config.yaml``.

This module holds the machinery (:func:`option`, :class:`Rules`, :func:`load_config`, ...) and the
sections several commands share (model, LoRA, φ, data, evaluation). A command's own schema
lives beside its users and is built from its part registries: ``learn``'s in
:mod:`taalm.ckl.config`, ``train-attention``'s in :mod:`taalm.meta.config` (its outer objectives
and inner optimizers bring their own settings).

This module imports no torch (the CLI imports it to parse arguments).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from .devices import DEVICE_KINDS, DTYPE_NAMES  # devices.py names device types and dtypes
from .errors import ConfigError

# Allowed values of the shared sections' string keys: the one home of these rules (the modules
# that act on them, models/phi.py included, import them from here).
ATTN = ("auto", "eager", "sdpa")
PHI_FEATURES = ("text", "loss")
PHI_MODES = ("lora", "full")
PADDING_SIDES = ("right", "left")
PROBE_FIELDS = ("task_descriptive", "task_schematic")
PHI_REDUCTIONS = ("mean", "max")


class Rules:
    """Collects range violations of one config section; each names its dotted key and value."""

    def __init__(self, cfg, prefix: str):
        self.cfg, self.prefix = cfg, prefix
        self.errors: list[tuple[str, str]] = []  # (dotted key, message)

    def need(self, ok: bool, key: str, what: str) -> None:
        if not ok:
            value = self.cfg
            for part in key.split("."):
                value = getattr(value, part)
            self.errors.append((self.prefix + key, f"{self.prefix}{key}={value!r}: {what}"))

    def finite(self, key: str, low: float | None = None, high: float | None = None, *,
               low_open: bool = False, high_open: bool = False) -> None:
        v = getattr(self.cfg, key)
        ok = isinstance(v, (int, float)) and math.isfinite(v)
        if ok and low is not None:
            ok = v > low if low_open else v >= low
        if ok and high is not None:
            ok = v < high if high_open else v <= high
        lo = "" if low is None else f"{'>' if low_open else '>='} {low:g}"
        hi = "" if high is None else f"{'<' if high_open else '<='} {high:g}"
        self.need(ok, key, " ".join(x for x in ("must be a finite number", lo, "and" if lo and hi else "", hi) if x))

    def at_least(self, key: str, low: int) -> None:
        self.need(getattr(self.cfg, key) >= low, key, f"must be >= {low}")

    def choice(self, key: str, choices: tuple) -> None:
        v = getattr(self.cfg, key)
        self.need(str(v).strip().lower() in choices, key, f"use one of {', '.join(choices)}")

    def betas(self, key: str) -> None:
        b = getattr(self.cfg, key)
        self.need(len(b) == 2 and all(math.isfinite(x) and 0.0 <= x < 1.0 for x in b), key,
                  "must be two numbers in [0, 1)")


def check_config(cfg, prefix: str = "") -> None:
    """Check every range rule of ``cfg`` and its sections (the schema's ``_rules`` methods);
    raise :class:`ConfigError` naming the first offending key and its value."""
    rules = Rules(cfg, prefix)
    if hasattr(cfg, "_rules"):
        cfg._rules(rules)
    if rules.errors:
        key, message = rules.errors[0]
        raise ConfigError(message, key)
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            check_config(value, f"{prefix}{f.name}.")


def option(default: Any = dataclasses.MISSING, help: str = "", *, factory: Any = dataclasses.MISSING) -> Any:
    """A schema field with its one-line help in the field's metadata (``taalm config`` and the
    docs print it): ``lr: float = option(1e-3, "θ's learning rate")``; a mutable default takes
    ``factory=``. Help lives in the schema itself, not in source comments, so it survives
    packaging without sources and cannot disagree with a second copy."""
    if not help:
        raise ValueError("option() needs its help text")
    if factory is not dataclasses.MISSING:
        return field(default_factory=factory, metadata={"help": help})
    return field(default=default, metadata={"help": help})


# --------------------------------------------------------------------------------------------
# Schema
# --------------------------------------------------------------------------------------------
@dataclass
class ModelConfig:
    """Which base model θ starts from and where it runs."""

    name: str = option("smollm2-135m", "registry alias, Hugging Face name, local folder, or .gguf file")
    device: str = option("auto", "auto (cuda, then mps, then cpu) | cpu | cuda | cuda:1 | mps")
    dtype: str = option("auto", "auto (bf16 where supported on an accelerator, else fp32) | fp32 | bf16 | fp16")
    attn: str = option("auto", "auto | eager | sdpa (eager is needed for second-order gradients)")
    trust_remote_code: bool = option(False, "run a model's own Python code (its config's auto_map; off: only architectures transformers ships): only for models you trust")
    allow_pickle: bool = option(False, "read a model folder whose weights are pickle files (.bin/.pt): only folders you trust")

    def _rules(self, r: Rules) -> None:
        r.need(str(self.device).strip().lower().split(":")[0] in DEVICE_KINDS, "device",
               "use auto, cpu, cuda, cuda:N or mps")
        r.choice("dtype", DTYPE_NAMES)
        r.choice("attn", ATTN)


@dataclass
class LoraConfig:
    """LoRA adapters: rank, scale, dropout and the modules they wrap."""

    r: int = option(16, "LoRA rank")
    alpha: int = option(32, "LoRA scale numerator (the update is alpha/r · B A)")
    dropout: float = option(0.0, "dropout on the LoRA input")
    # "all-linear" = every linear layer of the backbone except the LM head (peft's shorthand)
    target_modules: list[str] = option(factory=lambda: ["all-linear"], help="modules that get adapters: [all-linear] or names such as [q_proj, v_proj]")

    def _rules(self, r: Rules) -> None:
        r.at_least("r", 1)
        r.need(self.alpha > 0, "alpha", "must be > 0")
        r.finite("dropout", 0.0, 1.0, high_open=True)
        r.need(len(self.target_modules) > 0, "target_modules", "name at least one module (or all-linear)")


@dataclass
class PhiConfig:
    """The Train-Attention model φ (SPEC 2.2)."""

    base: str = option("smollm2-135m", "model spec for taalm.models.loading.load_model: alias, HF name, folder, .gguf")
    mode: str = option("lora", "lora (adapters on a frozen backbone + head) | full (whole backbone + head)")
    lora: LoraConfig = field(default_factory=lambda: LoraConfig(r=8, alpha=16))
    head_bias: float = option(4.0, "sigmoid(4.0) = 0.982: every weight starts near uniform")
    # std of the head's initial weight. SmolLM2-135M's last hidden states have norm ≈ 47 (measured
    # on LAMA-ckl evidence), so the initial logits are 4.0 ± 0.002·47 ≈ 4.0 ± 0.09 and the
    # weights 0.982 ± 0.0016 (min ≈ 0.976): near uniform, yet the head is not exactly zero, so
    # the LoRA adapters get a gradient from the first step.
    head_std: float = option(0.002, "std of the head's initial weight (see above)")
    reduction: str = option("mean", "φ-token weights -> θ tokens when the tokenizers differ: mean | max")
    max_length: int = option(1024, "φ tokens per window; longer documents are read in overlapping windows")
    stride: int = option(128, "left context (φ tokens) that a window shares with the previous one")
    seed: int = option(0, "head and LoRA initialisation")
    layers: int = option(0, "0 = every decoder layer; N = φ reads only the first N (cheaper per token)")
    features: str = option("text", "text: φ reads the document | loss: its head also reads log ℓ_t(θ0), θ0's token loss")

    def _rules(self, r: Rules) -> None:
        r.choice("mode", PHI_MODES)
        r.choice("features", PHI_FEATURES)
        r.at_least("layers", 0)
        r.choice("reduction", PHI_REDUCTIONS)
        r.finite("head_std", 0.0)
        r.finite("head_bias")
        r.at_least("max_length", 2)
        r.at_least("stride", 0)
        r.need(self.stride < self.max_length, "stride", f"must be below phi.max_length={self.max_length}")


@dataclass
class DataConfig:
    """How documents and probes are read."""

    probe_field: str = option("task_descriptive", "LAMA units: task_descriptive | task_schematic")
    limit: int = option(0, ">0: use only the first N documents / probes (smoke runs)")
    text_field: str = option("text", "the documents' text field in JSONL / JSON / Parquet / datasets records")
    kept: str = option("builtin", "what 'kept' measures (old knowledge kept): builtin (general facts the base model "
                                  "answers, selected at the start) | none | a probe file's path")
    val: str = option("", "a validation probe file (train.keep=best chooses the epoch by it; never your test probes)")

    def _rules(self, r: Rules) -> None:
        r.choice("probe_field", PROBE_FIELDS)
        r.need(bool(self.kept.strip()), "kept", "must be builtin, none or a probe file's path")
        r.at_least("limit", 0)
        r.need(bool(self.text_field.strip()), "text_field", "must name a field")


@dataclass
class EvalConfig:
    """How probes are evaluated."""

    batch_size: int = option(16, "probes per forward pass")
    padding_side: str = option("right", "right | left (both give the same scores; tested)")
    every_epoch: bool = option(True, "evaluate the probes after every epoch too (false: before and after only, for large probe sets)")

    def _rules(self, r: Rules) -> None:
        r.at_least("batch_size", 1)
        r.choice("padding_side", PADDING_SIDES)


def logger_rule(r: Rules, spec: str) -> None:
    """``logger``: known backends, and their packages installed (checked before a run starts)."""
    import importlib.util

    from .metrics import LOGGERS, logger_names

    names = logger_names(spec)
    bad = [n for n in names if n not in LOGGERS]
    r.need(not bad, "logger", f"unknown {', '.join(bad)} (use {', '.join(LOGGERS)}, comma-separated)")
    for name in names:
        if name in ("tensorboard", "wandb"):
            r.need(importlib.util.find_spec(name) is not None, "logger",
                   f"{name} needs its package: pip install 'taalm[{name}]'")


@dataclass
class ProbeEvalConfig:
    """Everything `taalm eval` needs: the model (plus an adapter), how probes are read and scored.
    Its flags (--model, --batch-size, ...) are shortcuts for these keys."""

    model: ModelConfig = field(default_factory=ModelConfig)
    adapter: str = option("", "a LoRA adapter folder (or a run folder) applied to the model; empty: none")
    data: DataConfig = field(default_factory=DataConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


# --------------------------------------------------------------------------------------------
# Building, overriding, saving
# --------------------------------------------------------------------------------------------
def _field_types(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(value: Any, tp: Any, key: str, where: str) -> Any:
    """Check/convert one value to the annotated type ``tp``; raise ConfigError naming ``key``."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0], key)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}'{key}' must be a mapping of sub-keys, got {value!r}", key)
        return from_dict(tp, value, prefix=key + ".", where=where)
    if origin is list:
        (item_tp,) = typing.get_args(tp) or (Any,)
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            value = [value] if not isinstance(value, str) else [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}'{key}' must be a list, got {value!r}", key)
        return [_coerce(v, item_tp, f"{key}[{i}]", where) for i, v in enumerate(value)]
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ConfigError(f"{where}'{key}' must be true or false, got {value!r}", key)
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{where}'{key}' must be an integer, got {value!r}", key)
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(f"{where}'{key}' must be an integer, got {value!r}", key)
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{where}'{key}' must be a number, got {value!r}", key)
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-4" as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{where}'{key}' must be a number, got {value!r}", key)
    if tp is str:
        if isinstance(value, (dict, list)) or value is None:
            raise ConfigError(f"{where}'{key}' must be a string, got {value!r}", key)
        text = str(value)
        if any("\ud800" <= c <= "\udfff" for c in text):  # a YAML "\ud800" escape: no text, unwritable
            raise ConfigError(f"{where}'{key}' holds a lone surrogate escape ({ascii(text)[1:-1][:60]}), "
                              f"which is no text", key)
        return text
    raise ConfigError(f"{where}'{key}': unsupported type {tp}")  # pragma: no cover


def from_dict(cls, data: dict, prefix: str = "", where: str = ""):
    """Build dataclass ``cls`` from a (nested) dict; unknown keys are errors."""
    hints = _field_types(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for k, v in data.items():
        if k not in names:
            raise ConfigError(
                f"{where}unknown configuration key '{prefix}{k}' "
                f"(known keys under '{prefix or '<top>'}': {', '.join(sorted(names))})", prefix + k)
        kwargs[k] = _coerce(v, hints[k], prefix + k, where)
    return cls(**kwargs)


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def _deep_merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.lr=1e-4"`` -> (["train", "lr"], "1e-4" parsed as YAML)."""
    import yaml

    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like key.sub=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override '{text}' has an empty key")
    try:  # the recipes' strict YAML: no anchors or aliases (a few characters could expand into gigabytes)
        value = read_recipe_yaml(raw, f"command line: {key}={raw[:40]}{'...' if len(raw) > 40 else ''}",
                                 "a key=value override") if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def load_config(cls, recipe: str | Path | None = None, overrides: typing.Iterable[str] = ()):
    """Defaults, then the YAML ``recipe`` (if any), then ``key.sub=value`` overrides; then every
    range rule of the schema (:func:`check_config`). Errors name the key, its value and where it
    came from (the recipe's file and line, or the command line)."""
    import yaml

    data: dict = {}
    text = ""
    if recipe is not None:
        path = Path(recipe)
        if not path.is_file():
            from ..recipes import recipe_path, shipped_recipes

            shipped = recipe_path(str(recipe))  # a shipped recipe's name (taalm recipes) where no such file exists
            if shipped is None:
                raise ConfigError(f"{path}: recipe file not found (nor a shipped recipe: {', '.join(shipped_recipes())})")
            path = shipped
        try:
            if path.stat().st_size > MAX_RECIPE_BYTES:
                raise ConfigError(f"{path}: {path.stat().st_size:,} bytes; a recipe is a few hundred "
                                  f"(at most {MAX_RECIPE_BYTES:,})")
            text = path.read_text(encoding="utf-8")
            loaded = read_recipe_yaml(text, path)
        except UnicodeDecodeError as e:
            raise ConfigError(f"{path}: not a UTF-8 text file ({e.reason})") from None
        except RecursionError:
            raise ConfigError(f"{path}: nested too deeply to be a recipe") from None
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
            where = f", line {mark.line + 1}" if mark is not None else ""
            what = getattr(e, "problem", None) or str(e).splitlines()[0]
            raise ConfigError(f"{path}{where}: not valid YAML ({what})") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: a recipe must be a mapping of keys, got {type(loaded).__name__}")
        try:  # validate against the schema, naming the file and line
            from_dict(cls, loaded)
        except ConfigError as e:
            line = _yaml_line(text, e.key)
            raise ConfigError(f"{path}{f', line {line}' if line else ''}: {e}", e.key) from None
        data = loaded
    overridden: set[str] = set()
    for item in overrides:
        parts, value = parse_override(item)
        overridden.add(".".join(parts))
        nested: Any = value
        for part in reversed(parts):
            nested = {part: nested}
        data = _deep_merge(data, nested)
        from_dict(cls, data, where="command line: ")  # report the failing override by name
    cfg = from_dict(cls, data)
    try:
        check_config(cfg)
    except ConfigError as e:
        if e.key in overridden:
            raise ConfigError(f"command line: {e}", e.key) from None
        line = _yaml_line(text, e.key) if text else None
        if line:
            raise ConfigError(f"{recipe}, line {line}: {e}", e.key) from None
        raise
    return cfg


MAX_RECIPE_BYTES = 1 << 20


def read_recipe_yaml(text: str, path: str | Path, what: str = "a recipe"):
    """A recipe's YAML (or, ``what``, a ``key=value`` override's value: :func:`parse_override`),
    strictly: no anchors or aliases (a recipe needs none, and they let a few lines expand into
    gigabytes) and no key given twice in one mapping (YAML would silently keep the last block).
    Errors name the file (``path``) and, for a recipe, the line."""
    import yaml

    at = (lambda mark: f"{path}, line {mark.line + 1}") if what == "a recipe" else (lambda mark: str(path))
    for token in yaml.scan(text):
        if isinstance(token, (yaml.AliasToken, yaml.AnchorToken)):
            raise ConfigError(f"{at(token.start_mark)}: YAML anchors and aliases (&name, *name) "
                              f"are not allowed in {what}; write the values out")
    _refuse_duplicate_keys(yaml.compose(text), at)
    return yaml.safe_load(text)


def _refuse_duplicate_keys(node, at) -> None:
    import yaml

    if isinstance(node, yaml.MappingNode):
        seen: dict = {}
        for k, v in node.value:
            key = getattr(k, "value", None)
            if key in seen:
                raise ConfigError(f"{at(k.start_mark)}: key {key!r} given twice in one mapping "
                                  f"(first on line {seen[key]}); YAML would silently keep only the last")
            seen[key] = k.start_mark.line + 1
            _refuse_duplicate_keys(v, at)
    elif isinstance(node, yaml.SequenceNode):
        for v in node.value:
            _refuse_duplicate_keys(v, at)


def _yaml_line(text: str, key: str | None) -> int | None:
    """1-based line of dotted ``key`` in a YAML mapping (the deepest part found)."""
    import yaml

    if not key:
        return None
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line = None
    for part in key.split("."):
        if not isinstance(node, yaml.MappingNode):
            break
        for k, v in node.value:
            if k.value == part:
                line, node = k.start_mark.line + 1, v
                break
        else:
            break
    return line


def save_config(cfg, path: str | Path) -> None:
    """Write the resolved config as YAML (atomically)."""
    import yaml

    from .files import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))


def field_help(cls) -> dict[str, str]:
    """field name -> its one-line description: the field's ``help`` metadata (:func:`option`),
    or for a section the first docstring line of its dataclass."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        text = f.metadata.get("help", "")
        sub = hints.get(f.name)
        if not text and isinstance(sub, type) and dataclasses.is_dataclass(sub) and "__doc__" in sub.__dict__ \
                and not (sub.__doc__ or "").startswith(sub.__name__ + "("):  # not the generated signature
            text = ((sub.__doc__ or "").strip().splitlines() or [""])[0]
        out[f.name] = text
    return out


def config_with_help(cfg, indent: int = 0) -> str:
    """The config as YAML with every key's description as a trailing comment (``taalm config``)."""
    import yaml

    helps, pad, out = field_help(type(cfg)), " " * indent, []
    for f in dataclasses.fields(cfg):
        value, note = getattr(cfg, f.name), helps.get(f.name, "")
        if dataclasses.is_dataclass(value):
            out.append(f"{pad}{f.name}:" + (f"  # {note}" if note else ""))
            out.append(config_with_help(value, indent + 2))
            continue
        text = yaml.safe_dump(value, default_flow_style=True, width=10**6, allow_unicode=True)
        text = text.removesuffix("\n").removesuffix("\n...").strip()  # a bare scalar ends with "..."
        out.append(f"{pad}{f.name}: {text}" + (f"  # {note}" if note else ""))
    return "\n".join(out)
