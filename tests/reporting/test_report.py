"""`taalm report`: tables and plots re-rendered from saved runs, several side by side."""

import json


from taalm.cli import main


def _bench_folder(path, methods):
    path.mkdir()
    (path / "bench.json").write_text(json.dumps({"benchmark": "lama-ckl", "size": "smoke"}))
    for name, (tops, nfs) in methods.items():
        (path / name).mkdir()
        curve = [{"epoch": e, "to_learn_accuracy": t, "nf_accuracy": f} for e, (t, f) in enumerate(zip(tops, nfs))]
        top = max(tops)
        e = tops.index(top)
        (path / name / "result.json").write_text(json.dumps({
            "curve": curve, "wall_s": 120.0, "inputs": {"to_learn": {"n": 100}, "not_to_forget": {"n": 50}},
            "summary": {"top_acc": top, "epoch": e, "nf_acc": nfs[e], "total": top + nfs[e]}}))
    return path


def test_report_compares_learn_runs_and_benches_with_standard_errors(tmp_path, model_dir, docs_file, probes_file,
                                                                      capsys):
    common = [str(docs_file), "--probes", str(probes_file), "--quiet", f"model.name={model_dir}", "model.device=cpu",
              "train.epochs=2", "train.lr=5e-3"]
    assert main(["learn", *common, "--method", "oracle", "--out", str(tmp_path / "a"), "eval.every_epoch=true"]) == 0
    assert main(["learn", *common, "--out", str(tmp_path / "b"), "--keep", str(probes_file)]) == 0  # before / after
    bench = _bench_folder(tmp_path / "bench", {"finetune": ([0.0, 0.1, 0.2], [1.0, 0.8, 0.6]),
                                              "taalm": ([0.0, 0.3, 0.25], [1.0, 0.9, 0.85])})
    capsys.readouterr()
    out = tmp_path / "report"
    assert main(["report", str(tmp_path / "a"), str(tmp_path / "b"), str(bench), "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    assert capsys.readouterr().out.strip() == md.strip()
    assert "| a (oracle) | 2 |" in md and "| b (finetune) | 2 |" in md
    last = json.loads((tmp_path / "b" / "summary.json").read_text())["history"][-1]  # kept: measured on --keep
    kept = last["kept"]["accuracy"]
    assert f"| {last['exact']:.3f} | {kept:.3f} | {last['accuracy'] + kept:.3f} |" in md.split("| b (finetune)")[1]
    # Top Acc 0.300 over 100 probes: SE = sqrt(0.3 * 0.7 / 100) = 0.046; NF 0.900 over 50: 0.042
    assert "| bench | taalm | 0.300 ± 0.046 | 1 | 0.900 ± 0.042 | 1.200 ± 0.062 | 2.0 min |" in md
    for png in ("learn.png", "bench.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["report", str(tmp_path / "a"), "--out", str(out)]) == 0  # its own folder: rewritten
    assert main(["report", str(tmp_path / "a"), "--out", str(tmp_path / "a")]) == 2  # a run folder: refused
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "r2")]) == 2  # not a run: named
    assert "not a finished taalm learn run" in capsys.readouterr().err and not (tmp_path / "r2").exists()


def test_before_after_history_has_no_fractional_epoch_ticks(tmp_path, monkeypatch):
    """A run evaluated only before and after: two labelled ticks, not 0, 0.5, 1, 1.5, 2."""
    from taalm.reporting import plots

    seen = {}
    orig = plots.save_png

    def grab(fig, path, dpi=110):
        seen["ticks"] = [t.get_text() for t in fig.axes[0].get_xticklabels()]
        orig(fig, path, dpi)

    monkeypatch.setattr(plots, "save_png", grab)
    plots.plot_history({"b": [{"epoch": 0, "accuracy": 0.1, "nll": 3.0, "n": 20},
                              {"epoch": 2, "accuracy": 0.4, "nll": 2.0, "n": 20}]}, tmp_path / "h.png")
    assert seen["ticks"] == ["before (0)", "after (2)"]


def test_identical_curves_stay_distinguishable(tmp_path):
    """Two runs with identical curves: each line has its own marker, line style and band hatch,
    so neither hides the other (issue 28.5)."""
    import matplotlib

    matplotlib.use("Agg")
    from taalm.reporting import plots

    styles = [plots.series_style(i) for i in range(8)]
    assert len({(s["marker"], s["ls"]) for s in styles}) == 8 and len({s["hatch"] for s in styles}) == 8
    hist = [{"epoch": 0, "accuracy": 0.1, "nll": 3.0, "n": 50}, {"epoch": 1, "accuracy": 0.4, "nll": 2.0, "n": 50}]
    drawn = []
    real = plots.save_png
    plots.save_png = lambda fig, path, dpi=100: drawn.append(fig)
    try:
        plots.plot_history({"a": hist, "b": hist}, tmp_path / "h.png")
    finally:
        plots.save_png = real
    lines = [ln for ln in drawn[0].axes[0].get_lines() if ln.get_label() in ("a", "b")]
    assert len(lines) == 2 and lines[0].get_marker() != lines[1].get_marker()
    assert lines[0].get_linestyle() != lines[1].get_linestyle()


def test_report_folder_goes_through_the_run_life_cycle(tmp_path, capsys):
    """``taalm report``'s folder follows the tools' rules (core.run.Run): run.json says kind
    report; a rerun rewrites it in place; another command's folder, a foreign folder, or one
    that holds a source are refused in one line, with nothing written."""
    from taalm.cli import main

    bench = _bench_folder(tmp_path / "bench", {"finetune": ([0.1, 0.3], [0.9, 0.8])})
    out = tmp_path / "rep"
    assert main(["report", str(bench), "--out", str(out)]) == 0
    assert json.loads((out / "run.json").read_text())["kind"] == "report"
    assert main(["report", str(bench), "--out", str(out)]) == 0  # in place
    assert json.loads((out / "run.json").read_text())["status"] == "complete"
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    for bad, says in ((foreign, "not a folder taalm made"), (bench, "holds an input")):
        capsys.readouterr()
        assert main(["report", str(bench), "--out", str(bad)]) == 2
        assert says in capsys.readouterr().err
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
