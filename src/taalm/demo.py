"""The demo (the README's main job): a real pretrained LM learns facts it cannot know.

The documents (``demo_data/documents.jsonl``) describe invented places, people and things that we
wrote ourselves, so SmolLM2 certainly does not know them beforehand; each comes with its answer
and a probe sentence (``demo_data/probes.jsonl``) that states the fact in other words.

The demo loads the embedded SmolLM2-135M once, then learns the documents with each method of
``DEMO_METHODS`` from the same starting θ0 (a fresh LoRA adapter each time), evaluating the probes
before training and after every epoch. It writes, under the output folder:

    <method>/            a full run folder per method (config, metrics, adapter, ...)
    accuracy.png         probe accuracy and answer NLL per epoch, one line per method
    weights.html         heatmap of the token weights each method gives the documents
    summary.json         before/after numbers per method, wall time
"""

from __future__ import annotations

import copy
import json
import sys
import time
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:
    from .core.run import RunOptions


#: the methods the demo compares; the first is plain fine-tuning (the baseline). ``taalm`` uses the
#: shipped Train-Attention φ (meta-trained on LAMA-ckl; the demo's invented facts are new to it).
#: ``oracle`` puts all the weight on the answer tokens: it needs the answers (our demo documents
#: carry them), so it is an upper reference rather than a deployable method.
DEMO_METHODS = ("finetune", "taalm", "oracle")


#: the demo's settings: the shipped recipe ``learn_keep`` (chosen on our invented-fact validation
#: set, never on the demo's documents: the most learned while keeping ≥ 0.85 of what the base model
#: knew; see the recipe's header), the same for every method; ``recipe=`` replaces it
DEMO_RECIPE = "learn_keep"
DEMO_OVERRIDES: list[str] = []


def run_demo(out_dir: str | Path = "runs/demo", methods: Iterable[str] = DEMO_METHODS,
             recipe: str | Path | None = None, overrides: Iterable[str] = (),
             options: RunOptions | None = None) -> dict:
    """Run the demo; returns the summary dict (also written to ``out_dir/summary.json``).
    ``out_dir``: a fresh folder, or a demo folder taalm made (rerun in place;
    ``options=RunOptions(overwrite=True)``: emptied first)."""
    from .core.config import load_config, to_dict
    from .ckl.config import LearnConfig
    from .core.run import Run, RunOptions, options_for

    opts = options_for(options or RunOptions(log=lambda m: print(m, file=sys.stderr)), "the demo",
                       allow=("overwrite",))
    methods = list(methods)
    cfgs = {m: load_config(LearnConfig, recipe or DEMO_RECIPE, [*DEMO_OVERRIDES, f"method.name={m}", *overrides])
            for m in methods}  # every configuration is checked before anything is written
    owned = (*cfgs, *(f".{m}.taalm-lock" for m in cfgs), "accuracy.png", "weights.html", "summary.json")
    with Run(out_dir, overwrite=opts.overwrite, config={m: to_dict(c) for m, c in cfgs.items()},
             device=next(iter(cfgs.values())).model.device, log=opts.log, progress=opts.progress, folder_rule="tool",
             kind="demo", owned=owned, legacy=is_demo_folder) as run:
        return _run_demo(run, cfgs)


def _run_demo(run, cfgs: dict) -> dict:
    """:func:`run_demo` inside its run life cycle (checked, locked)."""
    from .data import read_documents, read_probes
    from .ckl.learner import LearnOptions, learn
    from .models.loading import load_model
    from .reporting.tables import format_history
    from .reporting.plots import plot_history
    from .reporting.heatmaps import write_heatmap
    from .core.files import atomic_write_json, environment_info
    from .ckl.weighting import PrecomputedWeights, weights_for_documents
    from .ckl.method import get_method
    from .evaluation.keep import outcome

    log, progress, out = run.log, run.progress, run.out
    t0 = time.time()
    docs_path, probes_path = demo_files()
    docs, probes = read_documents(docs_path), read_probes(probes_path)
    first = next(iter(cfgs.values()))
    log(f"demo: {len(docs)} documents of invented facts, {len(probes)} probes, methods "
        f"{', '.join(cfgs)}; loading {first.model.name} ...")
    base, tok = load_model(first.model.name, first.model.device, first.model.dtype, first.model.attn,
                           allow_pickle=first.model.allow_pickle)
    t_load = time.time() - t0
    run.start()

    curves, results, items = {}, {}, []
    for name, cfg in cfgs.items():
        log(f"--- method '{name}' ---")
        theta0 = copy.deepcopy(base)  # every method starts from the same θ0
        method = get_method(cfg.method, cfg.train.seed)
        weighted = weights_for_documents(method, theta0, tok, docs, cfg.train.max_length, cfg.train.stride,
                                        log=log)
        for (enc, w), doc in zip(weighted, docs):
            items.append((doc.text, enc.offsets, w.tolist(), f"{name}: {doc.id}"))
        # static weights (φ's included) were just computed: train with them instead of scoring again
        ready = None if method.dynamic else PrecomputedWeights([w for _, w in weighted], label=name)
        res = learn(docs, probes, cfg, out / name, model=theta0, tokenizer=tok,
                    options=LearnOptions(overwrite=True, progress=progress, log=log, method=ready))
        curves[name] = res.history
        best = max(res.history, key=lambda r: r["accuracy"])
        results[name] = {"before": outcome(res.history[0]), "after": res.result, "best": outcome(best, res.history[0]),
                         "kept_epoch": res.kept_epoch, "train_seconds": round(res.train_seconds, 1)}
        print(format_history(res.history, f"\n{name}: probe accuracy on {len(probes)} invented facts"))
        del theta0, res

    plot_history(curves, out / "accuracy.png", title="Demo: probe accuracy")
    # interleave: for each document, the weights of every method one under the other
    n = len(docs)
    ordered = [items[k * n + i] for i in range(n) for k in range(len(cfgs))]
    write_heatmap(out / "weights.html", ordered, "Demo: token weights per method (SmolLM2-135M)")
    summary = {"model": first.model.name, "n_documents": len(docs), "n_probes": len(probes),
               "methods": results, "load_seconds": round(t_load, 1),
               "wall_seconds": round(time.time() - t0, 1), "environment": environment_info()}
    atomic_write_json(out / "summary.json", summary)

    print("\n" + format_demo_table(results))
    print(f"wrote {out}/accuracy.png, {out}/weights.html, {out}/summary.json "
          f"({summary['wall_seconds']:.0f} s)")
    return summary


def format_demo_table(results: dict) -> str:
    """The demo's result: per method, what it learned (answer-token accuracy and exact match on
    the invented facts) and what it kept (accuracy on general facts the base model answered
    before, 1.0 then), and CKL's Total = learned + kept."""
    lines = ["method      learned  exact   kept   Total   (after the last epoch; learned: answer-token accuracy)"]
    for name, r in results.items():
        a = r["after"]
        kept = f"{a['kept']:.3f}  {a['total']:.3f}" if "kept" in a else "   -      -  "
        lines.append(f"{name:<10}  {a['learned']:.3f}   {a['learned_exact']:.3f}   {kept}")
    return "\n".join(lines)


def demo_files() -> tuple[Path, Path]:
    base = resources.files("taalm") / "demo_data"
    return Path(str(base / "documents.jsonl")), Path(str(base / "probes.jsonl"))


def is_demo_folder(folder: Path) -> bool:
    """A demo folder made before the demo wrote ``run.json``: its summary."""
    try:
        return "n_documents" in json.loads((Path(folder) / "summary.json").read_text())
    except (OSError, ValueError, TypeError):
        return False
