"""A new CKL part is one new file (issue 26): drop a weighting and an optimizer with their own
settings, a θ form with its own settings and a data stream into their folders of a copy of the
package, touch nothing else, and `learn` takes all four, composed by name, with their settings
and their checks."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import yaml

SRC = Path(__file__).resolve().parents[2] / "src" / "taalm"

WEIGHTING = '''
"""``flat``: every token weighs ``method.flat.level`` (an example part)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...core.config import Rules, option
from .base import WEIGHTINGS, WeightingMethod


@dataclass
class FlatConfig:
    """The ``flat`` weighting method."""

    level: float = option(0.5, "the weight of every token")

    def _rules(self, r: Rules) -> None:
        r.finite("level", 0.0, 1.0, low_open=True)


@WEIGHTINGS.register("flat", config=FlatConfig)
class Flat(WeightingMethod):
    """Every token weighs method.flat.level."""

    def document_weights(self, doc_index, encoded):
        return torch.full((len(encoded.input_ids),), float(self.cfg.flat.level))
'''

OPTIMIZER = '''
"""``sgdm``: SGD with momentum ``train.sgdm.momentum`` (an example part)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...core.config import option
from .base import OPTIMIZERS, OptimizerPart


@dataclass
class SgdmConfig:
    """The ``sgdm`` optimizer."""

    momentum: float = option(0.9, "SGD momentum")


@OPTIMIZERS.register("sgdm", config=SgdmConfig)
class Sgdm(OptimizerPart):
    """torch.optim.SGD with momentum (train.lr, train.sgdm.momentum)."""

    def build(self, params):
        return torch.optim.SGD(list(params.values()), lr=self.cfg.lr, momentum=self.cfg.sgdm.momentum)
'''

THETA_FORM = '''
"""``last_layers``: only the last ``theta.last_layers.n`` decoder layers train (an example part)."""

from __future__ import annotations

from dataclasses import dataclass

from ...core.config import Rules, option
from .base import THETA_FORMS
from .full import Full


@dataclass
class LastLayersConfig:
    """The ``last_layers`` θ form."""

    n: int = option(1, "how many of the last decoder layers train")

    def _rules(self, r: Rules) -> None:
        r.at_least("n", 1)


@THETA_FORMS.register("last_layers", config=LastLayersConfig)
class LastLayers(Full):
    """Only the last theta.last_layers.n decoder layers train; saved as a whole model."""

    def prepare(self, model):
        for p in model.parameters():
            p.requires_grad_(False)
        for layer in list(model.model.layers)[-self.cfg.last_layers.n:]:
            for p in layer.parameters():
                p.requires_grad_(True)
        return model
'''

STREAM = '''
"""``shortest_first``: every window once per epoch, shortest first (a curriculum; no settings)."""

from __future__ import annotations

from .base import STREAMS, DataStream, micro_batches


@STREAMS.register("shortest_first")
class ShortestFirst(DataStream):
    """Every window once per epoch, shortest first (a curriculum)."""

    def epoch_steps(self, windows, epoch):
        c = self.cfg
        order = sorted(range(len(windows)), key=lambda i: len(windows[i].input_ids))
        batches = micro_batches(windows, order, c.batch_size, c.batch_tokens)
        return [batches[i:i + c.grad_accum] for i in range(0, len(batches), c.grad_accum)]
'''

RUN = '''
import json, sys
sys.path.insert(0, {tests!r})
from conftest import build_tokenizer, make_llama
from taalm import learn, read_documents, load_config, LearnConfig, QUIET
from taalm.core.errors import ConfigError

tok = build_tokenizer()
docs = read_documents({docs!r})
cfg = load_config(LearnConfig, None, ["method.name=flat+last_layers+sgdm+shortest_first", "method.flat.level=0.25",
                                      "train.sgdm.momentum=0.5", "theta.last_layers.n=1", "train.epochs=1",
                                      "train.lr=0.05"])
theta0 = make_llama(len(tok))
before = {{n: p.detach().clone() for n, p in theta0.named_parameters()}}
res = learn(docs, None, cfg, {out!r}, model=theta0, tokenizer=tok, options=QUIET)
n_layers = len(res.model.model.layers)
moved = sorted({{n for n, p in res.model.named_parameters() if not bool((p.detach() == before[n]).all())}})
from taalm.ckl.method import get_method, resolve_method, split_method_name
from taalm.data import encode
method = resolve_method(split_method_name(cfg))
w = method.weighting.document_weights(0, encode(tok, docs[0].text))
print(json.dumps({{"optimizer": type(res.optimizer).__name__, "momentum": res.optimizer.param_groups[0]["momentum"],
                  "weights": sorted(set(w.tolist())), "parts": [type(p).__name__ for p in
                  (method.weighting, method.theta, method.optimizer, method.stream)],
                  "moved_outside_last_layer": [n for n in moved if not n.startswith(f"model.layers.{{n_layers - 1}}.")],
                  "moved_in_last_layer": len(moved)}}))
try:
    load_config(LearnConfig, None, ["method.flat.level=2"])
except ConfigError as e:
    print("refused:", e)
'''


def test_each_kind_of_part_is_one_new_file(tmp_path, docs_file):
    pkg = tmp_path / "pkg"
    shutil.copytree(SRC, pkg / "taalm", ignore=shutil.ignore_patterns("__pycache__", "phi_default"))
    (pkg / "taalm" / "ckl" / "weighting" / "flat.py").write_text(textwrap.dedent(WEIGHTING))
    (pkg / "taalm" / "ckl" / "optim" / "sgdm.py").write_text(textwrap.dedent(OPTIMIZER))
    (pkg / "taalm" / "ckl" / "theta" / "last_layers.py").write_text(textwrap.dedent(THETA_FORM))
    (pkg / "taalm" / "ckl" / "streams" / "shortest_first.py").write_text(textwrap.dedent(STREAM))
    out = tmp_path / "run"
    script = RUN.format(tests=str(Path(__file__).resolve().parents[1]), docs=str(docs_file), out=str(out))
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       env={"PYTHONPATH": str(pkg), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    facts = json.loads(r.stdout.splitlines()[0])
    assert facts.pop("moved_in_last_layer") > 0  # the last layer trained ...
    assert facts == {"optimizer": "SGD", "momentum": 0.5, "weights": [0.25], "moved_outside_last_layer": [],  # ... only it
                     "parts": ["Flat", "LastLayers", "Sgdm", "ShortestFirst"]}
    assert "method.flat.level=2.0: must be a finite number > 0 and <= 1" in r.stdout  # its own rules, by key
    cfg = yaml.safe_load((out / "config.yaml").read_text())  # the resolved config records its sections
    assert cfg["method"]["name"] == "flat" and cfg["method"]["flat"] == {"level": 0.25}
    assert cfg["train"]["optimizer"] == "sgdm" and cfg["train"]["sgdm"] == {"momentum": 0.5}
    assert cfg["theta"]["mode"] == "last_layers" and cfg["theta"]["last_layers"] == {"n": 1}
    assert cfg["train"]["stream"] == "shortest_first"
    assert (out / "model").is_dir()  # saved as the θ form says
