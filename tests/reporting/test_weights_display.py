"""Weights a person can read: a document's first token has no loss in a causal LM (nothing
predicts it), so every display, export and statistic marks its weight "n/a" instead of showing
it, and leaves it out of scales and means (``taalm.reporting.weights_data.has_loss``)."""

import json
import math
import re

import numpy as np
import pytest
import torch

from taalm.reporting.heatmaps import heatmap_html, render_plain
from taalm.reporting.weights_data import (has_loss, loss_weights, no_loss_positions, shown_weights,
                                          weight_rows, write_weights)

TEXT = "Ilvara is the capital"
OFFSETS = [(0, 6), (6, 9), (9, 13), (13, 21)]  # "Ilvara", " is", " the", " capital"


def test_the_first_position_has_no_loss_whatever_the_container():
    assert has_loss([0.9, 0.1, 0.2]) == [False, True, True] and has_loss([]) == []
    assert has_loss(torch.tensor([0.5, 0.5])) == has_loss(np.array([0.5, 0.5])) == [False, True]
    assert no_loss_positions(torch.ones(4)) == [0] and no_loss_positions([]) == []
    assert shown_weights(torch.tensor([0.97, 0.25, 0.5])) == [None, 0.25, 0.5]
    assert loss_weights([0.97, 0.25, 0.5]) == [0.25, 0.5]


def test_heatmap_shows_na_for_the_first_token_and_ignores_its_weight():
    """Position 0 is a grey "n/a" span whose tooltip says why; nothing else on the page (colours,
    mean) changes when its weight goes from 0.99 to 0.01."""
    high = heatmap_html([(TEXT, OFFSETS, [0.99, 0.2, 0.6, 1.0], "doc")])
    low = heatmap_html([(TEXT, OFFSETS, [0.01, 0.2, 0.6, 1.0], "doc")])
    assert high == low
    spans = re.findall(r"<span class='t[^']*' title='([^']*)' style='background:([^']*)'>([^<]*)</span>", high)
    assert [s[2] for s in spans] == ["Ilvara", " is", " the", " capital"]
    title0, color0, _ = spans[0]
    assert title0.startswith("n/a") and "no loss" in title0 and not color0.startswith("rgb(255")
    assert [s[0] for s in spans[1:]] == ["0.2000", "0.6000", "1.0000"]
    assert "0.9900" not in high and "0.0100" not in low
    assert "mean weight 0.600 over 3 of 4 tokens (those with a loss)" in high  # (0.2 + 0.6 + 1.0) / 3


def test_plain_rendering_shows_na_for_the_first_token():
    lines = render_plain(TEXT, OFFSETS, [0.99, 0.2, 0.6, 1.0], "doc").splitlines()
    assert lines[1].split()[:2] == ["0", "n/a"] and "no loss" in lines[1] and "0.990" not in lines[1]
    assert lines[2].split()[:2] == ["1", "0.200"]


class _Doc:
    def __init__(self, id, text):
        self.id, self.source, self.text = id, f"docs.jsonl:{id}", text


class _Enc:
    def __init__(self, ids, offsets):
        self.input_ids, self.offsets = ids, offsets


def test_exports_mark_the_first_token_null_and_nan(tokenizer, tmp_path):
    """JSONL: null at position 0 and ``no_loss: [0]``; npz (no pickle): NaN there and ``has_loss``
    False at each document's start."""
    docs, pairs = [], []
    for i, text in enumerate(["Ilvara is the capital", "Orvish ."]):
        enc = tokenizer(text, return_offsets_mapping=True)
        ids = enc["input_ids"]
        docs.append(_Doc(f"d{i}", text))
        pairs.append((_Enc(ids, enc["offset_mapping"]), torch.linspace(0.97, 0.1, len(ids))))
    rows = weight_rows(docs, pairs, tokenizer, "taalm", "tiny")
    write_weights(tmp_path / "w.jsonl", rows)
    write_weights(tmp_path / "w.npz", rows)
    got = [json.loads(x) for x in (tmp_path / "w.jsonl").read_text().splitlines()]
    assert '"weights": [null, ' in (tmp_path / "w.jsonl").read_text()
    for r, (_, w) in zip(got, pairs):
        assert r["weights"][0] is None and r["no_loss"] == [0]
        assert r["weights"][1:] == pytest.approx(w[1:].tolist())
    z = np.load(tmp_path / "w.npz", allow_pickle=False)
    starts = z["doc_start"][:-1]
    assert z["weights"].dtype == np.float32 and z["has_loss"].dtype == np.bool_
    assert np.isnan(z["weights"][starts]).all() and (~z["has_loss"]).nonzero()[0].tolist() == starts.tolist()
    assert np.isfinite(z["weights"][z["has_loss"]]).all()
    assert z["weights"][1:int(z["doc_start"][1])].tolist() == pytest.approx(pairs[0][1][1:].tolist())


def test_weight_plot_leaves_the_first_token_out_of_bars_and_scales(tmp_path, monkeypatch):
    """No bar or tick at position 0, a hatched "n/a" there instead, and the log axis floor comes
    from the other tokens: a weight of 1e-5 at position 0 does not stretch it."""
    from taalm.reporting import plots

    seen = []
    monkeypatch.setattr(plots, "save_png", lambda fig, path, dpi=110: seen.append(fig))
    toks = ["Ilvara", " is", " the", " capital"]
    for w0 in (1e-5, 0.97):
        plots.plot_weights_before_after([(toks, [w0, 0.5, 0.5, 0.5], [w0, 0.02, 0.3, 0.9], [0])], tmp_path / "w.png")
    for fig in seen:
        ax = fig.axes[0]
        bars = ax.containers[0]
        assert [round(b.get_x() + b.get_width() / 2) for b in bars] == [1, 2, 3]
        assert [b.get_height() for b in bars] == pytest.approx([0.02, 0.3, 0.9])
        assert sorted(ax.collections[0].get_offsets()[:, 0].tolist()) == [1, 2, 3]  # "before" ticks
        assert ax.get_ylim()[0] == pytest.approx(0.8 * 0.02)
        assert "n/a" in [t.get_text() for t in ax.texts]


def test_answer_weight_statistics_skip_the_first_token():
    """benchmarks/phi_answer_weight.py: means, shares and the top token over tokens with a loss."""
    from conftest import load_benchmark

    bench = load_benchmark("phi_answer_weight")
    wp = torch.tensor([0.97, 0.1, 0.3, 0.6])  # the 0.97 at position 0 is unused by training
    on = torch.tensor([False, False, False, True])
    stats = bench.answer_weight_stats([(wp, on)])
    assert stats["n_other_tokens"] == 2 and stats["n_answer_tokens"] == 1
    assert stats["mean_weight_other"] == pytest.approx(0.2)
    assert stats["answer_share_of_weight"] == pytest.approx(0.6)
    assert stats["top_token_is_answer"] == 1.0  # 0.97 at position 0 would have said 0
    assert bench.share_by_relation(["P1"], [(wp, on)]) == {"P1": {"n": 1, "answer_share_of_weight": 0.6}}
    assert not math.isnan(bench.answer_weight_stats([(torch.tensor([0.9]), torch.tensor([True]))])
                          ["mean_weight_answer"])


def test_weights_command_plain_prints_na_for_the_first_token(model_dir, docs_file, capsys):
    from taalm.cli import main

    assert main(["weights", str(docs_file), "--method", "oracle", "--plain", f"model.name={model_dir}",
                 "model.device=cpu"]) == 0
    out = capsys.readouterr().out.splitlines()
    firsts = [out[i + 1] for i, line in enumerate(out) if line.startswith("== document")]
    assert len(firsts) == 3 and all(f.split()[:2] == ["0", "n/a"] for f in firsts)
