"""core: the one checkpointer (optimizer state and param groups) and the append-only metric log."""

from __future__ import annotations

import json

import torch

from taalm.core.checkpoint import Checkpointer
from taalm.core.metrics import JsonlLogger


def _model_and_optimizer(lr=0.1):
    torch.manual_seed(0)
    lin = torch.nn.Linear(3, 2)
    params = dict(lin.named_parameters())
    opt = torch.optim.AdamW(list(params.values()), lr=lr, betas=(0.8, 0.9))
    lin(torch.randn(4, 3)).sum().backward()
    opt.step()
    return params, opt


def test_checkpoint_round_trips_tensors_state_and_param_groups(tmp_path):
    params, opt = _model_and_optimizer()
    for g in opt.param_groups:
        g["lr"] = 0.0123  # a schedule moved the lr: a resume must continue from here
    ck = Checkpointer(tmp_path / "checkpoints", "epoch", 4)
    ck.save(3, params, opt, {"epoch": 3, "step": 1})
    fresh, opt2 = _model_and_optimizer(lr=0.5)
    with torch.no_grad():
        for p in fresh.values():
            p.zero_()
    state = ck.load_newest(fresh, opt2, log=lambda m: None)
    assert state["epoch"] == 3 and ck.latest_index() == 3
    for n in params:
        assert torch.equal(fresh[n], params[n])
    g = opt2.param_groups[0]
    assert g["lr"] == 0.0123 and tuple(g["betas"]) == (0.8, 0.9)
    a, b = opt.state_dict()["state"], opt2.state_dict()["state"]
    assert all(torch.equal(a[i]["exp_avg"], b[i]["exp_avg"]) for i in a)


def test_jsonl_logger_appends_and_never_rewrites(tmp_path):
    path = tmp_path / "metrics.jsonl"
    log = JsonlLogger(path)
    sizes, texts = [], []
    for step in range(4):
        log.log_scalars(step, {"loss": 1.0 / (step + 1)})
        texts.append(path.read_text())
        sizes.append(path.stat().st_size)
    log.log_row({"type": "eval", "epoch": 1, "nll": float("nan")})
    log.close()
    assert sizes == sorted(sizes) and all(texts[i + 1].startswith(texts[i]) for i in range(3))  # only appended
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    assert [r.get("step") for r in rows[:4]] == [0, 1, 2, 3]
    assert rows[-1]["nll"] is None and rows[-1]["nonfinite"]["keys"] == ["nll"]  # no bare NaN in the file
    # a resumed run keeps the rows up to its checkpoint, then appends
    again = JsonlLogger(path, keep=lambda r: r.get("step", 99) <= 1)
    again.log_row({"step": 2, "loss": 0.3})
    again.close()
    assert [json.loads(x)["step"] for x in path.read_text().splitlines()] == [0, 1, 2]


def test_progress_in_a_log_is_lines_not_carriage_returns():
    """stderr redirected to a file gets one plain line per tenth of the work and a last line;
    a terminal gets tqdm."""
    import io

    from taalm.core.progress import LineProgress, progress

    log = io.StringIO()
    bar = progress(range(25), desc="epoch 1/3", unit="step", stream=log)
    assert isinstance(bar, LineProgress)
    for _ in bar:
        bar.set_postfix(loss="3.142")
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and len(lines) == 13  # 2, 4, ..., 24, then 25
    assert lines[0].startswith("epoch 1/3: 2/25 step (8%)") and lines[-1].startswith("epoch 1/3: 25/25 step (100%)")
    assert "loss=3.142" in lines[-1]

    class Tty(io.StringIO):
        def isatty(self):
            return True

    assert not isinstance(progress(range(3), stream=Tty()), LineProgress)
    log2 = io.StringIO()
    bar = progress(total=10, initial=4, desc="meta-train φ", unit="upd", stream=log2)
    for _ in range(6):
        bar.update(1)
    bar.close()
    assert log2.getvalue().splitlines()[-1].startswith("meta-train φ: 10/10 upd (100%)")
