"""Data-parallel continual learning under ``torchrun`` (gloo on CPU): 2 ranks equal 1 process.

The real user path: ``python -m torch.distributed.run --standalone --nproc_per_node 2 -m taalm
learn ...`` on a tiny float64 model, against ``taalm learn`` in one process with the same
global batch (1 sequence per micro-batch, 2 micro-batches per step: each rank takes one; the
odd last step leaves rank 1 without data, which must still be exact).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from taalm.cli import main
from taalm.core import distributed
from taalm.ckl.learner import LearnOptions


def _common(model_dir, docs_file, probes_file):
    return [str(docs_file), "--probes", str(probes_file), "--quiet", "--method", "oracle", f"model.name={model_dir}",
            "model.dtype=fp64", "model.device=cpu", "train.epochs=2", "train.batch_size=1", "train.grad_accum=2",
            "theta.lora.r=4", "train.lr=5e-3", "eval.every_epoch=true"]


def _run(folder):
    adapter = load_file(str(folder / "adapter" / "adapter_model.safetensors"))
    rows = [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines()]
    return adapter, rows


def _resumed_on_two_ranks(tmp_path, docs_file, probes_file, common, method, extra=()):
    """Run ``common`` in one process to the end (``one``); run it again in-process and kill it
    after epoch 1 (``b``); resume ``b`` on 2 gloo ranks with ``extra`` overrides. Returns torchrun's result."""
    from taalm.ckl.learner import learn
    from taalm.core.config import load_config
    from taalm.ckl.config import LearnConfig
    from taalm.data import read_documents, read_probes

    assert main(["learn", *common, "--out", str(tmp_path / "one")]) == 0
    cfg = load_config(LearnConfig, None, [a for a in common if "=" in a] + [f"method.name={method}"])

    def kill_after_first(event):
        if event["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        learn(read_documents(docs_file), read_probes(probes_file), cfg, tmp_path / "b",
              options=LearnOptions(progress=False, log=lambda m: None, callbacks=[kill_after_first]))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "taalm",
           "learn", *common, *extra, "--out", str(tmp_path / "b"), "--resume"]
    proc = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def test_two_gloo_ranks_give_the_adapter_of_one_process(tmp_path, model_dir, docs_file, probes_file):
    common = _common(model_dir, docs_file, probes_file)
    assert main(["learn", *common, "--out", str(tmp_path / "one")]) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "taalm",
           "learn", *common, "--out", str(tmp_path / "two")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    one, rows1 = _run(tmp_path / "one")
    two, rows2 = _run(tmp_path / "two")
    assert one.keys() == two.keys()
    for k in one:
        assert torch.allclose(one[k], two[k], rtol=0, atol=1e-10), k
    assert any(k.endswith("lora_B.weight") and one[k].abs().sum() > 0 for k in one)  # it did learn
    steps1, steps2 = ([r for r in rows if r["type"] == "step"] for rows in (rows1, rows2))
    assert [r["tokens"] for r in steps1] == [r["tokens"] for r in steps2] and len(steps1) == 4
    assert [r["loss"] for r in steps1] == pytest.approx([r["loss"] for r in steps2], rel=1e-10)
    evals1, evals2 = ([r for r in rows if r["type"] == "eval"] for rows in (rows1, rows2))
    assert [(r["accuracy"], r["n"]) for r in evals1] == [(r["accuracy"], r["n"]) for r in evals2]  # gathered
    assert [r["nll"] for r in evals1] == pytest.approx([r["nll"] for r in evals2], rel=1e-10)
    assert proc.stdout.count("run folder:") == 1  # rank 1 printed nothing


def test_a_one_process_checkpoint_resumes_on_two_ranks(tmp_path, model_dir, docs_file, probes_file):
    """Checkpoints hold nothing rank-dependent: killed after epoch 1 in one process, resumed by 2
    ranks, the run ends where the uninterrupted one-process run ends."""
    _resumed_on_two_ranks(tmp_path, docs_file, probes_file, _common(model_dir, docs_file, probes_file), "oracle")
    one, _ = _run(tmp_path / "one")
    resumed, rows = _run(tmp_path / "b")
    for k in one:
        assert torch.allclose(one[k], resumed[k], rtol=0, atol=1e-10), k
    assert json.loads((tmp_path / "b" / "run.json").read_text())["status"] == "complete"


def test_a_single_process_is_rank_0_of_1():
    d = distributed.current()
    assert (d.rank, d.world_size, d.is_main, d.enabled) == (0, 1, True, False)
    assert distributed.shard(list(range(5))) == [0, 1, 2, 3, 4]
    assert distributed.shard(list(range(5)), distributed.Dist(1, 2)) == [1, 3]
    t = torch.ones(3)
    assert torch.equal(distributed.all_reduce_sum_(t), torch.ones(3))
    assert distributed.all_gather_objects({"a": 1}) == [{"a": 1}]


@pytest.mark.slow
def test_meta_training_on_two_gloo_ranks_equals_one_process(tmp_path):
    """φ after 2 updates of 4 pairs, each rank taking 2 of them, equals one process's φ, for both
    meta-gradient engines; rank 0 alone validated."""
    import dist_meta_worker as worker

    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           worker.__file__, str(tmp_path / "two")],
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    for engine in worker.ENGINES:
        one = worker.run(engine, tmp_path / "one" / engine)
        two = load_file(str(tmp_path / "two" / engine / "phi" / "phi.safetensors"))
        mine = {k: v.detach() for k, v in load_file(str(tmp_path / "one" / engine / "phi" / "phi.safetensors")).items()}
        assert mine.keys() == two.keys()
        for k in mine:
            assert mine[k].dtype == torch.float64 and torch.allclose(mine[k], two[k], rtol=0, atol=1e-10), (engine, k)
        log2 = [json.loads(x) for x in (tmp_path / "two" / engine / "log.jsonl").read_text().splitlines()]
        assert [r["outer"] for r in log2] == [r["outer"] for r in one.log]  # logged rounded to 5 decimals
        assert [r["update"] for r in json.loads((tmp_path / "two" / engine / "summary.json").read_text())["val"]] == [2]


# Under the parallel default suite this two-process run sometimes aborts at exit on rank 1 (gloo:
# "terminate called without an active exception", exit -6) after its work is done; alone it passes
# every time. Kept for `pytest --slow` until the cause is found (see the issue notes of stop 40).
@pytest.mark.slow
def test_fsdp_on_two_gloo_ranks_continues_a_run_exactly(tmp_path, model_dir, docs_file, probes_file):
    """``train.fsdp=true`` (FSDP2: full θ sharded over 2 ranks): a one-process run killed after
    epoch 1 (its checkpoint holds whole tensors) resumes sharded, and its epoch 2 (the odd last
    step included, where rank 1 runs a stand-in micro-batch) ends at the θ of the uninterrupted
    one-process run, to 1e-10 in float64, with the same step losses; the saved model is whole."""
    common = [a.replace("oracle", "finetune") for a in _common(model_dir, docs_file, probes_file)] + [
        "theta.mode=full", "train.lr=1e-3"]
    proc = _resumed_on_two_ranks(tmp_path, docs_file, probes_file, common, "finetune", ["train.fsdp=true"])
    assert "FSDP2: θ sharded over 2 ranks (units: LlamaDecoderLayer)" in proc.stdout + proc.stderr
    one = load_file(str(tmp_path / "one" / "model" / "model.safetensors"))
    two = load_file(str(tmp_path / "b" / "model" / "model.safetensors"))
    assert one.keys() == two.keys() and two["model.norm.weight"].dtype == torch.float64
    for k in one:
        assert torch.allclose(one[k], two[k], rtol=0, atol=1e-10), k
    from transformers import AutoModelForCausalLM

    start = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float64).state_dict()
    assert any(not torch.allclose(start[k], one[k]) for k in one)  # it did learn
    steps = [[(r["step"], r["loss"]) for r in map(json.loads, (tmp_path / f / "metrics.jsonl").read_text().splitlines())
              if r["type"] == "step" and r["epoch"] == 2] for f in ("one", "b")]
    assert len(steps[0]) == 2 and [s for s, _ in steps[0]] == [s for s, _ in steps[1]]
    assert [x for _, x in steps[1]] == pytest.approx([x for _, x in steps[0]], rel=1e-10)


def test_fsdp_is_refused_where_it_cannot_work(tmp_path, model_dir, docs_file, probes_file, capsys):
    """Adapters, a single process and RHO-1's fine-tuned reference: one clear line, exit 2, nothing written."""
    common = _common(model_dir, docs_file, probes_file)
    i = common.index("--method")
    common = common[:i] + common[i + 2:]
    cases = [(["--method", "finetune", "train.fsdp=true"], "needs theta.mode=full"),
             (["--method", "finetune", "train.fsdp=true", "theta.mode=full"], "torchrun"),
             (["--method", "rho1", "train.fsdp=true", "theta.mode=full", "method.rho1.reference=finetuned"],
              "fine-tuned reference")]
    for i, (extra, says) in enumerate(cases):
        out = tmp_path / f"r{i}"
        assert main(["learn", *common, *extra, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert says in err and len(err.strip().splitlines()[-1]) > 20 and not out.exists(), err
