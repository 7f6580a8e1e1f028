"""``taalm eval`` as a function: probe accuracy and answer NLL of a model, with or without a
LoRA adapter, optionally written to files.

Here, not in :mod:`taalm.evaluation` (layer 4, which does the scoring): an adapter is a saved θ,
and loading one is :mod:`taalm.ckl`'s (layer 5)."""

from __future__ import annotations

import math
from pathlib import Path

from ..core.errors import TaalmError
from ..core.run import RunOptions, options_for
from .outputs import check_output_file


def evaluate_model(probes: str | Path, config=None, *, json_path: str | Path | None = None,
                   samples_path: str | Path | None = None, options: RunOptions | None = None):
    """Score the probe file ``probes`` with ``config.model`` plus ``config.adapter`` (a
    :class:`~taalm.core.config.ProbeEvalConfig`; default: the default model, no adapter) and
    return the :class:`~taalm.evaluation.probes.EvalResult`.

    Everything is checked before the model loads: the config, the output files (never an input),
    the probes, the adapter folder. ``json_path``: the per-probe results with the model, adapter,
    probe file and resolved config; ``samples_path``: per-probe logs (prompt, answer, predicted
    tokens, accuracy, NLL) as JSON Lines. A non-finite answer NLL (NaN/Inf logits: damaged
    weights) is an error and nothing is written. ``options.progress``: a progress bar.
    """
    from ..core.config import ProbeEvalConfig, check_config
    from ..core.runfolder import check_outputs
    from ..data import read_probes

    opts = options_for(options, "eval", allow=())
    cfg = config or ProbeEvalConfig()
    check_config(cfg)
    mc = cfg.model
    check_output_file(json_path, "--json")
    check_output_file(samples_path, "--log-samples")
    check_outputs({"--json": json_path, "--log-samples": samples_path},
                  [probes, cfg.adapter or None, mc.name if Path(mc.name).exists() else None])
    probe_list = read_probes(probes, cfg.data.probe_field, cfg.data.limit)
    result, encoded, tok = _score(cfg, probe_list, opts.progress)
    _write(result, cfg, probes, probe_list, encoded, tok, json_path, samples_path)
    return result


def _score(cfg, probes, progress: bool):
    """Load the model (and adapter) and score ``probes``: (result, encoded probes, tokenizer)."""
    from ..ckl.theta import adapter_folder, load_adapter
    from ..evaluation.probes import encode_probes, evaluate_probes
    from ..models.loading import load_model

    mc = cfg.model
    adapter = adapter_folder(cfg.adapter) if cfg.adapter else None  # checked before the model loads
    model, tok = load_model(mc.name, mc.device, mc.dtype, mc.attn, trust_remote_code=mc.trust_remote_code,
                            allow_pickle=mc.allow_pickle)
    if adapter is not None:
        model = load_adapter(model, adapter)
    encoded = encode_probes(tok, probes)
    result = evaluate_probes(model, tok, probes, cfg.eval.batch_size, cfg.eval.padding_side, encoded,
                             progress="eval" if progress else None)
    nll = result.summary()["nll"]
    if not math.isfinite(nll):
        raise TaalmError(f"the answers score a non-finite NLL ({nll}): the model"
                         f"{' or the adapter ' + str(cfg.adapter) if cfg.adapter else ''} gives NaN/Inf "
                         f"logits (damaged weights?); no accuracy is reported")
    return result, encoded, tok


def _write(result, cfg, probes, probe_list, encoded, tok, json_path, samples_path) -> None:
    from ..core.config import to_dict
    from ..core.files import atomic_write_json, write_jsonl
    from ..evaluation.probes import sample_rows

    if json_path:
        atomic_write_json(json_path, {"model": cfg.model.name, "adapter": cfg.adapter or None,
                                      "probes": str(probes), "config": to_dict(cfg), **result.to_dict()})
    if samples_path:
        write_jsonl(samples_path, sample_rows(probe_list, encoded, result.per_probe, tok))


__all__ = ["evaluate_model"]
