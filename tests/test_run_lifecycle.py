"""The one run life cycle (taalm.core.run.Run): failure marking, the lock, and the rules of the
folders that `data tailor`, `data pool` and `demo` write (fresh, or theirs: continued in place or
emptied with --overwrite; never a user's folder, never one holding an input)."""

from __future__ import annotations

import hashlib
import json

import pytest

import taalm.bench.tailor as tailor_mod
from taalm.cli import main
from taalm.core.errors import TaalmError, TrainingDiverged
from taalm.core.run import Run
from taalm.core.runfolder import RunLock, read_run_info

from test_tailor import StubScorer, write_lama


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
    lines = [ln for ln in err.splitlines() if ln.strip()]
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
