"""The one run life cycle (taalm.core.run.Run): failure marking, the lock, and the rules of the
folders that `data tailor`, `data pool` and `demo` write (fresh, or theirs: continued in place or
emptied with --overwrite; never a user's folder, never one holding an input)."""

from __future__ import annotations

import hashlib
import json

import pytest

import taalm.tools.tailor as tailor_mod
from taalm.cli import main
from taalm.core.errors import TaalmError, TrainingDiverged
from taalm.core.run import Run
from taalm.core.runfolder import RunLock, read_run_info

from test_tailor import StubScorer, write_lama
from taalm.core.run import QUIET, RunOptions


def tree_digest(folder):
    """sha256 of every file below ``folder`` (names and bytes): a user's files stay byte-identical."""
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        h.update(str(p.relative_to(folder)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith(("learning ", "loading "))]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# --------------------------------------------------------------------------------------------
# Run: marking and the lock
# --------------------------------------------------------------------------------------------
def _started(run: Run) -> None:
    run.start(lambda f: (f / "run.json").write_text(json.dumps({"schema": "taalm.run/1", "status": "running"})))


@pytest.mark.parametrize("exc, status", [(KeyboardInterrupt(), "interrupted"), (OSError(28, "No space left"), "interrupted"),
                                         (TrainingDiverged("loss is nan"), "failed")])
def test_a_started_run_that_raises_is_marked_and_unlocked(tmp_path, exc, status):
    out = tmp_path / "run"
    with pytest.raises(type(exc)):
        with Run(out, log=lambda m: None) as run:
            _started(run)
            run.failure_fields = lambda: {"last_checkpoint_epoch": 3}
            raise exc
    info = read_run_info(out)
    assert info["status"] == status and info["last_checkpoint_epoch"] == 3
    assert ("error" in info) == (not isinstance(exc, KeyboardInterrupt))
    assert not RunLock(out).path.exists()
    with RunLock(out):  # the folder can be locked again
        pass


def test_a_run_that_fails_before_it_starts_writes_nothing(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(TaalmError):
        with Run(out, log=lambda m: None):
            raise TaalmError("the model could not be loaded")
    assert not out.exists() and not any(tmp_path.iterdir())


def test_a_second_run_into_a_locked_folder_is_refused(tmp_path):
    out = tmp_path / "run"
    with Run(out, log=lambda m: None):
        with pytest.raises(TaalmError, match="another taalm run is using this folder"):
            with Run(out, log=lambda m: None):
                pass


def test_unknown_folder_rule_is_refused(tmp_path):
    with pytest.raises(ValueError, match="folder_rule"):
        Run(tmp_path / "x", folder_rule="maybe")


# --------------------------------------------------------------------------------------------
# Tool folders: data tailor (the same rules serve data pool and demo)
# --------------------------------------------------------------------------------------------
@pytest.fixture
def lama(tmp_path, monkeypatch):
    monkeypatch.setattr(tailor_mod, "evaluate_probes", StubScorer())
    return write_lama(tmp_path / "lama")


def tailor_cli(capsys, lama, out, model_dir, *more):
    return cli(capsys, "data", "tailor", "--data", lama, "--out", out, "--model", model_dir, "--quiet", *more)


def test_tailor_refuses_a_users_folder_and_leaves_it_byte_identical(tmp_path, capsys, lama, model_dir):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "summary.json").write_text('{"my": "notes"}')
    (mine / "to_learn.jsonl").write_text("my own data\n")
    before = tree_digest(mine)
    for extra in ([], ["--overwrite"]):
        code, _, err = tailor_cli(capsys, lama, mine, model_dir, *extra)
        assert code == 2 and "not a folder taalm made" in one_line(err)
        assert tree_digest(mine) == before


@pytest.mark.parametrize("where", ["data", "parent of data"])
def test_tailor_refuses_an_output_folder_that_is_or_holds_its_input(tmp_path, capsys, lama, model_dir, where):
    out = lama if where == "data" else lama.parent
    before = tree_digest(lama)
    code, _, err = tailor_cli(capsys, lama, out, model_dir)
    assert code == 2 and "an input of this command" in one_line(err)
    assert tree_digest(lama) == before


def test_tailor_reruns_in_its_own_folder_and_overwrite_empties_only_its_own(tmp_path, capsys, lama, model_dir):
    out = tmp_path / "tailored"
    code, _, _ = tailor_cli(capsys, lama, out, model_dir)
    assert code == 0
    info = read_run_info(out)
    assert info["kind"] == "data tailor" and info["status"] == "complete" and info["mode"] == "new"
    first = (out / "to_learn.jsonl").read_bytes()
    code, _, err = tailor_cli(capsys, lama, out, model_dir)  # in place: every score from the cache
    assert code == 0 and read_run_info(out)["mode"] == "continue" and "0 probes scored" in err
    assert (out / "to_learn.jsonl").read_bytes() == first

    (out / "notes.txt").write_text("mine")  # a user's file inside: --overwrite would delete it
    before = tree_digest(out)
    code, _, err = tailor_cli(capsys, lama, out, model_dir, "--overwrite")
    assert code == 2 and "notes.txt" in one_line(err)
    assert tree_digest(out) == before
    (out / "notes.txt").unlink()
    code, _, err = tailor_cli(capsys, lama, out, model_dir, "--overwrite")
    assert code == 0 and read_run_info(out)["mode"] == "replace" and "0 cached" in err
    assert (out / "to_learn.jsonl").read_bytes() == first


def test_a_folder_of_another_taalm_command_is_refused(tmp_path, capsys, lama, model_dir):
    out = tmp_path / "pool"
    out.mkdir()
    (out / "run.json").write_text(json.dumps({"schema": "taalm.run/1", "kind": "data pool", "status": "complete"}))
    code, _, err = tailor_cli(capsys, lama, out, model_dir)
    assert code == 2 and "a taalm 'data pool' folder" in one_line(err)


def test_a_tailor_folder_made_before_run_json_is_continued(tmp_path, capsys, lama, model_dir):
    out = tmp_path / "old"
    code, _, _ = tailor_cli(capsys, lama, out, model_dir)
    assert code == 0
    (out / "run.json").unlink()  # as an older taalm left it: the score cache marks it
    code, _, err = tailor_cli(capsys, lama, out, model_dir)
    assert code == 0 and read_run_info(out)["mode"] == "continue"


def test_demo_refuses_a_users_folder_before_loading_anything(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "accuracy.png").write_bytes(b"my picture")
    before = tree_digest(mine)
    code, _, err = cli(capsys, "demo", "--out", mine, "--quiet")
    assert code == 2 and "not a folder taalm made" in one_line(err)
    assert tree_digest(mine) == before


# --------------------------------------------------------------------------------------------
# Run safety, round 2: outputs that are inputs, planted temporary files, odd locks, --overwrite
# --------------------------------------------------------------------------------------------
def test_eval_refuses_an_output_that_is_an_input(tmp_path, capsys, model_dir, probes_file):
    before = probes_file.read_bytes()
    for option, path in (("--json", probes_file), ("--log-samples", probes_file),
                         ("--json", model_dir / "config.json")):
        kept = path.read_bytes()
        code, _, err = cli(capsys, "eval", "--model", model_dir, "--probes", probes_file, option, path, "--quiet")
        assert code == 2 and "is an input of this command" in one_line(err)
        assert path.read_bytes() == kept
    code, _, err = cli(capsys, "eval", "--model", model_dir, "--probes", probes_file, "--json", tmp_path / "a.json",
                       "--log-samples", tmp_path / "a.json", "--quiet")
    assert code == 2 and "the same file as --json" in one_line(err)
    assert probes_file.read_bytes() == before


def test_weights_refuses_to_write_over_its_documents(tmp_path, capsys, model_dir, docs_file):
    link = tmp_path / "link.jsonl"
    link.symlink_to(docs_file)  # through a symlink too
    before = docs_file.read_bytes()
    for out in (docs_file, link):
        code, _, err = cli(capsys, "weights", docs_file, "--method", "finetune", "--jsonl", out,
                           f"model.name={model_dir}")
        assert code == 2 and "is an input of this command" in one_line(err)
    assert docs_file.read_bytes() == before


def test_recipes_cp_ignores_a_planted_temporary_symlink(tmp_path, capsys, monkeypatch):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / ".r.yaml.tmp").symlink_to(victim)  # the predictable name an older taalm used
    monkeypatch.chdir(tmp_path)
    code, _, _ = cli(capsys, "recipes", "cp", "lama_ckl_smoke", "r.yaml")
    assert code == 0 and victim.read_text() == "precious"
    assert (tmp_path / "r.yaml").read_text().strip() and not (tmp_path / "r.yaml").is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".r.yaml.tmp", "r.yaml", "victim.txt"]


@pytest.mark.parametrize("content", [b"", b"\x00garbage\xff", b"notapid host"])
def test_a_lock_file_without_an_owner_is_stale_once_old(tmp_path, content):
    import os
    import time

    out = tmp_path / "run"
    lock = RunLock(out)
    lock.path.write_bytes(content)
    with pytest.raises(TaalmError, match="another taalm run"):  # young: maybe being written right now
        RunLock(out).acquire()
    old = time.time() - 60
    os.utime(lock.path, (old, old))
    RunLock(out).acquire().release()
    assert not lock.path.exists()


def test_a_lock_that_is_a_folder_names_itself(tmp_path):
    out = tmp_path / "run"
    RunLock(out).path.mkdir(parents=True)
    with pytest.raises(TaalmError, match=r"\.run\.taalm-lock: the run lock of .* is a folder"):
        RunLock(out).acquire()


def test_overwrite_never_deletes_a_recipe_or_a_model_inside_the_old_run(tmp_path, capsys, model_dir, docs_file):
    import shutil

    out = tmp_path / "out"
    base = ["learn", docs_file, "--out", out, "--quiet", "train.epochs=1", "theta.lora.r=4"]
    assert cli(capsys, *base, f"model.name={model_dir}")[0] == 0
    recipe = out / "recipe.yaml"
    recipe.write_text("train:\n  lr: 1.0e-3\n")
    shutil.copytree(model_dir, out / "model")
    before = tree_digest(out)
    code, _, err = cli(capsys, *base, f"model.name={model_dir}", "--config", recipe, "--overwrite")
    assert code == 2 and "--config" in one_line(err) and "move the recipe out" in err
    recipe.unlink()
    before = tree_digest(out)
    code, _, err = cli(capsys, *base, f"model.name={out / 'model'}", "--overwrite")
    assert code == 2 and "holds an input of this run" in one_line(err)
    assert tree_digest(out) == before


LEARN_TINY = ["train.epochs=1", "theta.lora.r=4", "--quiet"]


def test_a_hand_made_legacy_run_json_beside_a_users_files_is_no_taalm_run(tmp_path, capsys, model_dir, docs_file):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "run.json").write_text(json.dumps({"status": "complete", "config": {}, "versions": {}, "git_commit": "x"}))
    (mine / "thesis.tex").write_text("years of work")
    before = tree_digest(mine)
    code, _, err = cli(capsys, "learn", docs_file, "--out", mine, f"model.name={model_dir}", "--overwrite", *LEARN_TINY)
    assert code == 2 and "not a taalm run folder" in one_line(err)
    assert tree_digest(mine) == before


def test_overwrite_names_a_foreign_file_inside_a_taalm_run(tmp_path, capsys, model_dir, docs_file):
    out = tmp_path / "out"
    assert cli(capsys, "learn", docs_file, "--out", out, f"model.name={model_dir}", *LEARN_TINY)[0] == 0
    (out / "notes.md").write_text("my notes on this run")
    before = tree_digest(out)
    code, _, err = cli(capsys, "learn", docs_file, "--out", out, f"model.name={model_dir}", "--overwrite", *LEARN_TINY)
    assert code == 2 and "holds notes.md, which no taalm run writes" in one_line(err)
    assert tree_digest(out) == before
    (out / "notes.md").unlink()
    assert cli(capsys, "learn", docs_file, "--out", out, f"model.name={model_dir}", "--overwrite", *LEARN_TINY)[0] == 0


def test_out_through_a_symlink_writes_through_it(tmp_path, capsys, model_dir, docs_file):
    real = tmp_path / "real"
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    real.mkdir()
    for extra in ([], ["--overwrite"]):
        assert cli(capsys, "learn", docs_file, "--out", link, f"model.name={model_dir}", *extra, *LEARN_TINY)[0] == 0
        assert link.is_symlink() and (real / "run.json").is_file()
        assert sorted(p.name for p in tmp_path.iterdir()) == ["docs.jsonl", "link", "real"]  # nothing stray


@pytest.mark.parametrize("case", ["loop", "under a file"])
def test_odd_out_paths_get_one_line(tmp_path, capsys, model_dir, docs_file, case):
    if case == "loop":
        out = tmp_path / "a"
        out.symlink_to(tmp_path / "b")
        (tmp_path / "b").symlink_to(out)
        expected = "a symlink loop"
    else:
        (tmp_path / "file").write_text("x")
        out = tmp_path / "file" / "run"
        expected = "is a file, not a folder"
    code, _, err = cli(capsys, "learn", docs_file, "--out", out, f"model.name={model_dir}", *LEARN_TINY)
    assert code == 2 and expected in one_line(err)


def test_the_python_api_validates_its_inputs(tiny_llama, tokenizer):
    from taalm.ckl.learner import learn
    from taalm.ckl.config import LearnConfig
    from taalm.core.errors import InputError
    from taalm.data import Document
    from taalm.evaluation.probes import evaluate_probes

    with pytest.raises(InputError, match="has no text"):
        learn([Document("")], None, LearnConfig(), model=tiny_llama, tokenizer=tokenizer,
              options=QUIET)
    with pytest.raises(TaalmError, match="no probes to evaluate"):
        evaluate_probes(tiny_llama, tokenizer, [])


def test_defaults_evaluate_every_epoch_and_a_tiny_run_says_it_has_few_steps(tiny_llama, tokenizer, docs_file,
                                                                            probes_file):
    from taalm.ckl.learner import learn
    from taalm.ckl.config import LearnConfig
    from taalm.data import read_documents, read_probes

    cfg = LearnConfig()
    assert (cfg.train.epochs, cfg.train.lr, cfg.eval.every_epoch) == (8, 1e-3, True)
    cfg.theta.lora.r = 4
    logs = []
    docs = read_documents(docs_file)
    probes = read_probes(probes_file)
    res = learn(docs, probes, cfg, model=tiny_llama, tokenizer=tokenizer, options=RunOptions(progress=False, log=logs.append))
    assert any(m.startswith("note: about 8 optimizer step(s) in all (3 windows, batch 8") for m in logs), logs
    assert [r["epoch"] for r in res.history] == list(range(9))  # before, then after each of 8 epochs


def test_run_options_refuse_a_folder_policy_the_command_does_not_have(tmp_path):
    """The benchmarks and the data tools continue their folders in place by themselves: asked to
    ``resume`` (or a benchmark to ``overwrite``) they refuse in one line before reading anything."""
    from taalm.bench.lama_ckl import run_lama_ckl
    from taalm.tools.tailor import tailor
    from taalm.core.errors import TaalmError
    from taalm.core.run import RunOptions, options_for

    assert options_for(None, "x").progress is True  # the default: bars and messages
    with pytest.raises(TaalmError, match="the LAMA-ckl benchmark takes no overwrite"):
        run_lama_ckl((tmp_path / "a", tmp_path / "b"), ["finetune"], "smoke", tmp_path / "out",
                     options=RunOptions(overwrite=True))
    with pytest.raises(TaalmError, match="data tailor takes no resume"):
        tailor(tmp_path / "lama", tmp_path / "out", options=RunOptions(resume=True))
    assert not (tmp_path / "out").exists()
