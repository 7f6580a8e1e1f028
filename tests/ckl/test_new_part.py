"""A new CKL part is one new file (issue 26): drop a weighting with its own settings and an
optimizer with its own settings into their folders of a copy of the package, touch nothing else,
and `taalm learn` takes them, their settings and their checks by name."""

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

RUN = '''
import json, sys
sys.path.insert(0, {tests!r})
from conftest import build_tokenizer, make_llama
from taalm import learn, read_documents, load_config, LearnConfig, QUIET
from taalm.core.errors import ConfigError

tok = build_tokenizer()
docs = read_documents({docs!r})
cfg = load_config(LearnConfig, None, ["method.name=flat+sgdm", "method.flat.level=0.25",
                                      "train.sgdm.momentum=0.5", "train.epochs=1", "theta.lora.r=2"])
res = learn(docs, None, cfg, {out!r}, model=make_llama(len(tok)), tokenizer=tok, options=QUIET)
from taalm.ckl.method import get_method, resolve_method, split_method_name
from taalm.data import encode
method = resolve_method(split_method_name(cfg))
w = method.weighting.document_weights(0, encode(tok, docs[0].text))
print(json.dumps({{"optimizer": type(res.optimizer).__name__, "momentum": res.optimizer.param_groups[0]["momentum"],
                  "weights": sorted(set(w.tolist())), "parts": [type(p).__name__ for p in
                  (method.weighting, method.theta, method.optimizer, method.stream)]}}))
try:
    load_config(LearnConfig, None, ["method.flat.level=2"])
except ConfigError as e:
    print("refused:", e)
'''


def test_a_weighting_and_an_optimizer_are_one_new_file_each(tmp_path, docs_file):
    pkg = tmp_path / "pkg"
    shutil.copytree(SRC, pkg / "taalm", ignore=shutil.ignore_patterns("__pycache__", "phi_default"))
    (pkg / "taalm" / "ckl" / "weighting" / "flat.py").write_text(textwrap.dedent(WEIGHTING))
    (pkg / "taalm" / "ckl" / "optim" / "sgdm.py").write_text(textwrap.dedent(OPTIMIZER))
    out = tmp_path / "run"
    script = RUN.format(tests=str(Path(__file__).resolve().parents[1]), docs=str(docs_file), out=str(out))
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       env={"PYTHONPATH": str(pkg), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    facts = json.loads(r.stdout.splitlines()[0])
    assert facts == {"optimizer": "SGD", "momentum": 0.5, "weights": [0.25], "parts": ["Flat", "Lora", "Sgdm", "Plain"]}
    assert "method.flat.level=2.0: must be a finite number > 0 and <= 1" in r.stdout  # its own rules, by key
    cfg = yaml.safe_load((out / "config.yaml").read_text())  # the resolved config records its sections
    assert cfg["method"]["name"] == "flat" and cfg["method"]["flat"] == {"level": 0.25}
    assert cfg["train"]["optimizer"] == "sgdm" and cfg["train"]["sgdm"] == {"momentum": 0.5}
