"""The LAMA-ckl benchmark (taalm.bench.lama_ckl, `taalm bench`) on tiny models and tiny unit files; and the
answer-positions-only evaluation it relies on after every epoch."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

import taalm.ckl.learner
from conftest import build_tokenizer, make_gpt2, make_llama
from taalm.bench.lama_ckl import (SIZES, curve_from_history, lama_ckl_files, resolve_config, run_lama_ckl,
                                  summarize_curve)
from taalm.bench.registry import get_benchmark
from taalm.cli import main
from taalm.core.run import QUIET as RUN_QUIET
from taalm.core.errors import ConfigError, InputError, TaalmError

FACTS = [  # (subject, relation, object, evidence)
    ("Varnholt Observatory", "located in", "Kestrelford",
     "The Varnholt Observatory stands above the town of Kestrelford ."),
    ("Quellmere", "language", "Orvish", "Quellmere is a small island. The islanders speak Orvish ."),
    ("Sennet", "capital", "Ilvara", "The capital of Sennet is Ilvara, a city of stone bridges."),
    ("Zephyrine", "discoverer", "Oskar Penhallow",
     "Zephyrine was first described by the chemist Oskar Penhallow near Drummoch."),
    ("Calder Line", "colour", "purple", "The engines of the Calder Line were painted purple ."),
    ("Wales", "official language", "Welsh", "The official language of Wales is Welsh ."),
    ("France", "capital", "Paris", "Paris is the capital of France ."),
]


def unit(i, subject, relation, obj, evidence):
    return {"uuid": f"u{i}", "subject": subject, "relation_label": relation, "object": obj,
            "evidence": evidence, "task_descriptive": f"The {relation} of {subject} is {obj} .",
            "task_schematic": f"Guess the object. subject is {subject} , relation is {relation} , object is {obj}"}


def write_units(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def tailored(tmp_path):
    """A folder shaped like `taalm data tailor` output."""
    d = tmp_path / "tailored"
    d.mkdir()
    write_units(d / "to_learn.jsonl", [unit(i, *f) for i, f in enumerate(FACTS[:5])])
    nf = [unit(10 + i, *f) for i, f in enumerate(FACTS[4:])]
    write_units(d / "not_to_forget_descriptive.jsonl", nf)
    write_units(d / "not_to_forget_schematic.jsonl", nf[:2])
    return d


QUIET = dict(options=RUN_QUIET)  # run_lama_ckl(..., **QUIET)
TINY = ["theta.lora.r=4", "train.lr=5e-3"]


def count_learn_calls(monkeypatch, hook=None):
    calls = []
    orig = taalm.ckl.learner.learn

    def spy(*a, **k):
        calls.append(k["config"].method.name if "config" in k else a[2].method.name)
        if hook is not None:
            k = hook(len(calls), k)
        return orig(*a, **k)

    monkeypatch.setattr(taalm.ckl.learner, "learn", spy)
    return calls


# --------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------
def test_summary_metrics_on_a_hand_made_curve():
    curve = [{"epoch": e, "to_learn_accuracy": a, "nf_accuracy": n}
             for e, a, n in [(0, 0.0, 1.0), (1, 0.2, 0.9), (2, 0.5, 0.8), (3, 0.5, 0.6), (4, 0.4, 0.7)]]
    s = summarize_curve(list(reversed(curve)))  # order of the rows does not matter
    assert (s["top_acc"], s["epoch"], s["nf_acc"]) == (0.5, 2, 0.8)  # tie at 2 and 3: the first
    assert s["total"] == pytest.approx(1.3)
    assert s["n_points"] == 5 and s["final_to_learn_acc"] == 0.4 and s["nf_acc_before"] == 1.0
    # nothing learned: Top Acc is the before-training point, Epoch 0
    flat = [{"epoch": e, "to_learn_accuracy": 0.0, "nf_accuracy": 1.0 - e / 10} for e in range(3)]
    assert summarize_curve(flat)["epoch"] == 0 and summarize_curve(flat)["total"] == 1.0


def test_curve_from_learner_history():
    hist = [{"epoch": 0, "accuracy": 0.0, "nll": 5.0, "n": 2, "seconds": 0.5,
             "nf": {"accuracy": 1.0, "nll": 0.1, "n": 3, "seconds": 0.25}}]
    assert curve_from_history(hist) == [{"epoch": 0, "to_learn_accuracy": 0.0, "to_learn_nll": 5.0,
                                         "nf_accuracy": 1.0, "nf_nll": 0.1, "eval_seconds": 0.75}]


def test_presets_overrides_and_bad_keys():
    assert set(SIZES) == {"smoke", "cpu", "paper"}
    paper = resolve_config("paper")
    assert (paper.train.epochs, paper.train.lr, paper.train.batch_size * paper.train.grad_accum,
            paper.train.max_length, paper.bench.n_to_learn) == (30, 1e-4, 64, 512, 500)
    cfg = resolve_config("smoke", ["train.lr=3e-3", "bench.n_nf=2", "bench.subset=random"], "schematic")
    assert cfg.train.lr == 3e-3 and cfg.bench.n_nf == 2 and cfg.train.epochs == SIZES["smoke"].epochs
    assert cfg.data.probe_field == "task_schematic" and cfg.eval.every_epoch
    assert type(cfg.learn_config()).__name__ == "LearnConfig"
    for size, over, msg in [("huge", [], "unknown size 'huge'"),
                            ("smoke", ["train.learning_rate=1"], "unknown configuration key 'train.learning_rate'"),
                            ("smoke", ["bench.n_units=3"], "unknown configuration key 'bench.n_units'"),
                            ("smoke", ["bench.subset=best"], "bench.subset must be"),
                            ("smoke", ["method.name=oracle"], "--methods"),
                            ("smoke", ["data.limit=3"], "bench.n_to_learn")]:
        with pytest.raises(ConfigError, match=msg):
            resolve_config(size, over)
    with pytest.raises(ConfigError, match="unknown benchmark 'glue'"):
        get_benchmark("glue")
    assert get_benchmark("lama-ckl") is run_lama_ckl


# --------------------------------------------------------------------------------------------
# End to end (library)
# --------------------------------------------------------------------------------------------
def test_smoke_run_two_methods_writes_everything_and_skips_finished(tmp_path, tailored, tokenizer, monkeypatch):
    to_learn, nf = lama_ckl_files(tailored)
    model = make_llama(len(tokenizer))
    before = {n: p.clone() for n, p in model.state_dict().items()}
    calls = count_learn_calls(monkeypatch)
    out = tmp_path / "bench"
    res = run_lama_ckl((to_learn, nf), ["finetune", "oracle"], "smoke", out, TINY, theta0=(model, tokenizer), **QUIET)
    assert calls == ["finetune", "oracle"]
    assert all(torch.equal(before[n], p) for n, p in model.state_dict().items())  # θ0 untouched
    for name in ("bench.json", "results.md", "curves.png", "summary.json", "curves.jsonl"):
        assert (out / name).is_file(), name
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert res["n_to_learn"] == 4 and res["n_nf"] == 3  # smoke: first 4 of 5; NF file has 3
    curves = {}
    for m in ("finetune", "oracle"):
        r = json.loads((out / m / "result.json").read_text())
        assert r["method"] == m and r["config"]["method"]["name"] == m
        assert r["config"]["train"]["epochs"] == 2 and r["config"]["bench"]["n_to_learn"] == 4
        assert r["environment"]["versions"]["torch"] and "git_commit" in r["environment"]
        assert r["environment"]["device"] == "cpu" and r["wall_s"] > 0
        assert r["peak_memory"]["ru_maxrss_mib"] > 0
        assert r["inputs"]["to_learn"]["ids"] == ["u0", "u1", "u2", "u3"]
        curve = [json.loads(x) for x in (out / m / "curve.jsonl").read_text().splitlines()]
        assert curve == r["curve"] and [c["epoch"] for c in curve] == [0, 1, 2]
        for name, key in (("epoch-0002.jsonl", "to_learn_accuracy"), ("epoch-0002.nf.jsonl", "nf_accuracy")):
            per_probe = [json.loads(x)["accuracy"] for x in (out / m / "run" / "eval" / name).read_text().splitlines()]
            assert curve[2][key] == pytest.approx(sum(per_probe) / len(per_probe))  # the curve is the probes' mean
        assert r["summary"] == summarize_curve(curve) == res["methods"][m]["summary"]
        assert (out / m / "run" / "eval" / "epoch-0002.nf.jsonl").is_file()
        curves[m] = curve
    same = [{k: v for k, v in curves[m][0].items() if k != "eval_seconds"} for m in curves]
    assert same[0] == same[1]  # both methods start from the same θ0
    md = (out / "results.md").read_text()
    assert "| method | Top Acc | Epoch | NF Acc | Total | wall time |" in md and "| oracle |" in md
    assert len((out / "curves.jsonl").read_text().splitlines()) == 6

    # a rerun skips both; a new method in the same folder runs alone, a half-started one restarts
    (out / "random" / "run").mkdir(parents=True)
    (out / "random" / "run" / "metrics.jsonl").write_text('{"epoch": 0, "partial": true}\n')  # stopped before a checkpoint
    (out / "random" / "run" / "run.json").write_text(json.dumps({"schema": "taalm.run/1", "status": "running"}))
    res2 = run_lama_ckl((to_learn, nf), ["finetune", "oracle", "random"], "smoke", out, TINY, theta0=(model, tokenizer), **QUIET)
    assert calls == ["finetune", "oracle", "random"]
    assert res2["methods"]["finetune"] == res["methods"]["finetune"]
    assert "partial" not in (out / "random" / "run" / "metrics.jsonl").read_text()
    assert list(res2["methods"]) == ["finetune", "oracle", "random"]
    # other data or configuration in the same folder: refused before anything runs
    with pytest.raises(TaalmError, match="train.lr differs"):
        run_lama_ckl((to_learn, nf), ["finetune"], "smoke", out, ["theta.lora.r=4", "train.lr=1e-2"],
                     theta0=(model, tokenizer), **QUIET)
    with pytest.raises(TaalmError, match="method.random"):
        run_lama_ckl((to_learn, nf), ["random"], "smoke", out, TINY + ["method.random.mean=0.3"],
                     theta0=(model, tokenizer), **QUIET)
    assert calls == ["finetune", "oracle", "random"]


def test_interrupted_method_resumes_exactly(tmp_path, tailored, tokenizer, monkeypatch):
    to_learn, nf = lama_ckl_files(tailored)
    args = (["finetune"], "smoke", )
    over = TINY + ["train.epochs=3", "theta.lora.dropout=0.1"]
    straight = run_lama_ckl((to_learn, nf), *args, tmp_path / "a", over, theta0=(make_llama(len(tokenizer)), tokenizer), **QUIET)

    def interrupt_once(n, kwargs):
        if n == 1:
            def stop(event):
                if event["epoch"] == 2:
                    raise KeyboardInterrupt
            o = kwargs["options"]
            kwargs = {**kwargs, "options": dataclasses.replace(o, callbacks=[*o.callbacks, stop])}
        return kwargs

    calls = count_learn_calls(monkeypatch, interrupt_once)
    out = tmp_path / "b"
    with pytest.raises(KeyboardInterrupt):
        run_lama_ckl((to_learn, nf), *args, out, over, theta0=(make_llama(len(tokenizer)), tokenizer), **QUIET)
    assert not (out / "finetune" / "result.json").exists()
    partial = [json.loads(x) for x in (out / "finetune" / "curve.jsonl").read_text().splitlines()]
    assert [c["epoch"] for c in partial] == [0, 1, 2]  # progress survives the interruption
    resumed = run_lama_ckl((to_learn, nf), *args, out, over, theta0=(make_llama(len(tokenizer)), tokenizer), **QUIET)
    assert calls == ["finetune", "finetune"]
    r = json.loads((out / "finetune" / "result.json").read_text())
    assert r["sessions"] == 2 and r["epoch_seconds_this_session"] and len(r["epoch_seconds_this_session"]) == 1
    ra = json.loads((tmp_path / "a" / "finetune" / "result.json").read_text())
    strip = lambda c: [{k: v for k, v in row.items() if k != "eval_seconds"} for row in c]  # noqa: E731
    assert strip(r["curve"]) == strip(ra["curve"])  # To-Learn and NF rows, every epoch once
    assert resumed["methods"]["finetune"]["summary"] == straight["methods"]["finetune"]["summary"]


def test_bad_method_or_missing_phi_fails_before_writing(tmp_path, tailored, tokenizer, monkeypatch):
    import taalm.models.phi as ta

    monkeypatch.setattr(ta, "default_phi_checkpoint", lambda: None)  # an install without the shipped φ
    to_learn, nf = lama_ckl_files(tailored)
    for methods, msg in [(["finetune", "magic"], "unknown weighting method 'magic'"),
                         (["taalm"], "method.taalm.checkpoint"),
                         (["oracle", "oracle"], "listed twice"),
                         ([], "no methods")]:
        with pytest.raises(TaalmError, match=msg):
            run_lama_ckl((to_learn, nf), methods, "smoke", tmp_path / "out", theta0=(make_llama(len(tokenizer)), tokenizer), **QUIET)
    assert not (tmp_path / "out").exists()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    with pytest.raises(TaalmError, match="not a benchmark folder"):
        run_lama_ckl((to_learn, nf), ["finetune"], "smoke", tmp_path / "other", **QUIET)


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------
def cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_end_to_end_with_taalm(tmp_path, capsys, tailored, model_dir):
    from taalm.core.config import PhiConfig
    from taalm.models.phi import TrainAttention

    tok = build_tokenizer()
    phi = TrainAttention(make_llama(len(tok)), tok, PhiConfig(base=str(model_dir))).save_pretrained(tmp_path / "phi")
    out = tmp_path / "bench"
    common = ["bench", "lama-ckl", "--size", "smoke", "--data", tailored, "--out", out, "--quiet",
              f"model.name={model_dir}", "theta.lora.r=4"]
    code, stdout, err = cli(capsys, *common, "--methods", "finetune,taalm", f"method.taalm.checkpoint={phi}",
                            "bench.n_to_learn=3")
    assert code == 0, err
    assert "| finetune |" in stdout and "| taalm |" in stdout and "Top Acc" in stdout
    bench = json.loads((out / "bench.json").read_text())
    assert bench["inputs"]["probe_field"] == "task_descriptive" and bench["inputs"]["not_to_forget"]["n"] == 3
    r = json.loads((out / "taalm" / "result.json").read_text())
    assert r["config"]["method"]["taalm"]["checkpoint"] == str(phi)
    assert r["inputs"]["not_to_forget"]["path"].endswith("not_to_forget_descriptive.jsonl")
    # the schematic NF file goes with the schematic probes: another configuration, another folder
    code, _, err = cli(capsys, *common, "--methods", "finetune", "--probe-format", "schematic",
                       f"method.taalm.checkpoint={phi}", "bench.n_to_learn=3")
    assert code == 2 and "data.probe_field differs" in err and err.count("\n") == 1
    code, stdout, err = cli(capsys, *common[:6], "--out", tmp_path / "s", "--quiet", f"model.name={model_dir}",
                            "--methods", "oracle", "--probe-format", "schematic", "train.epochs=1")
    assert code == 0, err
    r = json.loads((tmp_path / "s" / "oracle" / "result.json").read_text())
    assert r["inputs"]["not_to_forget"]["path"].endswith("not_to_forget_schematic.jsonl")
    assert r["inputs"]["not_to_forget"]["n"] == 2 and [c["epoch"] for c in r["curve"]] == [0, 1]


@pytest.mark.parametrize("argv,expected", [
    (["--methods", "finetune,magic"], "unknown weighting method 'magic'"),
    (["--methods", "finetune", "--size", "huge"], "unknown size 'huge'"),
    (["--methods", "finetune", "train.learning_rate=1"], "unknown configuration key 'train.learning_rate'"),
    (["--methods", "finetune", "--to-learn", "X"], "not both"),
    (["--methods", "finetune", "--data", "NOPE"], "not a folder"),
    (["--methods", "taalm"], "method.taalm.checkpoint"),
])
def test_cli_bad_inputs_one_line_exit_2(tmp_path, capsys, tailored, argv, expected, monkeypatch):
    import taalm.models.phi as ta

    monkeypatch.setattr(ta, "default_phi_checkpoint", lambda: None)  # an install without the shipped φ
    argv = [str(tmp_path / "nope") if a == "NOPE" else a for a in argv]
    data = [] if "--data" in argv else ["--data", tailored]
    code, _, err = cli(capsys, "bench", "lama-ckl", *data, "--out", tmp_path / "out", *argv)
    assert code == 2 and expected in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


def test_cli_bad_benchmark_and_bad_unit_file(tmp_path, capsys, tailored):
    code, _, err = cli(capsys, "bench", "glue", "--methods", "finetune", "--data", tailored, "--out", tmp_path / "o")
    assert code == 2 and "unknown benchmark 'glue'" in err and err.count("\n") == 1
    bad = tmp_path / "tl.jsonl"
    bad.write_text(json.dumps(unit(0, *FACTS[0])) + "\n" + json.dumps({"uuid": "x", "evidence": "e"}) + "\n")
    code, _, err = cli(capsys, "bench", "lama-ckl", "--methods", "finetune", "--to-learn", bad,
                       "--nf", tailored / "not_to_forget_descriptive.jsonl", "--out", tmp_path / "o")
    assert code == 2 and "tl.jsonl, line 2" in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------------------------
# The learner's extra probe sets; evaluation at the answer positions only
# --------------------------------------------------------------------------------------------
def test_learner_rows_unchanged_without_extra_probes(tokenizer, tailored):
    from taalm.core.config import load_config
    from taalm.ckl.config import LearnConfig
    from taalm.data import read_documents, read_probes

    f = tailored / "to_learn.jsonl"
    cfg = load_config(LearnConfig, None, ["train.epochs=1", "theta.lora.r=4"])
    res = taalm.ckl.learner.learn(read_documents(f), read_probes(f), cfg, model=make_llama(len(tokenizer)),
                                  tokenizer=tokenizer, options=RUN_QUIET)
    assert [set(r) for r in res.history] == [{"epoch", "accuracy", "exact", "nll", "n", "seconds"}] * 2
    with pytest.raises(TaalmError, match="extra probe set 'accuracy'"):
        taalm.ckl.learner.learn(read_documents(f), None, cfg, model=make_llama(len(tokenizer)), tokenizer=tokenizer,
                            extra_probes={"accuracy": read_probes(f)}, options=RUN_QUIET)


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_answer_positions_only_gives_identical_scores(arch, tokenizer, tailored, monkeypatch):
    import taalm.evaluation.probes as ev
    from taalm.ckl.config import ThetaConfig
    from taalm.data import read_probes
    from taalm.ckl.theta import wrap_theta

    probes = read_probes(tailored / "to_learn.jsonl") + read_probes(tailored / "to_learn.jsonl", "task_schematic")
    used = []
    orig = ev._answer_log_probs
    monkeypatch.setattr(ev, "_answer_log_probs", lambda *a: (lambda r: used.append(r[1]) or r)(orig(*a)))
    mk = make_llama if arch == "llama" else make_gpt2
    for model in (mk(len(tokenizer)), wrap_theta(mk(len(tokenizer), seed=1), ThetaConfig(), seed=0)):
        for side in ("right", "left"):
            used.clear()
            fast = ev.evaluate_probes(model, tokenizer, probes, 4, side)
            assert used and all(used)  # the masked path ran (no [B, T, V] logits)
            used.clear()
            full = ev.evaluate_probes(model, tokenizer, probes, 4, side, answer_logits_only=False)
            assert not any(used)
            for a, b in zip(fast.per_probe, full.per_probe):
                assert a.accuracy == b.accuracy and a.nll == pytest.approx(b.nll, rel=1e-6, abs=1e-7)
            assert fast.accuracy == full.accuracy


def test_eval_speed_script_runs_on_a_tiny_model(tmp_path, model_dir, tailored):
    from conftest import load_benchmark

    mod = load_benchmark("eval_speed")
    out = tmp_path / "speed.json"
    threads = torch.get_num_threads()
    try:
        res = mod.main(["--model", str(model_dir), "--probes", str(tailored / "to_learn.jsonl"), "--limit", "5",
                        "--batch-sizes", "2,4", "--repeats", "1", "--threads", "1", "--out", str(out)])
    finally:
        torch.set_num_threads(threads)
    saved = json.loads(out.read_text())
    assert saved["n_probes"] == 5 and [r["batch_size"] for r in saved["results"]] == [2, 4]
    assert saved["same_scores"]["accuracy_identical"] and res["environment"]["versions"]["torch"]


def test_a_folder_is_not_reused_with_another_passed_in_model(tmp_path, tailored, tokenizer):
    """bench.json names a model passed through the library by its weights' fingerprint."""
    to_learn, nf = lama_ckl_files(tailored)
    out = tmp_path / "bench"
    run_lama_ckl((to_learn, nf), ["finetune"], "smoke", out, TINY, theta0=(make_llama(len(tokenizer)), tokenizer), **QUIET)
    assert len(json.loads((out / "bench.json").read_text())["model_fingerprint"]) == 16
    with pytest.raises(TaalmError, match="model_fingerprint"):
        run_lama_ckl((to_learn, nf), ["oracle"], "smoke", out, TINY, theta0=(make_llama(len(tokenizer), seed=1), tokenizer), **QUIET)
    run_lama_ckl((to_learn, nf), ["oracle"], "smoke", out, TINY, theta0=(make_llama(len(tokenizer)), tokenizer), **QUIET)  # the same model: the folder is reused
    assert (out / "oracle" / "result.json").is_file()


def test_mixreview_replays_a_pool_disjoint_from_the_evaluation_sets(tmp_path, tailored, tokenizer):
    """The default replay pool is phi_pool.jsonl beside To-Learn; one sharing a uuid with To-Learn
    or NF is refused before anything runs."""
    to_learn, nf = lama_ckl_files(tailored)
    write_units(tailored / "phi_pool.jsonl", [unit(30 + i, *f) for i, f in enumerate(FACTS[:3])])
    res = run_lama_ckl((to_learn, nf), ["finetune+mixreview"], "smoke", tmp_path / "b", TINY,
                       theta0=(make_llama(len(tokenizer)), tokenizer), **QUIET)
    r = json.loads((tmp_path / "b" / "finetune+mixreview" / "result.json").read_text())
    assert r["config"]["train"]["stream"] == "mixreview"
    assert r["config"]["train"]["mixreview"]["pool"] == str(tailored / "phi_pool.jsonl")
    assert "finetune+mixreview" in res["methods"]
    write_units(tailored / "phi_pool.jsonl", [unit(2, *FACTS[2]), unit(31, *FACTS[1])])  # u2 is To-Learn
    with pytest.raises(InputError, match="must not be the evaluation set"):
        run_lama_ckl((to_learn, nf), ["finetune+mixreview"], "smoke", tmp_path / "c", TINY,
                     theta0=(make_llama(len(tokenizer)), tokenizer), **QUIET)
    assert not (tmp_path / "c").exists()


def test_table1_baselines_run_by_their_part_name_and_bad_combinations_fail_first(tmp_path, tailored, tokenizer):
    """``--methods kadapter,recadam`` run as uniform-weight baselines; ``rho1+mixreview`` (a dynamic
    weighting with replay) is refused before any folder is written."""
    to_learn, nf = lama_ckl_files(tailored)
    res = run_lama_ckl((to_learn, nf), ["kadapter", "recadam"], "smoke", tmp_path / "b", TINY,
                       theta0=(make_llama(len(tokenizer)), tokenizer), **QUIET)
    assert sorted(res["methods"]) == ["kadapter", "recadam"]
    r = json.loads((tmp_path / "b" / "kadapter" / "result.json").read_text())
    assert (r["config"]["method"]["name"], r["config"]["theta"]["mode"]) == ("finetune", "kadapter")
    r = json.loads((tmp_path / "b" / "recadam" / "result.json").read_text())
    assert (r["config"]["train"]["optimizer"], r["config"]["theta"]["mode"]) == ("recadam", "lora")
    write_units(tailored / "phi_pool.jsonl", [unit(30 + i, *f) for i, f in enumerate(FACTS[:3])])
    with pytest.raises(ConfigError, match="static weighting"):
        run_lama_ckl((to_learn, nf), ["finetune", "rho1+mixreview"], "smoke", tmp_path / "c", TINY,
                     theta0=(make_llama(len(tokenizer)), tokenizer), **QUIET)
    assert not (tmp_path / "c").exists()


def test_bench_under_torchrun_equals_one_process(tmp_path, tailored, model_dir):
    """``torchrun --nproc_per_node 2 -m taalm bench lama-ckl ...`` (gloo): the same curves as one
    process at the same global batch; rank 1 writes nothing of its own."""
    import os
    import subprocess
    import sys

    args = ["bench", "lama-ckl", "--size", "smoke", "--data", str(tailored), "--methods", "oracle", "--quiet",
            f"model.name={model_dir}", "model.dtype=fp64", "model.device=cpu", "theta.lora.r=4", "train.lr=5e-3",
            "train.batch_size=1", "train.grad_accum=2"]
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "taalm", *args, "--out", str(tmp_path / "two")],
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    one, two = (json.loads((tmp_path / f / "oracle" / "result.json").read_text()) for f in ("one", "two"))
    for a, b in zip(one["curve"], two["curve"], strict=True):
        assert (a["to_learn_accuracy"], a["nf_accuracy"]) == (b["to_learn_accuracy"], b["nf_accuracy"])
        assert a["to_learn_nll"] == pytest.approx(b["to_learn_nll"], rel=1e-10)
    assert one["steps"] == two["steps"] > 0
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())
