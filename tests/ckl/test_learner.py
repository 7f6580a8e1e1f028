import json

import pytest
import torch

from conftest import make_gpt2, make_llama
from taalm.core.config import load_config
from taalm.ckl.config import LearnConfig
from taalm.data import Window, read_documents, read_probes
from taalm.core.errors import InputError, TaalmError
from taalm.ckl.learner import learn
from taalm.ckl.streams import length_grouped_order, micro_batches
from taalm.ckl.weighting import Finetune
from taalm.core.run import QUIET, RunOptions
from taalm.ckl.learner import LearnOptions


def cfg_for(*overrides):
    base = ["train.epochs=2", "train.lr=5e-3", "train.batch_size=2", "theta.lora.r=4", "eval.every_epoch=true"]
    return load_config(LearnConfig, None, base + list(overrides))


def snapshot(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_lora_trains_adapters_only(arch, tokenizer, docs_file, probes_file):
    model = (make_llama if arch == "llama" else make_gpt2)(len(tokenizer))
    base = snapshot(model)
    res = learn(read_documents(docs_file), read_probes(probes_file), cfg_for(), model=model, tokenizer=tokenizer,
                options=QUIET)
    changed, frozen = 0, 0
    for name, p in res.model.named_parameters():
        if "lora_" in name:
            if "lora_B" in name:  # B starts at 0 and must have moved
                assert p.abs().sum() > 0
            changed += 1
        else:
            key = name.replace("base_model.model.", "").replace(".base_layer", "")
            assert torch.equal(p, base[key]), f"frozen parameter {name} changed"
            frozen += 1
    assert changed > 0 and frozen > 0
    assert [r["epoch"] for r in res.history] == [0, 1, 2]


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_lora_on_either_layout_warns_nothing_and_matches_peft_default(arch, tokenizer):
    """GPT-2's projections are Conv1D (weight [in, out]): the lora form says fan_in_fan_out=True
    itself, so peft has nothing to warn about, and θ is the one peft builds when it corrects it."""
    import warnings

    from taalm.ckl.theta.lora import Lora
    from taalm.ckl.config import ThetaConfig

    model = (make_llama if arch == "llama" else make_gpt2)(len(tokenizer))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        peft_model = Lora(ThetaConfig(), seed=0).prepare(model)
    assert not [w for w in caught if "fan_in_fan_out" in str(w.message)]
    cfg = peft_model.peft_config[peft_model.active_adapter]
    assert cfg.fan_in_fan_out is (arch == "gpt2")
    x = torch.randint(0, len(tokenizer), (1, 6))
    assert torch.isfinite(peft_model(input_ids=x).logits).all()


def test_full_finetune_changes_every_parameter(tokenizer, docs_file):
    model = make_llama(len(tokenizer))
    base = snapshot(model)
    res = learn(read_documents(docs_file), None, cfg_for("theta.mode=full", "train.epochs=1"), model=model, tokenizer=tokenizer,
                options=QUIET)
    moved = [n for n, p in res.model.named_parameters() if not torch.equal(p, base[n])]
    assert len(moved) == len(base)


def test_loss_decreases_and_oracle_learns(tokenizer, docs_file, probes_file):
    docs, probes = read_documents(docs_file), read_probes(probes_file)
    res = learn(docs, probes, cfg_for("train.epochs=10", "method.name=oracle", "train.lr=1e-2",
                                      "theta.mode=full", "eval.every_epoch=false"), model=make_llama(len(tokenizer)), tokenizer=tokenizer,
                options=QUIET)
    assert [r["epoch"] for r in res.history] == [0, 10]
    assert res.history[-1]["nll"] < res.history[0]["nll"] - 1.0


def test_static_weights_computed_once_per_document(tokenizer, docs_file, monkeypatch):
    calls = []
    orig = Finetune.document_weights

    def counting(self, i, enc):
        calls.append(i)
        return orig(self, i, enc)

    monkeypatch.setattr(Finetune, "document_weights", counting)
    learn(read_documents(docs_file), None, cfg_for("train.epochs=3", "train.max_length=8", "train.stride=2"), model=make_llama(len(tokenizer)), tokenizer=tokenizer,
          options=QUIET)
    assert sorted(calls) == [0, 1, 2]  # 3 documents (many windows), 3 epochs: 3 calls


def test_grad_accumulation_matches_one_big_batch(tokenizer, docs_file):
    """batch 4 x accum 1 and batch 2 x accum 2 give the same step (same sequences, float64)."""
    docs = read_documents(docs_file) + read_documents(docs_file)[:1]
    out = []
    for bs, acc in ((4, 1), (2, 2)):
        model = make_gpt2(len(tokenizer)).double()
        res = learn(docs, None, cfg_for("theta.mode=full", "train.epochs=1", f"train.batch_size={bs}",
                                        f"train.grad_accum={acc}", "train.shuffle=false",
                                        "train.max_grad_norm=0"), model=model, tokenizer=tokenizer,
                    options=QUIET)
        out.append(snapshot(res.model))
    for n in out[0]:
        assert torch.allclose(out[0][n], out[1][n], atol=1e-10), n


def test_sequences_without_weight_do_not_dilute_the_step(tokenizer, docs_file, tmp_path):
    """A step over [document with weights, document whose weights are all 0] is the step over the
    weighted document alone: same loss, same update (float64). Before, the zero-weight sequence
    still counted in the step's sequence count and halved the loss."""
    from taalm.ckl.weighting import PrecomputedWeights
    from taalm.data import encode_document

    docs = read_documents(docs_file)[:2]
    ones = [torch.ones(len(encode_document(tokenizer, d).input_ids)) for d in docs]
    runs = {}
    for name, ds, ws in (("pair", docs, [ones[0], torch.zeros_like(ones[1])]), ("alone", docs[:1], ones[:1])):
        res = learn(ds, None, cfg_for("theta.mode=full", "train.epochs=1", "train.batch_size=2", "train.shuffle=false"), tmp_path / name, model=make_gpt2(len(tokenizer)).double(), tokenizer=tokenizer,
                    options=LearnOptions(method=PrecomputedWeights(ws), progress=False, log=lambda m: None))
        rows = [json.loads(x) for x in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
        runs[name] = ([r["loss"] for r in rows if r.get("type") == "step"], snapshot(res.model))
    assert runs["pair"][0] == pytest.approx(runs["alone"][0], rel=1e-12)
    for n, p in runs["alone"][1].items():
        torch.testing.assert_close(runs["pair"][1][n], p, rtol=0, atol=1e-12)


def test_micro_batches_by_sequences_and_tokens():
    wins = [Window(i, 0, [0] * n, [1] * n) for i, n in enumerate([10, 3, 7, 7, 2])]
    assert micro_batches(wins, [0, 1, 2, 3, 4], batch_size=2) == [[0, 1], [2, 3], [4]]
    # padded tokens per batch <= 14: [10] alone, then [3, 7] (2x7), [7, 2] (2x7)
    assert micro_batches(wins, [0, 1, 2, 3, 4], batch_size=8, batch_tokens=14) == [[0], [1, 2], [3, 4]]


def test_length_grouped_order_is_a_permutation_with_less_padding():
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(5, 200, (96,), generator=g).tolist()
    wins = [Window(i, 0, [0] * n, [1] * n) for i, n in enumerate(lengths)]
    order = torch.randperm(96, generator=g).tolist()

    def padded(o):
        return sum(max(lengths[i] for i in b) * len(b) for b in micro_batches(wins, o, 8))

    grouped = length_grouped_order(wins, order, 8, 4, torch.Generator().manual_seed(1))
    assert sorted(grouped) == list(range(96))  # every window once per epoch
    assert padded(grouped) < 0.8 * padded(order)
    # each batch of 8 comes from one mega-batch of 4 x 8 consecutive windows of the shuffled order
    megas = [set(order[k:k + 32]) for k in range(0, 96, 32)]
    assert all(any(set(b) <= m for m in megas) for b in micro_batches(wins, grouped, 8))
    assert grouped == length_grouped_order(wins, order, 8, 4, torch.Generator().manual_seed(1))  # seeded
    assert length_grouped_order(wins, order, 8, 0, None) == order


def test_group_by_length_trains_every_token_once_per_epoch(tmp_path, tokenizer, docs_file, probes_file):
    docs, probes = read_documents(docs_file), read_probes(probes_file)

    def tokens_per_step(group):
        out = tmp_path / f"g{group}"
        learn(docs, probes, cfg_for("train.epochs=1", "train.batch_size=2", f"train.group_by_length={group}"), out, model=make_llama(len(tokenizer)), tokenizer=tokenizer,
              options=QUIET)
        rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        return [r["tokens"] for r in rows if r["type"] == "step"]

    plain, grouped = tokens_per_step(0), tokens_per_step(2)
    assert len(plain) == len(grouped) and sum(plain) == sum(grouped)  # same tokens, other batches


def test_run_folder_and_resume_is_exact(tmp_path, tokenizer, docs_file, probes_file):
    docs, probes = read_documents(docs_file), read_probes(probes_file)
    cfg = cfg_for("train.epochs=3", "theta.lora.dropout=0.1")
    straight = learn(docs, probes, cfg, tmp_path / "a", model=make_llama(len(tokenizer)), tokenizer=tokenizer,
                     options=QUIET)

    def kill_after_first(event):
        if event["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        learn(docs, probes, cfg, tmp_path / "b", model=make_llama(len(tokenizer)), tokenizer=tokenizer,
              options=LearnOptions(progress=False, log=lambda m: None, callbacks=[kill_after_first]))
    run_b = json.loads((tmp_path / "b" / "run.json").read_text())
    assert run_b["status"] == "interrupted" and run_b["last_checkpoint_epoch"] == 1
    with pytest.raises(TaalmError, match="not empty"):
        learn(docs, probes, cfg, tmp_path / "b", model=make_llama(len(tokenizer)), tokenizer=tokenizer,
              options=QUIET)
    resumed = learn(docs, probes, cfg, tmp_path / "b", model=make_llama(len(tokenizer)), tokenizer=tokenizer,
                    options=RunOptions(resume=True, progress=False, log=lambda m: None))
    a, b = snapshot(straight.model), snapshot(resumed.model)
    for n in a:
        assert torch.equal(a[n], b[n]), n
    timeless = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert timeless(straight.history) == timeless(resumed.history)  # accuracy and NLL, bit for bit
    assert len(straight.history) == 4  # before + 3 epochs

    out = tmp_path / "a"
    names = {p.name for p in out.iterdir()}
    assert {"config.yaml", "run.json", "metrics.jsonl", "summary.json", "adapter", "accuracy.png", "eval"} <= names
    assert "checkpoints" not in names  # a completed run keeps θ, not its resume state
    with pytest.raises(TaalmError, match="completed and removed its checkpoints"):
        learn(docs, probes, cfg_for("train.epochs=4", "theta.lora.dropout=0.1"), out, model=make_llama(len(tokenizer)),
              tokenizer=tokenizer, options=RunOptions(resume=True, progress=False, log=lambda m: None))
    kept = learn(docs, probes, cfg_for("train.epochs=1", "train.keep_checkpoints=true"), tmp_path / "c",
                 model=make_llama(len(tokenizer)), tokenizer=tokenizer, options=QUIET)
    assert kept.steps and (tmp_path / "c" / "checkpoints").is_dir()
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "complete" and run["device"] == "cpu" and run["versions"]["torch"]
    assert "git_commit" in run and run["config"]["train"]["epochs"] == 3
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    assert not list(out.rglob("*.bin")) and not list(out.rglob("*.pt")) and not list(out.rglob("*.pkl"))
    steps = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert {s["type"] for s in steps} == {"step", "eval"}
    resumed_steps = [json.loads(line) for line in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [s.get("step") for s in resumed_steps] == [s.get("step") for s in steps]


def test_bad_input_writes_nothing(tmp_path, tokenizer):
    p = tmp_path / "d.jsonl"
    p.write_text('{"text": "no answer here"}\n')
    with pytest.raises(InputError, match="d.jsonl, line 1, field 'answer': method 'oracle' needs"):
        learn(read_documents(p), None, cfg_for("method.name=oracle"), tmp_path / "out", model=make_llama(len(tokenizer)), tokenizer=tokenizer,
              options=QUIET)
    assert not (tmp_path / "out").exists()


def test_rho1_trains(tokenizer, docs_file, probes_file, tmp_path):
    """RHO-1 trains on ~ratio of the tokens of each step (the rest weigh 0) and moves θ."""
    res = learn(read_documents(docs_file), read_probes(probes_file), cfg_for("method.name=rho1"), tmp_path / "r", model=make_llama(len(tokenizer)), tokenizer=tokenizer,
                options=QUIET)
    assert len(res.history) == 3 and res.steps == 4
    steps = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in steps if r["type"] == "step"]
    for r in steps:  # weights are 0/1 and k = round(0.4 · n_valid) of them are 1
        assert r["mean_weight"] * r["tokens"] == pytest.approx(max(1, round(0.4 * r["tokens"])), abs=1e-6)
    assert any(float(p.detach().abs().sum()) > 0 for n, p in res.model.named_parameters() if "lora_B" in n)


def test_gradient_checkpointing_recomputes_to_the_same_update(tokenizer, docs_file):
    """``train.gradient_checkpointing`` changes memory, not the result: the adapters equal a run
    without it (float64); a θ form that cannot recompute is refused before training."""
    docs = read_documents(docs_file)
    quiet = dict(tokenizer=tokenizer, options=QUIET)
    plain = learn(docs, None, cfg_for("model.dtype=fp64"), model=make_llama(len(tokenizer)).double(), **quiet)
    ckpt = learn(docs, None, cfg_for("model.dtype=fp64", "train.gradient_checkpointing=true"),
                 model=make_llama(len(tokenizer)).double(), **quiet)
    def on(m):
        return any(getattr(mod, "gradient_checkpointing", False) is True for mod in m.modules())

    assert on(ckpt.model) and not on(plain.model)
    for (n, p), q in zip(plain.model.named_parameters(), ckpt.model.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-12, msg=n)
    with pytest.raises(Exception, match="cannot recompute activations"):
        learn(docs, None, cfg_for("theta.mode=kadapter", "train.gradient_checkpointing=true"),
              model=make_llama(len(tokenizer)), **quiet)


@pytest.mark.parametrize("mode", ["lora", "kadapter", "full"])
def test_a_bf16_base_trains_float32_parameters_and_optimizer_state(mode, tokenizer, docs_file):
    """Mixed precision: on a bf16 base what trains and the AdamW moments are float32; the frozen
    base stays bf16 (LoRA, K-Adapter); full θ keeps float32 master weights under bf16 autocast."""
    model = make_llama(len(tokenizer)).to(torch.bfloat16)
    res = learn(read_documents(docs_file), None, cfg_for(f"theta.mode={mode}", "model.dtype=bf16"), model=model, tokenizer=tokenizer,
                options=QUIET)
    trainable = [p for p in res.model.parameters() if p.requires_grad]
    frozen = [p for p in res.model.parameters() if not p.requires_grad]
    assert trainable and {p.dtype for p in trainable} == {torch.float32}
    moments = [v for s in res.optimizer.state.values() for k, v in s.items() if k in ("exp_avg", "exp_avg_sq")]
    assert len(moments) == 2 * len(trainable) and {v.dtype for v in moments} == {torch.float32}
    assert {p.dtype for p in frozen} == ({torch.bfloat16} if mode != "full" else set())
    assert all(torch.isfinite(p).all() for p in trainable)


def test_a_users_peft_model_is_theta_as_it_is_and_recorded(tmp_path, tokenizer, docs_file):
    """A PeftModel built by the user (here loaded for inference, adapters frozen) is used as θ,
    not wrapped again; its adapter trains; config.yaml records its adapter and the passed model."""
    import copy

    import yaml
    from peft import LoraConfig, PeftModel, get_peft_model

    torch.manual_seed(0)
    user = get_peft_model(make_llama(len(tokenizer)), LoraConfig(r=2, lora_alpha=6, target_modules=["q_proj", "v_proj"]))
    user.save_pretrained(tmp_path / "ad")
    model = PeftModel.from_pretrained(make_llama(len(tokenizer)), tmp_path / "ad")  # is_trainable=False
    model.base_model.model.config._name_or_path = "my-org/tiny-llama"
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    tok = copy.deepcopy(tokenizer)
    cfg = load_config(LearnConfig, None, ["train.epochs=2", "train.lr=5e-3", "train.batch_size=2"])  # theta.lora unset
    res = learn(read_documents(docs_file), None, cfg, tmp_path / "run", model=model, tokenizer=tok,
                options=QUIET)
    assert res.model is model and not isinstance(model.base_model.model, PeftModel)  # not wrapped twice
    moved = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert moved and all("lora_B" in n or "lora_A" in n for n in moved)
    assert any("q_proj.lora_B" in n for n in moved) and not any("k_proj" in n for n in moved)
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["model"]["name"] == "my-org/tiny-llama"
    assert saved["theta"]["lora"]["r"] == 2 and saved["theta"]["lora"]["alpha"] == 6.0
    assert saved["theta"]["lora"]["target_modules"] == ["q_proj", "v_proj"]


def test_a_tokenizer_without_pad_token_pads_with_eos(tokenizer, docs_file, probes_file):
    import copy

    tok = copy.deepcopy(tokenizer)
    tok.pad_token = None
    assert tok.pad_token_id is None and tok.eos_token is not None
    said = []
    res = learn(read_documents(docs_file), read_probes(probes_file), cfg_for(), model=make_llama(len(tokenizer)), tokenizer=tok,
                options=RunOptions(progress=False, log=said.append))
    assert tok.pad_token == tok.eos_token and any("no pad token" in m for m in said)
    assert res.history[-1]["nll"] < res.history[0]["nll"]
    tok2 = copy.deepcopy(tokenizer)
    tok2.pad_token = tok2.eos_token = tok2.unk_token = None
    with pytest.raises(TaalmError, match="no pad, EOS or UNK token"):
        learn(read_documents(docs_file), None, cfg_for(), model=make_llama(len(tokenizer)), tokenizer=tok2,
              options=QUIET)
