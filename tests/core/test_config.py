import re

import pytest

from taalm.core.config import load_config, save_config
from taalm.ckl.config import LearnConfig
from taalm.core.errors import ConfigError


def test_defaults_recipe_overrides(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("train:\n  lr: 1e-4\n  epochs: 3\nmethod:\n  name: oracle\n")
    cfg = load_config(LearnConfig, recipe, ["train.epochs=7", "theta.lora.target_modules=q_proj,v_proj",
                                            "method.rho1.reference=null", "eval.every_epoch=yes"])
    assert cfg.train.lr == 1e-4 and isinstance(cfg.train.lr, float)  # YAML reads 1e-4 as a string
    assert cfg.train.epochs == 7 and cfg.method.name == "oracle"
    assert cfg.theta.lora.target_modules == ["q_proj", "v_proj"]
    assert cfg.method.rho1.reference is None and cfg.eval.every_epoch is True
    save_config(cfg, tmp_path / "out.yaml")
    assert load_config(LearnConfig, tmp_path / "out.yaml") == cfg  # the saved config round-trips


def test_unknown_keys_and_bad_types_are_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown configuration key 'train.lrr'"):
        load_config(LearnConfig, None, ["train.lrr=1"])
    with pytest.raises(ConfigError, match="'train.epochs' must be an integer"):
        load_config(LearnConfig, None, ["train.epochs=many"])
    with pytest.raises(ConfigError, match="must look like key.sub=value"):
        load_config(LearnConfig, None, ["train.epochs"])
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("model:\n  nmae: x\n")
    with pytest.raises(ConfigError, match=r"bad.yaml, line 2: unknown configuration key 'model.nmae'"):
        load_config(LearnConfig, recipe)
    recipe.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="bad.yaml: a recipe must be a mapping"):
        load_config(LearnConfig, recipe)
    with pytest.raises(ConfigError, match="recipe file not found"):
        load_config(LearnConfig, tmp_path / "none.yaml")


def test_recipe_type_error_names_line(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("# a comment\ntrain:\n  lr: 1e-4\n  epochs: lots\n")
    with pytest.raises(ConfigError, match=r"r.yaml, line 4: 'train.epochs' must be an integer"):
        load_config(LearnConfig, recipe)
    recipe.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match=r"r.yaml, line 2: not valid YAML"):
        load_config(LearnConfig, recipe)


def test_shipped_recipes_are_valid_listed_and_copied(tmp_path, capsys):
    """The recipes ship inside the package: each validates against its schema, `taalm recipes`
    lists them, `--config NAME` finds one, and `taalm recipes cp` copies one without ever
    overwriting a file."""
    from taalm.cli import main
    from taalm.meta.config import MetaTrainConfig
    from taalm.recipes import shipped_recipes

    recipes = shipped_recipes()
    assert "phi_smollm2_trex" in recipes and "lama_ckl_smoke" in recipes
    for name, r in recipes.items():  # phi_*.yaml are meta-training recipes (taalm train-attention)
        load_config(MetaTrainConfig if name.startswith("phi_") else LearnConfig, r)
    assert load_config(MetaTrainConfig, "phi_smollm2_trex").objective == "answer_nll"
    assert main(["recipes"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in recipes)
    assert main(["recipes", "cp", "phi_smollm2_trex", str(tmp_path)]) == 0
    copied = tmp_path / "phi_smollm2_trex.yaml"
    assert copied.read_bytes() == recipes["phi_smollm2_trex"].read_bytes()
    copied.write_text("updates: 3\n")
    assert main(["recipes", "cp", "phi_smollm2_trex.yaml", str(tmp_path)]) == 2  # exists: refused
    assert copied.read_text() == "updates: 3\n" and "never overwrites" in capsys.readouterr().err
    assert main(["recipes", "cp", "nope", str(tmp_path)]) == 2
    with pytest.raises(ConfigError, match="nor a shipped recipe"):
        load_config(LearnConfig, "no_such_recipe")


@pytest.mark.parametrize("schema,override", [
    ("learn", "model.dtype=int8"), ("learn", "model.device=tpu"),
    ("learn", "theta.lora.r=0"), ("learn", "theta.lora.dropout=1.0"), ("learn", "train.weight_decay=-1"),
    ("learn", "train.grad_accum=0"), ("learn", "method.rho1.ratio=0"), ("learn", "method.salient.low=2"),
    ("learn", "method.taalm.batch_size=0"), ("learn", "data.probe_field=task_x"), ("learn", "data.limit=-1"),
    ("meta", "inner.optimizer=adam"), ("meta", "inner.lr=0"), ("meta", "inner.betas=[0.9]"),
    ("meta", "val.epochs=0"), ("meta", "val.every=-1"), ("meta", "phi.reduction=sum"),
    ("meta", "phi.stride=2000"), ("meta", "theta.mode=rows"), ("meta", "theta.r=0"),
    ("meta", "engine=magic"), ("meta", "lr_final=2"), ("meta", "updates=-1"), ("meta", "stream_offset=-8"),
])
def test_every_section_checks_its_ranges(schema, override):
    """Each section's rules are wired to it: the error names the key and the value."""
    from taalm.meta.config import MetaTrainConfig

    key = override.split("=")[0]
    with pytest.raises(ConfigError, match=rf"command line: {re.escape(key)}="):
        load_config(LearnConfig if schema == "learn" else MetaTrainConfig, None, [override])


def test_every_config_field_has_a_description(monkeypatch):
    """Every key of every command's schema has help, read from the fields' metadata: it works
    with no source files at all (an installed wheel without .py sources, a frozen app)."""
    import dataclasses
    import inspect

    from taalm.bench.lama_ckl.config import BenchOptions, LamaCklConfig
    from taalm.tools.pool import PoolConfig
    from taalm.bench.stream.base import StreamConfig, StreamOptions
    from taalm.tools.tailor import TailorConfig
    from taalm.ckl import config as K
    from taalm.ckl.method import PART_KINDS
    from taalm.ckl.weighting import WEIGHTINGS
    from taalm.core import config as C

    def no_source(obj):
        raise OSError("no source")

    monkeypatch.setattr(inspect, "getsource", no_source)
    classes = [v for v in vars(C).values() if isinstance(v, type) and dataclasses.is_dataclass(v)]
    classes += [BenchOptions, LamaCklConfig, PoolConfig, StreamConfig, StreamOptions, TailorConfig,
                K.LearnConfig, K.TrainConfig, K.ThetaConfig, K.MethodConfig]
    classes += [c for reg in [WEIGHTINGS, *(r for r, _ in PART_KINDS.values())] for c in reg.configs().values()]
    assert len(classes) > 20
    missing = [f"{cls.__name__}.{name}" for cls in classes for name, text in C.field_help(cls).items() if not text]
    assert not missing, missing
    assert C.field_help(K.TrainConfig)["lr"].startswith("θ's learning rate")


def test_option_needs_its_help():
    from taalm.core.config import option

    with pytest.raises(ValueError, match="needs its help"):
        option(1)


@pytest.mark.parametrize("cls_name", ["LearnConfig", "MetaTrainConfig"])
def test_config_with_help_is_the_config_as_yaml(cls_name):
    import yaml

    from taalm.ckl import config as K
    from taalm.core import config as C
    from taalm.meta import config as M

    cfg = getattr(K if cls_name == "LearnConfig" else M, cls_name)()
    text = C.config_with_help(cfg)
    assert yaml.safe_load(text) == C.to_dict(cfg)
    assert "  lr: 0.001  # θ's learning rate" in text or cls_name != "LearnConfig"


def test_meta_training_refuses_fsdp_with_the_reasons():
    """FSDP cannot shard the θ that meta-training differentiates through (second order, JVPs):
    the key exists only to say so, naming the upstream issues."""
    from taalm.meta.config import MetaTrainConfig

    with pytest.raises(ConfigError) as e:
        load_config(MetaTrainConfig, None, ["fsdp=true"])
    assert "#172543" in str(e.value) and "#182641" in str(e.value) and e.value.key == "fsdp"
    assert load_config(MetaTrainConfig, None, ["fsdp=false"]).fsdp is False


def test_every_command_reaches_its_typed_config_through_one_load_config():
    """eval, data tailor and data pool: flags are shortcuts for config keys, ``key=value``
    overrides and ``--config`` apply on top, unknown keys are errors naming the key, and
    ``taalm config --for NAME`` prints every command's schema."""
    from taalm.tools.pool import PoolConfig
    from taalm.tools.tailor import TailorConfig
    from taalm.cli import (CONFIG_SCHEMAS, EVAL_SHORTCUTS, POOL_SHORTCUTS, TAILOR_SHORTCUTS, _config_from_flags,
                           build_parser, main)
    from taalm.core.config import ProbeEvalConfig

    parse = build_parser().parse_args
    cfg = _config_from_flags(ProbeEvalConfig, parse(["eval", "--probes", "p.jsonl", "--batch-size", "4",
                                                     "--allow-pickle", "model.dtype=fp32", "data.limit=3"]),
                             EVAL_SHORTCUTS)
    assert (cfg.eval.batch_size, cfg.model.allow_pickle, cfg.model.dtype, cfg.data.limit) == (4, True, "fp32", 3)
    assert cfg.model.name == "smollm2-135m" and cfg.eval.padding_side == "right"  # the schema's defaults
    with pytest.raises(ConfigError, match="eval.batchsize"):
        _config_from_flags(ProbeEvalConfig, parse(["eval", "--probes", "p", "eval.batchsize=2"]), EVAL_SHORTCUTS)
    args = parse(["data", "tailor", "--data", "d", "--out", "o", "--to-learn-rule", "descriptive", "chunk_size=7"])
    t = _config_from_flags(TailorConfig, args, TAILOR_SHORTCUTS)
    assert (t.to_learn_rule, t.chunk_size, t.batch_size) == ("descriptive", 7, 32)
    args = parse(["data", "pool", "trex/", "--out", "o", "--exclude", "a", "--exclude", "b", "--cap", "5"])
    p = _config_from_flags(PoolConfig, args, POOL_SHORTCUTS, ["invent=0.25"])
    assert (p.exclude, p.per_relation_cap, p.invent, p.n_val) == (["a", "b"], 5, 0.25, 256)
    for name in CONFIG_SCHEMAS:
        assert main(["config", "--for", name]) == 0
