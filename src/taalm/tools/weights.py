"""``taalm weights`` as a function: the per-token weights a method gives documents, as θ0
stands (what the first training step would see), shown or written as files.

The weights come from :func:`taalm.ckl.weighting.weights_for_documents`; rendering and the file
formats are :mod:`taalm.reporting`'s (:mod:`~taalm.reporting.heatmaps`,
:mod:`~taalm.reporting.weights_data`). Here, not in reporting (layer 4): a weighting method is
:mod:`taalm.ckl`'s (layer 5)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..core.run import RunOptions, options_for
from .outputs import check_output_file

#: the output files :func:`token_weights` writes, by keyword: the suffix each must have
OUTPUT_SUFFIXES = {"html": ".html", "jsonl": ".jsonl", "npz": ".npz"}


@dataclass
class TokenWeights:
    """Per-token weights of ``method`` on ``documents`` under ``model`` (``pairs``: one
    ``(Encoded, weights)`` per document; a document's first token has no loss)."""

    documents: list
    pairs: list
    tokenizer: object
    method: str
    model: str

    def items(self) -> list[tuple]:
        """(text, offsets, weights, label) per document: what the heatmap and plain views take."""
        return [(d.text, e.offsets, w.tolist(), f"document {d.id} ({d.source})")
                for d, (e, w) in zip(self.documents, self.pairs)]

    def plain(self) -> list[str]:
        """Each document as terminal text: one row per token with its weight and a bar."""
        from ..reporting.heatmaps import render_plain

        return [render_plain(text, offsets, w, label) for text, offsets, w, label in self.items()]

    def rows(self) -> list[dict]:
        """One JSON row per document: tokens, ids, offsets, weights (null without loss)."""
        from ..reporting.weights_data import weight_rows

        return weight_rows(self.documents, self.pairs, self.tokenizer, self.method, self.model)

    def write(self, path: str | Path) -> Path:
        """Write a heatmap (``.html``) or the weights as data (``.jsonl``, ``.npz``), by suffix."""
        from ..reporting.heatmaps import write_heatmap
        from ..reporting.weights_data import write_weights

        if str(path).endswith(".html"):
            write_heatmap(path, self.items(), f"Token weights: method '{self.method}', model '{self.model}'")
            return Path(path)
        return write_weights(path, self.rows())


def token_weights(documents, config=None, *, html: str | Path | None = None, jsonl: str | Path | None = None,
                  npz: str | Path | None = None, inputs: Iterable[str | Path | None] = (),
                  options: RunOptions | None = None) -> TokenWeights:
    """The token weights of ``config.method`` (a :class:`~taalm.ckl.config.LearnConfig`; default:
    its defaults) on ``documents`` (a documents file or a list of
    :class:`~taalm.data.Document`) with ``config.model``, and write them to the files given: a
    heatmap ``html``, data ``jsonl`` / ``npz`` (:mod:`taalm.reporting.weights_data`).

    Checked before the model loads: the config, the output files (suffix, writable folder; never
    one of the inputs: the documents, ``inputs`` such as a recipe file, the paths the config
    names), the documents and the method. Messages (the method's caveat for weights shown without
    training, the files written) go to ``options.log``.
    """
    from ..ckl.config import LearnConfig
    from ..ckl.learner import check_documents
    from ..ckl.method import get_method
    from ..core.config import check_config, to_dict
    from ..core.runfolder import check_outputs, config_paths
    from ..data import read_documents

    opts = options_for(options, "weights", allow=())
    cfg = config or LearnConfig()
    check_config(cfg)
    outputs = {"html": html, "jsonl": jsonl, "npz": npz}
    for key, path in outputs.items():
        check_output_file(path, f"--{key}", OUTPUT_SUFFIXES[key])
    from_file = isinstance(documents, (str, Path))
    check_outputs({f"--{k}": p for k, p in outputs.items()},
                  [documents if from_file else None, *inputs, *config_paths(to_dict(cfg))])
    docs = read_documents(documents, cfg.data.limit, cfg.data.text_field) if from_file else list(documents)
    method = get_method(cfg.method, cfg.train.seed)
    check_documents(docs, method)
    result = _compute(method, docs, cfg, opts.log)
    for key, path in outputs.items():
        if path:
            written = result.write(path)
            opts.log(f"heatmap: {path}" if key == "html" else f"weights: {written}")
    return result


def _compute(method, docs: list, cfg, log) -> TokenWeights:
    """Load the model and weight ``docs`` with ``method`` (checked already)."""
    from ..ckl.weighting import weights_for_documents
    from ..models.loading import load_model

    note = method.preview_note()
    if note:
        log(note)
    model, tok = load_model(cfg.model.name, cfg.model.device, cfg.model.dtype, cfg.model.attn,
                            allow_pickle=cfg.model.allow_pickle)
    pairs = weights_for_documents(method, model, tok, docs, cfg.train.max_length, cfg.train.stride,
                                  cfg.train.batch_size, log=log)
    return TokenWeights(docs, pairs, tok, method.name, cfg.model.name)


__all__ = ["OUTPUT_SUFFIXES", "TokenWeights", "token_weights"]
