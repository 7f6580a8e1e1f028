#!/usr/bin/env python3
"""Print the one-line error taalm gives for each kind of bad input, with its exit status, and
check that it wrote nothing: no output folder, the user's files byte-identical.

    python scripts/bad_input_examples.py          # every case, one block each; exit 1 if one fails

Each case runs in its own clean copy of the fixture folder (a tiny random Llama made here, small
files of each bad kind, FIFOs, and a learn run and a ``data tailor`` folder made here with one of
their folders replaced by a symlink to the user's folder ``mine``), in process
(``taalm.cli.main``), so the whole list takes seconds.
``tests/test_bad_inputs.py`` runs it. A case passes when the command exits 2 with exactly one
line on stderr (no traceback), creates no ``out`` folder and changes no file.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

M = "model.name=tiny"
CASES = f"""
learn empty.jsonl
learn invalid.jsonl
learn missing.jsonl
learn null.jsonl
learn bad.json
learn latin1.txt
learn ok.jsonl --probes probes_missing.jsonl
learn ok.jsonl --probes lama_noans.jsonl
learn ok.jsonl --method magic
learn ok.jsonl --method oracle {M}
learn ok.jsonl train.learning_rate=1e-4
learn ok.jsonl --config recipe.yaml
learn ok.jsonl --config syntax.yaml
learn ok.jsonl --config laughs.yaml
learn ok.jsonl --config twice.yaml
learn ok.jsonl train.lr=nan
learn ok.jsonl train.betas=[2,3]
learn ok.jsonl train.max_length=1
learn ok.jsonl train.max_length=64 train.stride=64
learn ok.jsonl eval.padding_side=middle
learn ok.jsonl eval.batch_size=0
learn ok.jsonl train.max_grad_norm=-1
learn ok.jsonl train.batch_tokens=-5
learn ok.jsonl train.checkpoint_every=0
learn ok.jsonl --method random method.random.mean=2
learn ok.jsonl {M} train.max_length=5000
learn ok.jsonl model.name=fake.gguf
learn ok.jsonl --out a_file
learn ok.jsonl --out notarun --overwrite
learn ok.jsonl --out . --overwrite
learn ok.jsonl --out a_file/run
eval --model ./no/such/model --probes probes.jsonl
eval --model tiny --probes probes.jsonl --batch-size 0
eval --model tiny --probes probes.jsonl --limit -3
eval --model tiny --probes probes.jsonl --json notarun
eval --model tiny --probes probes.jsonl --json probes.jsonl
eval --model tiny --probes probes.jsonl --adapter notarun
weights ok.jsonl --method finetune --html notarun {M}
weights ok.jsonl --method finetune --jsonl ok.jsonl {M}
bench lama-ckl --methods finetune --to-learn ok.jsonl --nf ok.jsonl --out out
train-attention --pairs lama_noans.jsonl --base tiny max_doc_tokens=1
data tailor --data notarun --out out
report notarun --out out
learn surrogate.jsonl
learn surrogate_key.json
learn fifo.jsonl
eval --model tiny --probes fifo.jsonl
learn ok.jsonl {M} --out locked
learn ok.jsonl 'train.x={{a: &a [x, x, x], b: [*a, *a, *a]}}'
config --for bench-stream stream.periods=-1
config --for bench-stream stream.min_letters=2
learn ok.jsonl {M} --out run --resume train.epochs=2
learn ok.jsonl {M} --out run --overwrite
data tailor --data lama --model tiny --out tailored
data tailor --data lama --model tiny --out tailored --overwrite
report stream_nometrics --out out
report stream_nan --out out
report stream_huge --out out
""".strip().splitlines()

#: cases made of files that are no bytes: FIFOs (a reader that opened one would wait for ever), made
#: in each case's copy of the fixtures (copying a FIFO would hang too)
FIFOS = ("fifo.jsonl", ".locked.taalm-lock")


def _stream_result(**change) -> bytes:
    """A stream benchmark's ``result.json`` (two periods), with ``change`` applied to it."""
    import json

    R = [[0.0, 0.0], [0.5, 0.1], [0.4, 0.6]]
    metrics = {"mean_learning": 0.55, "mean_forgetting": 0.1, "bwt": -0.1, "fwt": 0.1, "final_acc": 0.5,
               "seen_acc": [0.5, 0.5]}
    r = {"periods": ["p1", "p2"], "primary": "to_learn", "sets": {"to_learn": {"accuracy": R}}, "metrics": metrics,
         "nf": {}, "wall_s": 60.0, **change}
    return json.dumps(r).encode()


def _lama_unit(i: int, subject: str, obj: str) -> bytes:
    import json

    return (json.dumps({"uuid": f"u{i}", "subject": subject, "relation_label": "capital", "object": obj,
                        "evidence": f"The capital of {subject} is {obj} .",
                        "task_descriptive": f"The capital of {subject} is {obj} .",
                        "task_schematic": f"Guess the object. subject is {subject} , relation is capital , "
                                          f"object is {obj}"}) + "\n").encode()

FILES = {
    "empty.jsonl": b"",
    "invalid.jsonl": b'{"text": "ok"}\n{"text": "broken\n',
    "missing.jsonl": b'{"text": "ok"}\n{"body": "x"}\n',
    "null.jsonl": b'{"text": null}\n',
    "bad.json": b'[{"text": "Paris is in France."}] trailing',
    "ok.jsonl": b'{"text": "Paris is in France."}\n',
    "probes.jsonl": b'{"prompt": "Ilvara is the capital of Sennet", "answer": "Ilvara"}\n',
    "probes_missing.jsonl": b'{"prompt": "The capital of Sennet is", "answer": "Ilvara"}\n{"prompt": "x is"}\n',
    "lama_noans.jsonl": b'{"uuid": "u1", "evidence": "Welsh is spoken in Wales.", "object": "Welsh", '
                        b'"task_descriptive": "The official language of Wales is English ."}\n',
    "latin1.txt": b"First document.\n\nSecond document, caf\xe9.\n",
    "recipe.yaml": b"train:\n  lr: 1e-4\n  epoch: 3\n",
    "syntax.yaml": b"train:\n  lr: 1e-4\n  epochs: [3,\n",
    "laughs.yaml": b"a: &a [x, x, x, x, x, x, x, x, x]\nb: [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n",
    "twice.yaml": b"train:\n  lr: 1.0e-3\ntrain:\n  epochs: 2\n",
    "fake.gguf": b"not a gguf",
    "a_file": b"mine\n",
    "notarun/notes.txt": b"keep me\n",
    "surrogate.jsonl": b'{"text": "Paris is in France."}\n{"text": "bad \\ud800 escape"}\n',
    "surrogate_key.json": b'[{"text": "Paris is in France.", "\\udc00": 1}]\n',
    "mine/epoch-0001.jsonl": b"the user's file\n",
    "mine/variant.task_descriptive.jsonl": b"the user's file\n",
    "mine/meta.json": b'{"model_spec": "another model"}\n',
    "lama/variant.jsonl": _lama_unit(1, "Sennet", "Ilvara") + _lama_unit(2, "Wales", "Cardiff"),
    "lama/invariant_descriptive.jsonl": _lama_unit(3, "France", "Paris"),
    "lama/invariant_schematic.jsonl": _lama_unit(4, "Italy", "Rome"),
    "stream_nometrics/stream.json": b'{"benchmark": "stream"}',
    "stream_nometrics/finetune/result.json": _stream_result(metrics={}),
    "stream_nan/stream.json": b'{"benchmark": "stream"}',
    "stream_nan/finetune/result.json": _stream_result().replace(b"0.4,", b"NaN,", 1),
    "stream_huge/stream.json": b'{"benchmark": "stream"}',
    "stream_huge/finetune/result.json": _stream_result().replace(b"0.4,", b"1e308,", 1),
}


def _plant_symlinks(folder: Path) -> None:
    """A taalm run (``run``) and a ``data tailor`` folder (``tailored``) made here, each with one of
    its own folders replaced by a symlink to the user's folder ``mine``: a run that followed it would
    overwrite or delete the user's files."""
    from taalm.cli import main

    err = io.StringIO()
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            for argv in (["learn", "ok.jsonl", M, "--out", "run", "--quiet", "train.epochs=1", "train.max_length=64",
                          "train.stride=32"],
                         ["data", "tailor", "--data", "lama", "--model", "tiny", "--out", "tailored", "--quiet"]):
                if main(argv) != 0:
                    raise RuntimeError(f"making the fixtures: taalm {' '.join(argv)} failed: {err.getvalue()[-500:]}")
    finally:
        os.chdir(cwd)
    for link in (folder / "run" / "eval", folder / "tailored" / "scores"):
        shutil.rmtree(link, ignore_errors=True)
        link.symlink_to(Path("..") / "mine", target_is_directory=True)


def make_fixtures(folder: Path) -> None:
    """The files of every case, and ``tiny/``: a random one-layer Llama with its tokenizer."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    for name, data in FILES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.train_from_iterator(["Paris is in France. Ilvara is the capital of Sennet."] * 3, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<pad>", "<s>", "</s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", bos_token="<s>", eos_token="</s>")
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                 num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256,
                                 pad_token_id=0)).save_pretrained(folder / "tiny")
    tok.save_pretrained(folder / "tiny")
    _plant_symlinks(folder)


def digest(folder: Path) -> dict[str, str]:
    """sha256 of every regular file below ``folder`` (symlinks not followed: ``mine`` counts once)."""
    out = {}
    for root, _, files in os.walk(folder):
        for name in sorted(files):
            p = Path(root) / name
            if p.is_file() and not p.is_symlink():
                out[str(p.relative_to(folder))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def run_case(case: str, fixtures: Path, work: Path) -> dict:
    """One case in a fresh copy of the fixtures: its exit status, stderr lines and what changed."""
    from taalm.cli import main

    shutil.copytree(fixtures, work, symlinks=True)
    for name in FIFOS:
        os.mkfifo(work / name)
    before = digest(work)
    argv = shlex.split(case)
    if argv[0] in ("learn", "train-attention") and "--out" not in argv:
        argv += ["--out", "out"]
    err = io.StringIO()
    cwd = os.getcwd()
    os.chdir(work)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(argv)
    except SystemExit as e:  # argparse's own usage errors
        code = e.code
    finally:
        os.chdir(cwd)
    lines = [ln for ln in err.getvalue().splitlines()
             if ln.strip() and not ln.startswith(("learning ", "loading ", "meta-training ", "tailor: loading"))]
    after = digest(work)
    changed = sorted(k for k in before if after.get(k) != before[k])
    ok = code == 2 and len(lines) == 1 and "Traceback" not in err.getvalue() and not (work / "out").exists() \
        and not changed
    return {"case": case, "exit": code, "lines": lines, "out_created": (work / "out").exists(),
            "changed": changed, "ok": ok}


def run_all(cases=CASES) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        fixtures = Path(tmp) / "fixtures"
        fixtures.mkdir()
        make_fixtures(fixtures)
        return [run_case(c, fixtures, Path(tmp) / f"case{i:02d}") for i, c in enumerate(cases)]


def main() -> int:
    results = run_all()
    for r in results:
        print(f"$ taalm {r['case']}")
        for line in r["lines"]:
            print(line)
        print(f"(exit {r['exit']}; output folder {'EXISTS' if r['out_created'] else 'not created'}"
              f"{'; CHANGED ' + ', '.join(r['changed']) if r['changed'] else ''}){'' if r['ok'] else '  <- FAIL'}")
    bad = [r["case"] for r in results if not r["ok"]]
    print(f"\n{len(results) - len(bad)} of {len(results)} cases: one line, exit 2, nothing written"
          + (f"; failing: {bad}" if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
