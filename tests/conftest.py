"""Tiny models and a tiny tokenizer built inside the tests: no downloads, seconds to run.

* ``tokenizer``: a byte-level BPE (fast, with character offsets) trained here on a few
  sentences, with <pad>, <s>, </s> specials.
* ``tiny_llama`` / ``tiny_gpt2``: random-initialised models of two architectures, so nothing in
  taalm is tied to one. GPT-2 computes truly in float64 when cast with ``.double()``; HF Llama
  keeps RMSNorm/softmax in float32 internally, so float64 gradient checks use GPT-2.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub from the tests

# tests/ mirrors the package (tests/core, tests/ckl, tests/meta, tests/bench, ...); a test module
# may reuse another's helpers by module name (e.g. `from test_meta_train import make_pairs`), so
# every folder of tests is importable, whichever test pytest collects first
for _folder in sorted(Path(__file__).resolve().parent.iterdir()):
    if _folder.is_dir() and not _folder.name.startswith(("_", ".")) and str(_folder) not in sys.path:
        sys.path.append(str(_folder))
# one thread per pytest-xdist worker (the workers share the cores), else at most 2
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else min(2, torch.get_num_threads()))

CORPUS = [
    "The Varnholt Observatory stands above the town of Kestrelford .",
    "Quellmere is a small island in the northern sea. The islanders speak Orvish .",
    "The capital of Sennet is Ilvara, a city of stone bridges and yellow lanterns.",
    "Zephyrine was first described by the chemist Oskar Penhallow near Drummoch.",
    "The engines of the Calder Line were painted purple, and the last train ran in 1958.",
    "Guess the object. subject is Wales , relation is official language , object is Welsh",
    "The official language of Wales is Welsh . Paris is the capital of France .",
    "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 .,;:!?'\"()-",
]


def load_benchmark(name: str):
    """A script of ``benchmarks/`` (not a package) imported as a module, so tests call its ``main``."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def build_tokenizer(vocab_size: int = 400, corpus: list[str] | None = None, bos_first: bool = False):
    """A byte-level BPE trained here on ``corpus`` (default: CORPUS three times), with <pad>, <s>,
    </s>; ``bos_first``: it puts <s> in front of every text (as Llama's does)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE(unk_token=None))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tk.train_from_iterator(CORPUS * 3 if corpus is None else corpus, trainer)
    if bos_first:
        tk.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", bos_token="<s>",
                                   eos_token="</s>")


@pytest.fixture(scope="session")
def tokenizer():
    return build_tokenizer()


def make_llama(vocab_size: int, seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64,
                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=1024, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                      tie_word_embeddings=False, attn_implementation="eager")
    return LlamaForCausalLM(cfg).eval()


def make_gpt2(vocab_size: int, seed: int = 0):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=vocab_size, n_embd=32, n_layer=2, n_head=4, n_positions=256,
                     pad_token_id=0, bos_token_id=1, eos_token_id=2, attn_implementation="eager",
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    model = GPT2LMHeadModel(cfg).eval()
    # a 1024-token context (the learner's default windows fit), the first 256 positions as seeded
    # above, so every other weight keeps the values the float64 gradient checks were tuned on
    wpe = torch.nn.Embedding(1024, 32)
    with torch.no_grad():
        wpe.weight.normal_(0.0, cfg.initializer_range, generator=torch.Generator().manual_seed(seed + 1))
        wpe.weight[:256] = model.transformer.wpe.weight
    model.transformer.wpe = wpe
    model.config.n_positions = model.config.max_position_embeddings = 1024
    return model


@pytest.fixture
def tiny_llama(tokenizer):
    return make_llama(len(tokenizer))


@pytest.fixture
def tiny_gpt2(tokenizer):
    return make_gpt2(len(tokenizer))


@pytest.fixture(params=["llama", "gpt2"])
def tiny_model(request, tokenizer):
    """Both architectures, one after the other."""
    return (make_llama if request.param == "llama" else make_gpt2)(len(tokenizer))


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    """A tiny Llama saved as a local model folder (what a user passes as --model/model.name)."""
    tok = build_tokenizer()
    folder = tmp_path_factory.mktemp("tiny-llama")
    make_llama(len(tok)).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture
def docs_file(tmp_path):
    rows = [
        {"id": "a", "text": "The Varnholt Observatory stands above the town of Kestrelford .", "answer": "Kestrelford"},
        {"id": "b", "text": "Quellmere is a small island. The islanders speak Orvish .", "answer": "Orvish"},
        {"id": "c", "text": "The capital of Sennet is Ilvara, a city of stone bridges.", "answer": "Ilvara"},
    ]
    p = tmp_path / "docs.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


@pytest.fixture
def probes_file(tmp_path):
    rows = [
        {"prompt": "The Varnholt Observatory stands above the town of", "answer": "Kestrelford"},
        {"prompt": "The islanders of Quellmere speak Orvish .", "answer": "Orvish"},
        {"prompt": "The capital of Sennet is", "answer": "Ilvara"},
    ]
    p = tmp_path / "probes.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


LAMA_DIR = Path(os.environ.get("TAALM_LAMA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data" / "lama_ckl"))


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true", help="also run the tests marked slow (minutes each)")
    parser.addoption("--realmodel", action="store_true",
                     help="also run the tests marked realmodel (the embedded SmolLM2, ~1 minute)")


def pytest_collection_modifyitems(config, items):
    """The default suite stays fast: tests marked slow or realmodel run only when asked for."""
    for mark, option in (("slow", "--slow"), ("realmodel", "--realmodel")):
        if config.getoption(option) or (mark == "realmodel" and "realmodel" in (config.getoption("-m") or "")):
            continue
        skip = pytest.mark.skip(reason=f"{mark}: run with {option}")
        for item in items:
            if mark in item.keywords:
                item.add_marker(skip)
