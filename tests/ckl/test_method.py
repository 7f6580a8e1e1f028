"""CKL method composition: weighting × θ form × optimizer × data stream, by name; a second learn()
on the same θ; a new part is one registered class."""

from __future__ import annotations

import pytest
import torch

from conftest import make_gpt2
from taalm.ckl.learner import learn
from taalm.ckl.method import available_parts, resolve_method, split_method_name
from taalm.ckl.streams import STREAMS, DataStream, micro_batches
from taalm.ckl.theta import trainable_parameters
from taalm.core.config import load_config
from taalm.ckl.config import LearnConfig
from taalm.core.errors import ConfigError
from taalm.data import read_documents
from taalm.core.run import QUIET
from taalm.ckl.learner import LearnOptions


def cfg_for(*overrides):
    return load_config(LearnConfig, None, ["train.epochs=1", "train.lr=5e-3", "train.batch_size=2",
                                           "theta.lora.r=4", "model.device=cpu", *overrides])


def test_composed_name_sets_the_config_keys():
    c = split_method_name(cfg_for("method.name=oracle+full"))
    assert (c.method.name, c.theta.mode, c.train.optimizer, c.train.stream) == ("oracle", "full", "adamw", "plain")
    m = resolve_method(c)
    assert (m.weighting.name, m.theta.name, m.optimizer.name, m.stream.name) == ("oracle", "full", "adamw", "plain")
    assert m.name == "oracle+full"
    assert resolve_method(split_method_name(cfg_for("method.name=finetune"))).name == "finetune"


def test_a_name_that_starts_with_another_part_takes_uniform_weights(tmp_path):
    """The paper's Table 1 baselines by their part's name: ``kadapter`` = ``finetune+kadapter``."""
    (tmp_path / "replay.txt").write_text("Some general text to replay.\n")
    for name, key in (("kadapter", ("theta", "mode")), ("recadam", ("train", "optimizer")),
                      ("mixreview", ("train", "stream")), ("full+recadam", ("train", "optimizer"))):
        c = split_method_name(cfg_for(f"method.name={name}", f"train.mixreview.pool={tmp_path / 'replay.txt'}"))
        assert c.method.name == "finetune"
        assert getattr(getattr(c, key[0]), key[1]) == name.split("+")[-1]
        assert resolve_method(c).name == f"finetune+{name}"


@pytest.mark.parametrize("name, key, msg", [
    ("taalm+nope", [], "'nope' is no method part"),
    ("finetune+lora+full", [], "two theta parts"),
    ("finetune+full", ["theta.mode=lora"], None),  # lora is the default: the name wins
    ("magic", [], "unknown weighting method 'magic'"),
])
def test_bad_compositions_are_refused(name, key, msg):
    c = cfg_for(f"method.name={name}", *key)
    if msg is None:
        assert split_method_name(c).theta.mode == "full"
        return
    with pytest.raises(ConfigError, match=msg):
        resolve_method(split_method_name(c))


def test_a_part_that_contradicts_its_key_is_refused():
    c = cfg_for("method.name=finetune+lora", "theta.mode=full")
    with pytest.raises(ConfigError, match="names theta 'lora' but theta.mode=full"):
        split_method_name(c)


def test_unknown_theta_form_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown θ form 'nope'.*full, kadapter, lora, qlora"):
        resolve_method(cfg_for("theta.mode=nope"))


def test_parts_are_listed():
    parts = available_parts()
    assert {"finetune", "taalm", "salient"} <= set(parts["weighting"])
    assert parts["theta"] == ["full", "kadapter", "lora", "qlora"] and parts["optimizer"] == ["adamw", "recadam"] and "plain" in parts["stream"]


def test_a_new_part_is_one_registered_class(tokenizer, docs_file):
    """A stream registered from outside the package is usable by name, and the learner follows it."""
    seen = []

    class ReversedOrder(DataStream):
        """Windows in reverse order, one step per window."""

        def epoch_steps(self, windows, epoch):
            order = list(range(len(windows)))[::-1]
            seen.append(order)
            return [[b] for b in micro_batches(windows, order, 1)]

    STREAMS.register("test_reversed")(ReversedOrder)
    try:
        res = learn(read_documents(docs_file), None, cfg_for("method.name=finetune+test_reversed"), model=make_gpt2(len(tokenizer)), tokenizer=tokenizer,
                    options=QUIET)
        assert seen == [[2, 1, 0]] and res.steps == 3
    finally:
        STREAMS._parts.pop("test_reversed")


def _two_calls_vs_one(tokenizer, docs_file, mode):
    docs = read_documents(docs_file)
    over = ["train.shuffle=false", f"theta.mode={mode}", "train.seed=3"]
    one = learn(docs, None, cfg_for("train.epochs=2", *over), model=make_gpt2(len(tokenizer)).double(), tokenizer=tokenizer,
                options=QUIET)
    first = learn(docs, None, cfg_for(*over), model=make_gpt2(len(tokenizer)).double(), tokenizer=tokenizer,
                  options=QUIET)
    names = sorted(trainable_parameters(first.model))
    second = learn(docs, None, cfg_for(*over), model=first.model, tokenizer=tokenizer,
                   options=LearnOptions(optimizer=first.optimizer, progress=False, log=lambda m: None))
    return one, second, names


@pytest.mark.parametrize("mode", ["lora", "full"])
def test_two_learn_calls_equal_one(tokenizer, docs_file, mode):
    """1 epoch + 1 epoch on the same θ (and optimizer) = 2 epochs, in float64; no second adapter."""
    one, second, names = _two_calls_vs_one(tokenizer, docs_file, mode)
    assert sorted(trainable_parameters(second.model)) == names  # the same tensors: nothing stacked
    a, b = trainable_parameters(one.model), trainable_parameters(second.model)
    assert set(a) == set(b)
    for n in a:
        torch.testing.assert_close(a[n], b[n], rtol=0, atol=1e-12)
    assert one.steps == 2 * second.steps == 4  # 3 documents, batch 2: 2 steps per epoch


def test_second_learn_with_other_lora_shape_is_refused(tokenizer, docs_file):
    docs = read_documents(docs_file)
    first = learn(docs, None, cfg_for(), model=make_gpt2(len(tokenizer)), tokenizer=tokenizer,
                  options=QUIET)
    with pytest.raises(ConfigError, match="already carries a LoRA adapter with r=4"):
        learn(docs, None, cfg_for("theta.lora.r=8"), model=first.model, tokenizer=tokenizer,
              options=QUIET)


def test_a_part_can_refuse_a_combination():
    """resolve_method lets every part check the others (check_method): the refusal is a ConfigError."""
    from taalm.ckl.optim import OPTIMIZERS, OptimizerPart

    class LoraOnly(OptimizerPart):
        """An optimizer that only knows adapters."""

        def build(self, params):
            return torch.optim.SGD(list(params.values()), lr=self.cfg.lr)

        def check_method(self, method):
            if method.theta.name != "lora":
                raise ConfigError(f"optimizer 'test_lora_only' needs theta.mode=lora, not {method.theta.name}",
                                  "train.optimizer")

    OPTIMIZERS.register("test_lora_only")(LoraOnly)
    try:
        assert resolve_method(split_method_name(cfg_for("method.name=finetune+test_lora_only"))).optimizer.name \
            == "test_lora_only"
        with pytest.raises(ConfigError, match="needs theta.mode=lora, not full"):
            resolve_method(split_method_name(cfg_for("method.name=finetune+test_lora_only+full")))
    finally:
        OPTIMIZERS._parts.pop("test_lora_only")
