"""The ``taalm`` command: a thin layer over the library.

Every subcommand parses arguments, then calls one public function that a notebook can call too
(``taalm.ckl.learner.learn``, ``taalm.tools.evaluate.evaluate_model``,
``taalm.tools.weights.token_weights``, ``taalm.tools.tailor.tailor``, ``taalm.tools.pool.build_pool``,
``taalm.meta.training.train_attention``, ``taalm.demo.run_demo``, ...) and prints its result.
torch and transformers are imported inside the subcommands, so ``taalm --help`` starts instantly.
User errors exit with status 2 and one line naming file, line and field; nothing is written before
the inputs have been validated.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from .core.errors import TaalmError, printable

EXAMPLES = """\
examples:
  taalm demo                                   # learn invented facts on the embedded SmolLM2
  taalm learn docs.jsonl --probes probes.jsonl --method oracle --out runs/x train.epochs=10
  taalm learn lama_ckl/variant.jsonl --probes lama_ckl/variant.jsonl data.limit=20 train.lr=1e-3
  taalm eval --model smollm2-135m --adapter runs/x --probes probes.jsonl
  taalm weights docs.jsonl --method rho1 --html weights.html
  taalm data tailor --model smollm2-135m --data lama_ckl --out tailored/smollm2
  taalm train-attention --pairs tailored/smollm2/phi_pool.jsonl --base smollm2-135m --out runs/phi \\
        updates=60 engine=directional
  taalm bench lama-ckl --data tailored/smollm2 --methods finetune,rho1,oracle,random --size cpu \\
        --out runs/bench-cpu                   # To-Learn / Not-To-Forget curves per method
  taalm recipes                                # the shipped recipes (taalm recipes cp NAME DEST)
  taalm config                                 # print every configuration key with its default

lama_ckl/ is a folder of LAMA-ckl units (JSONL: evidence, task_descriptive, task_schematic, object, uuid).
"""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit 2), like every other taalm error."""

    def error(self, message: str):  # noqa: D401 - argparse's hook
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _int_at_least(low: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value
    parse.__name__ = f"integer >= {low}"
    return parse


def _fraction(text: str) -> float:
    """argparse type: a number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1], got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {value}")
    return value


def _add_config_args(p: argparse.ArgumentParser, example: str = "train.lr=1e-3 theta.mode=full") -> None:
    p.add_argument("--config", metavar="YAML", help="recipe file overriding the defaults")
    p.add_argument("overrides", nargs="*", metavar="key.sub=value",
                   help=f"configuration overrides, e.g. {example} (all keys: taalm config)")


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: one sub-parser per command (each built by its ``_add_*``)."""
    from . import __version__

    parser = _Parser(
        prog="taalm", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Continual knowledge learning with token-weighted training (Train-Attention).",
        epilog=EXAMPLES)
    parser.add_argument("--version", action="version", version=f"taalm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_learn(sub)
    _add_eval(sub)
    _add_weights(sub)
    _add_demo(sub)
    _add_data(sub)
    _add_train_attention(sub)
    _add_bench(sub)
    _add_methods_and_config(sub)
    _add_cache(sub)
    return parser


def _add_cache(sub) -> None:
    """``taalm cache``."""
    p = sub.add_parser("cache", help="list (or --clear) the model cache: dequantized GGUF models",
                       description="The first load of a GGUF model (the embedded SmolLM2 included) writes its "
                                   "dequantized weights as safetensors into the cache (TAALM_CACHE_DIR, default "
                                   "~/.cache/taalm; ~520 MB for SmolLM2-135M), keyed by the GGUF file's content; "
                                   "later loads take well under a second, the first one 15-60 s on 2 CPU cores (62 s in our "
                                   "fresh-clone timing). TAALM_MODEL_CACHE=0 turns it off.")
    p.add_argument("--clear", action="store_true", help="delete every cache folder taalm made (never others)")


def _add_learn(sub) -> None:
    """``taalm learn``."""
    p = sub.add_parser("learn", help="learn documents with a weighting method, evaluate probes",
                       description="Train θ on DOCS (.txt blocks; records with text/answer as JSON Lines, "
                                   "a JSON array, Parquet or a datasets folder; or LAMA-ckl units); "
                                   "evaluate PROBES before and after.")
    p.add_argument("docs", metavar="DOCS")
    p.add_argument("--probes", metavar="P", help="JSONL probes (prompt/answer or LAMA-ckl units)")
    p.add_argument("--method", metavar="M", help="weighting method (shortcut for method.name=M)")
    p.add_argument("--text-field", metavar="F", help="the documents' text field (shortcut for data.text_field=F)")
    p.add_argument("--keep", metavar="K", help="what 'kept' measures: builtin (default: general facts the base model "
                                               "answers) | none | a probe file (shortcut for data.kept=K)")
    p.add_argument("--val", metavar="V", help="validation probes: with --keep-best, the epoch kept is the best on "
                                              "them (shortcut for data.val=V)")
    p.add_argument("--keep-best", action="store_true", help="keep θ of the best epoch, not the last (train.keep=best)")
    p.add_argument("--out", metavar="DIR", help="run folder (default runs/learn-<time>)")
    p.add_argument("--resume", action="store_true", help="continue DIR from its last checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace an existing DIR")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_config_args(p)


def _add_eval(sub) -> None:
    """``taalm eval``."""
    p = sub.add_parser("eval", help="probe accuracy and answer NLL of a model (+ adapter)")
    p.add_argument("--allow-pickle", action="store_true", default=None,
                   help="read a model folder whose weights are pickle files (.bin): only folders you trust")
    p.add_argument("--model", metavar="MODEL", help="model.name (default smollm2-135m)")
    p.add_argument("--adapter", metavar="DIR", help="LoRA adapter folder (or a run folder)")
    p.add_argument("--probes", required=True, metavar="P")
    p.add_argument("--probe-field", help="data.probe_field: for LAMA-ckl units, task_descriptive or task_schematic")
    p.add_argument("--limit", type=_int_at_least(0), help="data.limit: first N probes only")
    p.add_argument("--batch-size", type=_int_at_least(1), help="eval.batch_size (default 16)")
    p.add_argument("--padding-side", choices=["right", "left"], help="eval.padding_side")
    p.add_argument("--device", help="model.device")
    p.add_argument("--dtype", help="model.dtype")
    _add_config_args(p, "eval.batch_size=32 model.dtype=bf16")
    p.add_argument("--json", metavar="FILE", help="also write per-probe results (and the resolved config) here")
    p.add_argument("--log-samples", metavar="FILE.jsonl",
                   help="per-probe logs: prompt, answer, the predicted tokens at the answer, accuracy, NLL")
    p.add_argument("--quiet", action="store_true")


def _add_weights(sub) -> None:
    """``taalm weights``."""
    p = sub.add_parser("weights", help="show the token weights a method gives documents")
    p.add_argument("docs", metavar="DOCS")
    p.add_argument("--method", metavar="M", help="weighting method (shortcut for method.name=M)")
    p.add_argument("--text-field", metavar="F", help="the documents' text field (shortcut for data.text_field=F)")
    p.add_argument("--html", metavar="OUT.html", help="write a heatmap to open in a browser")
    p.add_argument("--plain", action="store_true", help="print the weights in the terminal (n/a: no loss)")
    p.add_argument("--jsonl", metavar="OUT.jsonl",
                   help="write tokens, offsets and weights per document (JSON Lines); a document's first token "
                        "has no loss (nothing predicts it), so its weight is null and listed in \"no_loss\": [0]")
    p.add_argument("--npz", metavar="OUT.npz",
                   help="write them as flat NumPy arrays (no pickle); weight NaN where the bool array "
                        "has_loss is False (each document's first token)")
    _add_config_args(p, "method.taalm.checkpoint=PHI train.max_length=256")


def _add_demo(sub) -> None:
    """``taalm demo``."""
    p = sub.add_parser("demo", help="the README's main job: learn invented facts on SmolLM2")
    p.add_argument("--out", default="runs/demo", metavar="DIR",
                   help="output folder: new, or a demo folder taalm made (rerun in place)")
    p.add_argument("--overwrite", action="store_true", help="empty a demo folder taalm made first")
    p.add_argument("--quiet", action="store_true")
    _add_config_args(p, "train.epochs=8 train.lr=1e-3")


def _add_data(sub) -> None:
    """``taalm data tailor`` and ``taalm data pool``."""
    p = sub.add_parser("data", help="prepare data sets (tailor LAMA-ckl to a base model; build a φ pool from T-REx)")
    data_sub = p.add_subparsers(dest="data_command", metavar="ACTION")
    p = data_sub.add_parser(
        "tailor", help="score LAMA-ckl with a base model; write To-Learn, Not-To-Forget, φ pool",
        description="Score every unit of DIR/{variant,invariant_descriptive,invariant_schematic}.jsonl "
                    "in both probe formats with the base model and write to_learn.jsonl, "
                    "not_to_forget_{descriptive,schematic}.jsonl, phi_pool.jsonl, summary.json and "
                    "scores.png to OUT. Scores are cached in OUT/scores/: a rerun resumes.")
    p.add_argument("--model", metavar="MODEL", help="model (default smollm2-135m)")
    p.add_argument("--data", required=True, metavar="DIR", help="folder with the LAMA-ckl files")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (keep it outside the repository)")
    p.add_argument("--batch-size", type=_int_at_least(1), help="batch_size (default 32)")
    p.add_argument("--overwrite", action="store_true",
                   help="empty OUT first (only a folder this command made; the default reruns in place, "
                        "reusing the score cache)")
    p.add_argument("--to-learn-rule", choices=["both", "descriptive", "schematic"],
                   help="to_learn_rule: To-Learn = variant units scoring 0 in both probe formats (default) or in one")
    p.add_argument("--device", help="device (default auto)")
    p.add_argument("--dtype", help="dtype (default auto)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_config_args(p, "chunk_size=128 to_learn_rule=descriptive")
    p = data_sub.add_parser(
        "pool", help="build a φ-training pool from LAMA T-REx facts, scored by the base model",
        description="Turn LAMA T-REx facts (TREX: a folder of P<id>.jsonl files, or files) into LAMA-ckl "
                    "units: evidence = the shortest masked sentence with the object restored that is "
                    "longer than 200 characters and holds subject and object; descriptive and "
                    "schematic probes from the relation's template and label. Excludes every uuid of "
                    "the --exclude LAMA-ckl files, keeps facts the base model scores < 0.5 in both "
                    "probe formats, splits a validation set disjoint by uuid and by subject. Writes "
                    "train.jsonl, val.jsonl, summary.json, scores.png to OUT; scores are cached in "
                    "OUT/scores/ (a rerun resumes). Data licence: CC BY-NC 4.0.")
    p.add_argument("trex", nargs="+", metavar="TREX",
                   help="folder of LAMA T-REx P<id>.jsonl files, or files; then optional key=value "
                        "overrides of the pool's config (all keys: taalm config --for data-pool)")
    p.add_argument("--config", metavar="YAML", help="recipe file overriding the defaults")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (keep it outside the repository)")
    p.add_argument("--exclude", action="append", default=[], metavar="PATH",
                   help="LAMA-ckl file or folder whose uuids never enter the pool (repeatable)")
    p.add_argument("--relations", metavar="FILE",
                   help="LAMA relations JSONL (relation, template, label); default: built-in LAMA table")
    p.add_argument("--model", metavar="MODEL", help="model (default smollm2-135m)")
    p.add_argument("--val", type=_int_at_least(0), metavar="N", help="n_val: validation facts, whole subjects (≥ N; default 256)")
    p.add_argument("--cap", type=_int_at_least(0), metavar="N", help="per_relation_cap: at most N facts per relation (0: no cap)")
    p.add_argument("--invent", type=_fraction, metavar="FRACTION",
                   help="also add invented-entity copies (subject and object replaced by invented names, "
                        "kept when the base model scores 0) of this fraction of the training facts to "
                        "train.jsonl, and of every validation fact to val_invented.jsonl (default 0: none)")
    p.add_argument("--seed", type=int, help="seed (default 0)")
    p.add_argument("--overwrite", action="store_true",
                   help="empty OUT first (only a folder this command made; the default reruns in place, "
                        "reusing the score cache)")
    p.add_argument("--batch-size", type=_int_at_least(1), help="batch_size (default 32)")
    p.add_argument("--device", help="device (default auto)")
    p.add_argument("--dtype", help="dtype (default auto)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_train_attention(sub) -> None:
    """``taalm train-attention``."""
    p = sub.add_parser(
        "train-attention", help="meta-train a Train-Attention model φ on (document, task) pairs",
        description="Meta-train φ on PAIRS: JSONL rows document/task/answer, or LAMA-ckl "
                    "units (evidence, task_schematic, object). Writes φ (safetensors), the config, "
                    "log.jsonl, val.jsonl, validation.png and a before/after weight heatmap to OUT.")
    p.add_argument("--pairs", required=True, metavar="FILE")
    p.add_argument("--val", metavar="FILE", action="append", default=[],
                   help="held-out pairs (default: val.n_pairs held out of PAIRS); repeat for several "
                        "validation splits (named by file name, e.g. val and val_invented): φ is then "
                        "selected by the mean of the splits' accuracies")
    p.add_argument("--base", metavar="MODEL", help="base model of θ and φ (model.name and phi.base)")
    p.add_argument("--engine", choices=["directional", "double_backward"], help="meta-gradient engine")
    p.add_argument("--out", metavar="DIR", help="run folder (default runs/phi-<time>)")
    p.add_argument("--limit", type=_int_at_least(0), default=0, help="first N pairs only")
    p.add_argument("--val-limit", type=_int_at_least(0), default=0, metavar="N",
                   help="first N held-out pairs of each --val file only (the shipped φ: 128)")
    p.add_argument("--supervised", action="store_true",
                   help="instead of meta-training: the cheap supervised start (φ learns to predict the "
                        "answer's tokens in each document, supervised.* keys); then meta-train with "
                        "init=OUT/phi")
    p.add_argument("--resume", action="store_true", help="continue DIR from its last checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace an existing DIR")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_config_args(p, "updates=60 lr=2e-4 inner.k_warm=1")


def _add_bench(sub) -> None:
    """``taalm bench``."""
    p = sub.add_parser(
        "bench", help="run a benchmark (lama-ckl: To-Learn and Not-To-Forget accuracy per method)",
        description="LAMA-ckl: for each method, from the same θ0, learn the To-Learn evidence "
                    "for E epochs and evaluate To-Learn and Not-To-Forget probes before training and "
                    "after every epoch; report Top Acc, Epoch, NF Acc, Total Knowledge. Writes "
                    "OUT/<method>/result.json, results.md, curves.png, summary.json. A rerun skips "
                    "finished methods and resumes an interrupted one.")
    p.add_argument("benchmark", metavar="NAME",
                   help="benchmark name: lama-ckl, or `stream STREAM` (lama-ckl-stream, temporalwiki)")
    p.add_argument("--methods", required=True, metavar="M1,M2",
                   help="comma-separated weighting methods, e.g. finetune,rho1,oracle,random,taalm "
                        "(taalm uses the shipped φ for SmolLM2 unless method.taalm.checkpoint=PHI)")
    p.add_argument("--size", default="smoke", metavar="SIZE",
                   help="preset: smoke (seconds), cpu (SmolLM2 on a 2-core CPU), paper (default: smoke)")
    p.add_argument("--data", metavar="DIR", help="a `taalm data tailor` output folder (to_learn.jsonl and "
                                                 "not_to_forget_<format>.jsonl)")
    p.add_argument("--to-learn", metavar="FILE", help="To-Learn LAMA-ckl units (instead of --data; also "
                                                      "stream lama-ckl-stream)")
    p.add_argument("--nf", metavar="FILE", help="Not-To-Forget LAMA-ckl units (instead of --data; also "
                                                "stream lama-ckl-stream)")
    p.add_argument("--probe-format", default="descriptive", choices=["descriptive", "schematic"],
                   help="probe field task_descriptive (default) or task_schematic")
    p.add_argument("--out", required=True, metavar="DIR", help="benchmark folder (reuse it to resume)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("overrides", nargs="*", metavar="key.sub=value",
                   help="overrides on top of the size preset, e.g. train.lr=1e-3 bench.n_to_learn=50; a "
                        "stream's own options are stream.* keys, some also flags the stream declares "
                        "(all of them: taalm config --for bench-stream)")


def _add_methods_and_config(sub) -> None:
    """``taalm methods`` and ``taalm config``."""
    sub.add_parser("methods", help="list the registered method parts (weightings, θ forms, optimizers, streams)")
    p = sub.add_parser("config", help="print the resolved configuration as YAML, each key with its description")
    p.add_argument("--for", dest="schema", default="learn", choices=list(CONFIG_SCHEMAS),
                   help="which command's configuration (default: learn)")
    _add_config_args(p)
    p = sub.add_parser("report", help="tables and plots (± SE) re-rendered from saved learn runs and benches",
                       description="Re-render tables and plots from saved learn run folders and LAMA-ckl bench "
                                   "folders, side by side, without training: OUT/report.md, learn.png, bench.png.")
    p.add_argument("dirs", nargs="+", metavar="DIR", help="learn run folders and/or bench folders")
    p.add_argument("--out", metavar="OUT", help="report folder (default runs/report-<time>)")
    p = sub.add_parser("recipes", help="list the shipped recipes; `recipes cp NAME DEST` copies one to edit",
                       description="The shipped YAML recipes (phi_* for train-attention, the others for "
                                   "learn). --config NAME uses one directly; `taalm recipes cp NAME DEST` "
                                   "copies it (never over an existing file).")
    p.add_argument("action", nargs="?", choices=["ls", "cp"], default="ls")
    p.add_argument("name", nargs="?", metavar="NAME")
    p.add_argument("dest", nargs="?", metavar="DEST", help="a folder or a new file name (default: .)")


def _config_from_flags(cls, args, shortcuts: dict[str, str], extra: list[str] | None = None):
    """Every command's one road to its typed config (:func:`taalm.core.config.load_config`):
    the schema's defaults, then ``--config YAML``, then each flag the user set (``shortcuts``:
    flag dest -> its config key; unset flags are None and change nothing), then ``key=value``
    overrides. Unknown keys and bad values are errors naming the key."""
    import json

    from .core.config import load_config

    flags = []
    for dest, key in shortcuts.items():
        value = getattr(args, dest, None)
        if value is None or value is False or value == []:
            continue
        text = json.dumps(value) if isinstance(value, (list, bool)) else str(value)
        flags.append(f"{key}={text}")
    return load_config(cls, getattr(args, "config", None), flags + list(extra or []) + list(getattr(args, "overrides", []) or []))


def _run_options(args):
    """How a command's call treats its folder and talks: its --resume/--overwrite/--quiet flags
    (where it has them); messages go to stderr."""
    from .core.run import RunOptions

    return RunOptions(resume=getattr(args, "resume", False), overwrite=getattr(args, "overwrite", False),
                      progress=not getattr(args, "quiet", False),
                      log=lambda m: print(printable(m), file=sys.stderr))


def _overrides(args) -> list[str]:
    extra = list(getattr(args, "overrides", []) or [])
    if getattr(args, "method", None):
        extra.append(f"method.name={args.method}")
    if getattr(args, "text_field", None):
        extra.append(f"data.text_field={args.text_field}")
    if getattr(args, "keep", None):
        extra.append(f"data.kept={args.keep}")
    if getattr(args, "val", None):
        extra.append(f"data.val={args.val}")
    if getattr(args, "keep_best", False):
        extra.append("train.keep=best")
    return extra


def cmd_learn(args) -> int:
    from .core.config import load_config
    from .ckl.config import LearnConfig
    from .data import read_documents, read_probes
    from .ckl.learner import check_documents
    from .ckl.method import resolve_method, split_method_name
    from .reporting.tables import format_history, format_outcome

    out = Path(args.out) if args.out else Path("runs") / time.strftime("learn-%Y%m%d-%H%M%S")
    recipe = args.config
    if args.resume and recipe is None and (out / "config.yaml").is_file():
        recipe = out / "config.yaml"  # resume with the configuration the run started with
    cfg = load_config(LearnConfig, recipe, _overrides(args))
    # validate everything cheap before loading a model or writing anything
    docs = read_documents(args.docs, cfg.data.limit, cfg.data.text_field)
    probes = read_probes(args.probes, cfg.data.probe_field, cfg.data.limit) if args.probes else None
    parts = resolve_method(split_method_name(cfg))  # every part exists and they fit together
    check_documents(docs, parts.weighting)

    from .ckl.learner import learn

    from .core.distributed import launched_as_main

    if launched_as_main():
        print(f"learning {len(docs)} documents with method '{parts.name}' -> {printable(str(out))}", file=sys.stderr)
    res = learn(docs, probes, cfg, out, options=_run_options(args))
    if res.history:
        print(format_history(res.history, f"probe accuracy ({cfg.method.name})"))
        print(format_outcome(res.result))
    print(f"run folder: {printable(str(out))}")
    return 0


#: ``taalm eval``'s flags: shortcuts for keys of :class:`~taalm.core.config.ProbeEvalConfig`
EVAL_SHORTCUTS = {"model": "model.name", "device": "model.device", "dtype": "model.dtype",
                  "allow_pickle": "model.allow_pickle", "adapter": "adapter", "probe_field": "data.probe_field",
                  "limit": "data.limit", "batch_size": "eval.batch_size", "padding_side": "eval.padding_side"}


def cmd_eval(args) -> int:
    import json

    from .core.config import ProbeEvalConfig
    from .tools.evaluate import evaluate_model

    cfg = _config_from_flags(ProbeEvalConfig, args, EVAL_SHORTCUTS)
    result = evaluate_model(args.probes, cfg, json_path=args.json, samples_path=args.log_samples,
                            options=_run_options(args))
    print(json.dumps(result.summary()))
    return 0


def cmd_weights(args) -> int:
    from .ckl.config import LearnConfig
    from .core.config import load_config
    from .tools.weights import token_weights

    if not (args.html or args.plain or args.jsonl or args.npz):
        raise TaalmError("say where the weights go: --html OUT.html, --jsonl OUT.jsonl, --npz OUT.npz and/or --plain")
    cfg = load_config(LearnConfig, args.config, _overrides(args))
    result = token_weights(args.docs, cfg, html=args.html, jsonl=args.jsonl, npz=args.npz, inputs=[args.config],
                           options=_run_options(args))
    if args.plain:
        for text in result.plain():
            print(text)
    return 0


def cmd_cache(args) -> int:
    from .models.loading import cache_entries, clear_cache, model_cache_dir

    root = model_cache_dir()
    if root is None:
        print("the model cache is off (TAALM_MODEL_CACHE=0)")
        return 0
    entries = clear_cache() if args.clear else cache_entries()
    for e in entries:
        print(f"{'deleted ' if args.clear else ''}{printable(e['path'])}  {e['bytes'] / 2**20:,.0f} MiB  ({e['state']})")
    total = sum(e["bytes"] for e in entries)
    print(f"{printable(str(root))}: {len(entries)} folder(s), {total / 2**20:,.0f} MiB{' freed' if args.clear else ''}")
    return 0


def cmd_demo(args) -> int:
    from .demo import run_demo

    run_demo(args.out, recipe=args.config, overrides=args.overrides, options=_run_options(args))
    return 0


#: ``taalm data pool`` / ``data tailor`` flags: shortcuts for their configs' keys
POOL_SHORTCUTS = {"model": "model", "device": "device", "dtype": "dtype", "exclude": "exclude",
                  "relations": "relations", "val": "n_val", "cap": "per_relation_cap", "seed": "seed",
                  "batch_size": "batch_size", "invent": "invent"}
TAILOR_SHORTCUTS = {"model": "model", "device": "device", "dtype": "dtype", "batch_size": "batch_size",
                    "to_learn_rule": "to_learn_rule"}


def cmd_data(args) -> int:
    if getattr(args, "data_command", None) not in ("tailor", "pool"):
        build_parser().parse_args(["data", "--help"])  # prints the data actions, exits 0
        return 0
    if args.data_command == "pool":
        from .tools import pool

        paths = [t for t in args.trex if "=" not in t]  # key=value items are overrides
        if not paths:
            raise TaalmError("data pool: name the T-REx folder or files before any key=value override")
        trex = paths[0] if len(paths) == 1 else paths
        cfg = _config_from_flags(pool.PoolConfig, args, POOL_SHORTCUTS, [t for t in args.trex if "=" in t])
        print(pool.format_counts(pool.build_pool(trex, args.out, cfg, options=_run_options(args))))
    else:
        from .tools import tailor

        cfg = _config_from_flags(tailor.TailorConfig, args, TAILOR_SHORTCUTS)
        print(tailor.format_counts(tailor.tailor(args.data, args.out, cfg, options=_run_options(args))))
    print(f"output folder: {printable(args.out)}")
    return 0


def _read_val_splits(paths: list[str], task_field: str, limit: int):
    """The --val files: None, one list of pairs, or named splits (file stems) for several."""
    from .data import read_pairs

    if not paths:
        return None
    if len(paths) == 1:
        return read_pairs(paths[0], task_field, limit)
    names = [Path(p).stem for p in paths]
    if len(set(names)) != len(names):
        raise TaalmError(f"--val files need distinct file names (they name the splits): {', '.join(paths)}")
    return {n: read_pairs(p, task_field, limit) for n, p in zip(names, paths)}


def cmd_train_attention(args) -> int:
    from .core.config import load_config
    from .meta.config import MetaTrainConfig
    from .data import read_pairs

    out = Path(args.out) if args.out else Path("runs") / time.strftime("phi-%Y%m%d-%H%M%S")
    recipe = args.config
    if args.resume and recipe is None and (out / "config.yaml").is_file():
        recipe = out / "config.yaml"
    extra = list(args.overrides or [])
    if args.base:
        extra = [f"model.name={args.base}", f"phi.base={args.base}"] + extra
    if args.engine:
        extra.append(f"engine={args.engine}")
    cfg = load_config(MetaTrainConfig, recipe, extra)  # every range rule checked here
    pairs = read_pairs(args.pairs, cfg.task_field, args.limit)
    if args.val_limit and not args.val:
        raise TaalmError("--val-limit needs --val FILE")
    val = _read_val_splits(args.val, cfg.task_field, args.val_limit)
    if args.supervised:
        from .meta.supervised import supervised_start as run  # refuses --resume itself
        what = "supervised start of φ"
    else:
        from .meta.training import train_attention as run
        what = f"meta-training φ ({cfg.engine})"

    print(f"{what} on {len(pairs)} pairs -> {out}", file=sys.stderr)
    res = run(pairs, val, cfg, out, options=_run_options(args))
    if res.val:
        print(f"{'update':>6}  {'val accuracy':>12}  {'val NLL':>8}")
        for r in res.val:
            print(f"{r['update']:>6}  {r['accuracy']:>12.3f}  {r['nll']:>8.3f}")
    best = "" if args.supervised else f"  (best: {out / 'best'})"
    print(f"φ: {out / 'phi'}{best}; wall time {res.seconds:.0f} s")
    return 0


def cmd_bench(args) -> int:
    from .bench.lama_ckl import lama_ckl_files
    from .bench.registry import get_benchmark

    if args.benchmark == "stream":
        return _bench_stream(args)
    runner = get_benchmark(args.benchmark)
    if args.data and (args.to_learn or args.nf):
        raise TaalmError("give either --data DIR or --to-learn FILE --nf FILE, not both")
    if args.data:
        to_learn, nf = lama_ckl_files(args.data, args.probe_format)
    elif args.to_learn and args.nf:
        to_learn, nf = args.to_learn, args.nf
    else:
        raise TaalmError("say where the data is: --data DIR (from `taalm data tailor`) or "
                         "--to-learn FILE --nf FILE")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    fmt = [f"data.probe_field=task_{args.probe_format}"]  # before the user's overrides
    res = runner((to_learn, nf), methods, args.size, args.out, fmt + list(args.overrides or []),
                 options=_run_options(args))
    print(res["table"])
    print(f"benchmark folder: {printable(args.out)}")
    return 0


def _bench_stream(args) -> int:
    """``taalm bench stream NAME``: the first positional after ``stream`` names the stream."""
    from .bench.stream import STREAM_BENCHMARKS, run_stream, stream_flags

    rest = list(args.overrides or [])
    if not rest or "=" in rest[0]:
        raise TaalmError(f"name the stream: taalm bench stream NAME (available: {', '.join(STREAM_BENCHMARKS.names())})")
    name, overrides = rest[0], rest[1:]
    if args.probe_format != "descriptive":
        overrides = [f"data.probe_field=task_{args.probe_format}"] + overrides
    declared = stream_flags(name)  # the flags the stream declares on its options (stream.*)
    given = {"--data": args.data, "--to-learn": args.to_learn, "--nf": args.nf, **getattr(args, "stream_flags", {})}
    pre = []
    for flag, value in given.items():
        if value is None:
            continue
        if flag not in declared:
            raise TaalmError(f"stream {name} does not take {flag} (its flags: {' '.join(declared) or 'none'}; "
                             f"its options: taalm config --for bench-stream)")
        pre.append(f"{declared[flag]}={value}")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    res = run_stream(name, methods, args.out, args.size, pre + overrides, options=_run_options(args))
    print(res["table"])
    print(f"benchmark folder: {printable(args.out)}")
    return 0


def _stream_flag_values(extra: list[str]) -> tuple[dict[str, str], list[str]]:
    """``--flag VALUE`` / ``--flag=VALUE`` pairs among the arguments argparse did not know (a
    stream's own flags, checked against the stream's options by :func:`_bench_stream`), and the rest."""
    flags, rest, i = {}, [], 0
    while i < len(extra):
        a = extra[i]
        if a.startswith("--") and len(a) > 2:
            key, eq, value = a.partition("=")
            if eq:
                flags[key] = value
            elif i + 1 < len(extra) and not extra[i + 1].startswith("-"):
                flags[key], i = extra[i + 1], i + 1
            else:
                rest.append(a)
        else:
            rest.append(a)
        i += 1
    return flags, rest


def cmd_methods(args) -> int:
    from .ckl.method import PART_KINDS
    from .ckl.weighting import WEIGHTINGS

    kinds = [("token weighting (method.name)", WEIGHTINGS)] + [
        (f"{kind} ({section}.{key})", reg) for kind, (reg, (section, key)) in PART_KINDS.items()]
    for title, reg in kinds:
        print(title)
        for name, doc in reg.describe().items():
            print(f"  {name:<10} {doc}")
    print("compose them with +, weighting first: --method taalm+full")
    return 0


def cmd_report(args) -> int:
    from .reporting.report import write_report

    out = Path(args.out) if args.out else Path("runs") / time.strftime("report-%Y%m%d-%H%M%S")
    print(printable(write_report(args.dirs, out)))
    print(f"report: {out}", file=sys.stderr)
    return 0


def cmd_recipes(args) -> int:
    from .recipes import copy_recipe, recipe_summary, shipped_recipes

    if args.action == "cp":
        if not args.name:
            raise TaalmError("usage: taalm recipes cp NAME [DEST]")
        print(copy_recipe(args.name, args.dest or "."))
        return 0
    for name, path in shipped_recipes().items():
        print(f"  {name:<26} {recipe_summary(path)}")
    print("use one: --config NAME; copy one to edit: taalm recipes cp NAME DEST")
    return 0


#: ``taalm config --for NAME``: every command's typed configuration (module:class, imported lazily)
CONFIG_SCHEMAS = {"learn": "taalm.ckl.config:LearnConfig", "train-attention": "taalm.meta.config:MetaTrainConfig",
                  "eval": "taalm.core.config:ProbeEvalConfig", "bench": "taalm.bench.lama_ckl.config:LamaCklConfig",
                  "bench-stream": "taalm.bench.stream:AllStreamsConfig",
                  "data-tailor": "taalm.tools.tailor:TailorConfig", "data-pool": "taalm.tools.pool:PoolConfig"}


def cmd_config(args) -> int:
    import importlib

    from .core.config import config_with_help, load_config

    module, _, name = CONFIG_SCHEMAS[getattr(args, "schema", "learn")].partition(":")
    cls = getattr(importlib.import_module(module), name)
    print(config_with_help(load_config(cls, args.config, _overrides(args))))
    return 0


def _sigterm_interrupts() -> None:
    """SIGTERM (a scheduler's stop, ``kill``) is handled as Ctrl-C: the run is marked
    "interrupted" and stays resumable."""
    import signal
    import threading

    def handler(signum, frame):
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)


COMMANDS = {"learn": cmd_learn, "eval": cmd_eval, "weights": cmd_weights, "demo": cmd_demo,
            "data": cmd_data, "train-attention": cmd_train_attention, "bench": cmd_bench,
            "methods": cmd_methods, "report": cmd_report, "recipes": cmd_recipes, "config": cmd_config,
            "cache": cmd_cache}


def _check_recipe_is_not_replaced(args) -> None:
    """``--config`` names a recipe inside the folder that ``--overwrite`` would replace: refuse."""
    recipe, out = getattr(args, "config", None), getattr(args, "out", None)
    if recipe and out and getattr(args, "overwrite", False):
        try:
            Path(recipe).resolve().relative_to(Path(out).resolve())
        except ValueError:
            return
        raise TaalmError(f"--config {recipe}: lies in --out {out}, which --overwrite would replace; "
                         f"move the recipe out of it first")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "bench" and args.benchmark == "stream":  # flags a stream declares (--diffsets DIR)
        args.stream_flags, extra = _stream_flag_values(extra)
    # overrides may come after options (argparse stops filling a positional list at the first one)
    unknown = [a for a in extra if a.startswith("-") or "=" not in a]
    if unknown or (extra and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(unknown or extra)}")
    if extra:
        args.overrides = list(args.overrides or []) + extra
    if not args.command:
        parser.print_help()
        return 0
    _sigterm_interrupts()
    from .core.distributed import launched_as_main

    if not launched_as_main():  # torchrun: ranks other than 0 stay quiet (errors still show)
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the life of this process
    try:
        _check_recipe_is_not_replaced(args)
        code = COMMANDS[args.command](args)
        if "torch.distributed" in sys.modules:  # under torchrun: leave the process group together
            from .core import distributed

            distributed.shutdown()
        return code
    except TaalmError as e:
        print(f"taalm {args.command}: error: {printable(str(e), one_line=True)}", file=sys.stderr)
        return getattr(e, "exit_code", 2)
    except BrokenPipeError:  # the reader went away (`taalm methods | head`): nothing more to say
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - so the interpreter's final flush is quiet
        return 0
    except OSError as e:  # a full disk, a read-only folder, a file that vanished
        where = f"{printable(e.filename, one_line=True)}: " if getattr(e, "filename", None) else ""
        print(f"taalm {args.command}: error: {where}{e.strerror or e} (nothing of a started run is lost: "
              f"free space or fix the folder, then resume)", file=sys.stderr)
        return 2
    except RecursionError:
        print(f"taalm {args.command}: error: an input is nested too deeply (JSON or YAML thousands of levels "
              f"deep); taalm reads flat records", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"taalm {args.command}: error: out of memory", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        hint = " (continue with --resume)" if args.command in ("learn", "train-attention") else ""
        if args.command == "bench":
            hint = " (run the same command again to resume)"
        print(f"taalm {args.command}: interrupted{hint}", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
