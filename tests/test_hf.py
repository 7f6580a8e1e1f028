"""Token weights inside Hugging Face Trainer and TRL's SFTTrainer (taalm.hf), on tiny float64 models."""

import copy

import pytest
import torch

datasets = pytest.importorskip("datasets", reason="the datasets extra is not installed")

from conftest import make_gpt2, make_llama  # noqa: E402
from taalm import hf  # noqa: E402
from taalm.ckl.learner import LearnOptions

ROWS = [
    {"text": "The Varnholt Observatory stands above the town of Kestrelford .", "answer": "Kestrelford"},
    {"text": "Quellmere is a small island. The islanders speak Orvish .", "answer": "Orvish"},
    {"text": "The capital of Sennet is Ilvara, a city of stone bridges and old towers.", "answer": "Ilvara"},
    {"text": "Brannock Lake feeds the river Tolle .", "answer": "Tolle"},
]


def _model(tokenizer, arch="gpt2"):
    """A tiny float64 model. GPT-2 computes every op in float64 (Llama's RMSNorm computes in
    float32 even in a float64 model, which turns an equivalent order of operations into 1e-8
    noise); Llama is what Trainer's own token count handles right (for GPT-2 it counts position
    0 of every sequence too, so the plain loss is not a token mean there)."""
    return (make_gpt2 if arch == "gpt2" else make_llama)(len(tokenizer)).double().train()


def _dataset(tokenizer, method="oracle", rows=ROWS):
    ds = datasets.Dataset.from_list(rows)
    return ds.map(hf.token_weights_fn(tokenizer, method), batched=True, batch_size=2, remove_columns=["text", "answer"])


def _args(tmp_path, batch, accum, **kw):
    from transformers import TrainingArguments

    return TrainingArguments(output_dir=str(tmp_path / "out"), per_device_train_batch_size=batch,
                             gradient_accumulation_steps=accum, max_steps=1, learning_rate=1e-2,
                             lr_scheduler_type="constant", report_to=[], save_strategy="no", use_cpu=True,
                             logging_steps=1, seed=0, data_seed=0, **kw)


def _train(cls, model, tokenizer, ds, args, **attrs):
    trainer = cls(model=model, args=args, train_dataset=ds, data_collator=hf.TokenWeightCollator(tokenizer))
    for k, v in attrs.items():
        setattr(trainer, k, v)
    out = trainer.train()
    return out.training_loss, {n: p.detach().clone() for n, p in model.named_parameters()}


def _close(a, b, atol=1e-12):
    return all(torch.allclose(a[k], b[k], rtol=0, atol=atol) for k in a)


def test_all_ones_weights_give_the_plain_trainer_loss_and_update(tmp_path, tokenizer):
    """taalm_normalize="token" with uniform weights is the plain Trainer's causal-LM loss (a token
    mean over the accumulated step; sequences of different lengths, 2 micro-batches of 2) and its
    update. transformers computes its loss on ``logits.float()`` (float32 even for this float64
    model), so the two agree to float32 rounding; a plain SGD step shows it (Adam's first step
    divides by |g| and would magnify rounding in near-zero gradients)."""
    from transformers import Trainer

    ds = _dataset(tokenizer, "finetune")
    assert all(set(w) == {1.0} for w in ds["token_weights"])
    assert len({len(x) for x in ds["input_ids"]}) == 4  # four lengths: a token mean, not a mean of sequence means
    start = _model(tokenizer, "llama")
    args = dict(optim="sgd", max_grad_norm=0.0)  # no clipping: the gradient's scale is compared too
    plain_loss, plain = _train(Trainer, copy.deepcopy(start), tokenizer, ds, _args(tmp_path, 2, 2, **args))
    ours_loss, ours = _train(hf.TokenWeightedTrainer, copy.deepcopy(start), tokenizer, ds,
                             _args(tmp_path, 2, 2, **args), taalm_normalize="token")
    assert ours_loss == pytest.approx(plain_loss, rel=1e-6)
    assert _close(plain, ours, atol=1e-9) and not _close(plain, dict(start.named_parameters()), atol=1e-6)
    _, seq = _train(hf.TokenWeightedTrainer, copy.deepcopy(start), tokenizer, ds, _args(tmp_path, 2, 2, **args))
    assert not _close(seq, ours, atol=1e-9)  # the default ("sequence") is another, per-sequence, normalisation


def test_a_weighted_step_equals_taalms_learner_step(tmp_path, tokenizer):
    """Oracle weights from the dataset map, one Trainer step over 3 sequences: the same θ as
    taalm.learn's step on the same documents (full θ, gradient clipping at 1.0, both in float64).
    A plain SGD step on both sides, so the comparison is of the gradients themselves (Adam's
    first step, g / (|g| + ε), magnifies rounding in near-zero gradients)."""
    from taalm.ckl.learner import learn
    from taalm.core.config import load_config
    from taalm.ckl.config import LearnConfig
    from taalm.data import Document, find_answer

    rows = ROWS[:3]
    ds = _dataset(tokenizer, "oracle", rows)
    assert all(0 < sum(w) < len(w) for w in ds["token_weights"])  # weight on the answers only
    start = _model(tokenizer)
    _, ours = _train(hf.TokenWeightedTrainer, copy.deepcopy(start), tokenizer, ds, _args(tmp_path, 3, 1, optim="sgd"))
    docs = [Document(r["text"], r["answer"], str(i), "", find_answer(r["text"], r["answer"])) for i, r in enumerate(rows)]
    cfg = load_config(LearnConfig, None, ["method.name=oracle", "theta.mode=full", "train.epochs=1", "train.lr=1e-2",
                                          "train.batch_size=3", "train.shuffle=false", "train.max_grad_norm=1.0"])
    theta = copy.deepcopy(start)
    res = learn(docs, None, cfg, model=theta, tokenizer=tokenizer,
                options=LearnOptions(progress=False, log=lambda m: None, optimizer=torch.optim.SGD(theta.parameters(), lr=1e-2)))
    assert res.steps == 1
    theirs = {n: p.detach() for n, p in res.model.named_parameters()}
    assert _close(ours, theirs, atol=1e-15) and not _close(ours, dict(start.named_parameters()), atol=1e-6)


def test_gradient_accumulation_2x2_equals_4x1(tmp_path, tokenizer):
    """The normalisation counts the sequences of the whole accumulated step, so 2 micro-batches
    of 2 give the update of one batch of 4 (both normalisations)."""
    ds = _dataset(tokenizer, "salient")
    start = _model(tokenizer)
    for norm in hf.NORMALIZATIONS:
        l22, p22 = _train(hf.TokenWeightedTrainer, copy.deepcopy(start), tokenizer, ds, _args(tmp_path, 2, 2),
                          taalm_normalize=norm)
        l41, p41 = _train(hf.TokenWeightedTrainer, copy.deepcopy(start), tokenizer, ds, _args(tmp_path, 4, 1),
                          taalm_normalize=norm)
        assert l22 == pytest.approx(l41, rel=1e-6) and _close(p22, p41), norm


def test_trl_sft_trainer_runs_the_weighted_loss(tmp_path, tokenizer):
    trl = pytest.importorskip("trl", reason="TRL is not installed (pip install 'taalm[trl]')")
    ds = _dataset(tokenizer, "oracle")
    start = _model(tokenizer)
    args = trl.SFTConfig(output_dir=str(tmp_path / "sft"), per_device_train_batch_size=2, gradient_accumulation_steps=2,
                         max_steps=1, learning_rate=1e-2, lr_scheduler_type="constant", report_to=[], save_strategy="no",
                         use_cpu=True, seed=0, data_seed=0, dataset_kwargs={"skip_prepare_dataset": True},
                         bf16=False, fp16=False)
    sft = hf.TokenWeightedSFTTrainer(model=copy.deepcopy(start), args=args, train_dataset=ds, processing_class=tokenizer,
                                     data_collator=hf.TokenWeightCollator(tokenizer))
    sft_loss = sft.train().training_loss
    _, plain = _train(hf.TokenWeightedTrainer, copy.deepcopy(start), tokenizer, ds, _args(tmp_path, 2, 2))
    assert torch.isfinite(torch.tensor(sft_loss))
    assert _close({n: p.detach() for n, p in sft.model.named_parameters()}, plain, atol=1e-10)  # the same step


def test_phi_scores_each_document_once_in_the_map(tmp_path, tokenizer, monkeypatch):
    """token_weights_fn loads φ once for all map batches, and the weights are φ's own."""
    from taalm.core.config import PhiConfig
    from taalm.data import Document
    from taalm.models.phi import TrainAttention

    phi = TrainAttention(make_llama(len(tokenizer)), tokenizer, PhiConfig(base="tiny", head_std=0.5))
    with torch.no_grad():
        phi.head.bias.add_(0.3)
    ckpt = phi.save_pretrained(tmp_path / "phi")
    loads = []
    orig = TrainAttention.from_pretrained.__func__

    def counting(cls, *a, **k):
        loads.append(1)
        return orig(cls, *a, model=make_llama(len(tokenizer)), tokenizer=tokenizer,
                    **{x: y for x, y in k.items() if x not in ("model", "tokenizer")})

    monkeypatch.setattr(TrainAttention, "from_pretrained", classmethod(counting))
    ds = datasets.Dataset.from_list(ROWS).map(
        hf.token_weights_fn(tokenizer, "taalm", overrides=[f"method.taalm.checkpoint={ckpt}"], device="cpu"),
        batched=True, batch_size=2)
    assert len(loads) == 1
    expected = phi.weights([Document(r["text"]) for r in ROWS], theta_tokenizer=tokenizer)
    for got, exp in zip(ds["token_weights"], expected):
        assert got == pytest.approx(exp.tolist(), abs=1e-6)
    for dynamic in ("rho1", "dft", "asft", "eaft"):  # weights exist only inside each training forward
        with pytest.raises(Exception, match="weighs tokens from θ's own forward at every step"):
            hf.token_weights_fn(tokenizer, dynamic)


def test_stm_weights_go_through_a_dataset_map(tokenizer):
    """STM is static (θ0's perplexity, read once): the map stores exactly its 0/1 mask."""
    datasets = pytest.importorskip("datasets")
    from taalm.ckl.weighting import document_token_losses
    from taalm.data import encode

    model = make_llama(len(tokenizer))
    fn = hf.token_weights_fn(tokenizer, "stm", overrides=["method.stm.threshold=300"], model=model, device="cpu")
    ds = datasets.Dataset.from_list(ROWS).map(fn, batched=True, batch_size=2)
    enc = [encode(tokenizer, r["text"]) for r in ROWS]
    losses = document_token_losses(model, tokenizer, enc, torch.device("cpu"))
    for got, ell in zip(ds["token_weights"], losses):
        assert got == (ell.exp() <= 300).float().tolist()
    assert 0 < sum(map(sum, ds["token_weights"])) < sum(map(len, ds["token_weights"]))


def test_bad_token_weights_are_refused(tokenizer):
    from taalm.core.errors import TaalmError

    collate = hf.TokenWeightCollator(tokenizer)
    ids = [5, 6, 7, 8]
    for weights, expected in (([1.0, 1.0], "2 token_weights for 4 input_ids"),
                              ([1.0, float("nan"), 1.0, 1.0], "finite and >= 0"),
                              ([1.0, -2.0, 1.0, 1.0], "finite and >= 0")):
        with pytest.raises(TaalmError, match=expected):
            collate([{"input_ids": ids, "token_weights": weights}])
    batch = collate([{"input_ids": ids, "token_weights": [0.5, 1.0, 2.0, 0.0]}])
    assert batch["token_weights"].tolist() == [[0.5, 1.0, 2.0, 0.0]]
    bad = dict(batch, token_weights=batch["token_weights"] * float("nan"))
    with pytest.raises(TaalmError, match="token_weights must be finite"):
        hf._target(bad)  # what the Trainer mixin's compute_loss reads first


def test_an_oracle_answer_missing_from_its_text_is_named(tokenizer):
    from taalm.core.errors import TaalmError

    fn = hf.token_weights_fn(tokenizer, "oracle")
    with pytest.raises(TaalmError, match="'Atlantis' does not occur"):
        fn({"text": [ROWS[0]["text"], ROWS[1]["text"]], "answer": [ROWS[0]["answer"], "Atlantis"]})
