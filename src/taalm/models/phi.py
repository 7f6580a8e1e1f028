"""The Train-Attention model φ (SPEC 2.2): a causal LM backbone + a 1-output head + sigmoid.

φ reads a document and gives every token a weight in (0, 1) for θ's token-weighted loss
(:mod:`taalm.ckl.loss`). Weights are **aligned with the tokens** exactly like the loss: the weight at
position t weighs ℓ_t = −log p_θ(x_t | x_<t), and it is computed from φ's last hidden state at
position t (φ is causal: it has seen x_0..x_t).

* Architecture: the backbone of a causal LM (``lm.base_model``: LlamaModel, GPT2Model, ...; the
  LM head is dropped), then ``head = Linear(hidden, 1)`` with bias ``head_bias`` (4.0: all
  weights start ≈ 0.982) and a small random weight (``head_std``), then a sigmoid.
* Trainable: the head plus LoRA adapters on the frozen backbone (``mode="lora"``), or the head
  plus the whole backbone (``mode="full"``).
* Different tokenizers: φ may tokenise differently from θ. φ's weights are mapped onto θ's
  tokens through character offsets (:func:`offset_map`, :func:`gather_weights`): a θ token takes
  the mean (or max) of the weights of the φ tokens whose character spans overlap its own.
  Identical tokenizations take an identity fast path.
* Long documents (more than ``max_length`` φ tokens) are read in overlapping windows
  (:func:`taalm.data.split_windows`): each φ token's weight comes from the one window in which it
  has at least ``stride`` tokens of left context (or all the context there is).
* Save/load: safetensors of the trainable tensors only + ``phi_config.json``; never pickle.

Attention implementation: the meta-gradient (SPEC 2.3) differentiates θ twice, never φ — φ is
only differentiated once (``w.backward(grad_w)``), so φ may use any attention implementation
(SDPA, flash, eager): nothing here forces eager attention.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch
from torch import nn

from ..core.config import PHI_MODES, PHI_REDUCTIONS as REDUCTIONS, LoraConfig, PhiConfig, from_dict, to_dict
from ..data import Document, Encoded, encode_document, pad_sequences, split_windows
from ..core.errors import ConfigError, ModelLoadError, TaalmError
from .loading import import_peft

PHI_FORMAT = "taalm-train-attention"
PHI_FORMAT_VERSION = 1
PHI_CONFIG_FILE = "phi_config.json"
PHI_TENSORS_FILE = "phi.safetensors"


# --------------------------------------------------------------------------------------------
# Where a trained φ comes from
# --------------------------------------------------------------------------------------------
def default_phi_checkpoint() -> str | None:
    """The φ shipped with the package: the one place that names the default checkpoint.

    ``taalm/phi_default/``: Train-Attention for SmolLM2-135M (LoRA r=8 + sigmoid head, float16
    tensors, 4.9 MB), meta-trained only on the T-REx φ pool of ``taalm data pool`` (LAMA-ckl units
    excluded, so never on To-Learn or Not-To-Forget units) with ``recipes/phi_smollm2_trex.yaml``;
    its training log and validation are in ``benchmarks/results/phi_trex_smollm2/``, its
    provenance in the folder's README (data licence CC BY-NC 4.0). None if the folder is missing
    (a trimmed install), in which case ``method.taalm.checkpoint`` is required.
    """
    folder = Path(__file__).resolve().parent.parent / "phi_default"
    return str(folder) if (folder / PHI_TENSORS_FILE).is_file() else None


def _base_origin(base: str, backbone) -> str | None:
    """Where a base given as a local folder came from (its config's ``_name_or_path`` when that
    is a hub name, not a path): stored beside ``base`` so that a φ moved to another machine says
    which model to fetch for ``method.taalm.base``. None when ``base`` is already portable."""
    if not (Path(str(base)).expanduser().is_dir() or str(base).endswith(".gguf")):
        return None  # an embedded or hub name: portable as it is
    origin = str(getattr(getattr(backbone, "config", None), "_name_or_path", "") or "")
    return origin if origin and not Path(origin).expanduser().exists() and not origin.startswith((".", "/", "~")) else None


def phi_base(folder: str | Path) -> tuple[str, str | None]:
    """(base, base_origin) recorded in a φ folder's ``phi_config.json`` (no model is loaded)."""
    meta = json.loads((Path(folder) / PHI_CONFIG_FILE).read_text(encoding="utf-8"))
    return str(meta.get("config", {}).get("base") or meta.get("base") or ""), meta.get("base_origin")


def resolve_phi_checkpoint(checkpoint: str | Path | None) -> Path:
    """The φ folder to load: ``checkpoint``, else :func:`default_phi_checkpoint`.

    Raises :class:`ConfigError` (key ``method.taalm.checkpoint``) when there is none, or when the
    folder holds no saved φ.
    """
    if checkpoint is None or str(checkpoint).strip() == "":
        checkpoint = default_phi_checkpoint()
    if checkpoint is None:
        raise ConfigError("method 'taalm' needs a trained Train-Attention model φ: pass "
                          "method.taalm.checkpoint=DIR (a folder written by "
                          "TrainAttention.save_pretrained)", "method.taalm.checkpoint")
    folder = Path(checkpoint).expanduser()
    if not (folder / PHI_CONFIG_FILE).is_file():
        what = "does not exist" if not folder.exists() else f"has no {PHI_CONFIG_FILE}"
        raise ConfigError(f"method.taalm.checkpoint={checkpoint}: the folder {what} (expected a φ "
                          f"folder written by TrainAttention.save_pretrained)",
                          "method.taalm.checkpoint")
    return folder


# --------------------------------------------------------------------------------------------
# Mapping φ's tokens onto θ's tokens through character offsets
# --------------------------------------------------------------------------------------------
def overlap_index(theta_offsets, phi_offsets) -> tuple[torch.Tensor, torch.Tensor]:
    """For every θ token, the φ tokens whose character spans overlap its own.

    Returns ``(index [n_theta, K] long, valid [n_theta, K] bool)``: row i lists the φ token
    indices of θ token i (padded with a valid index, ``valid`` False there). Spans ``(s, e)``
    overlap when ``s_φ < e_θ`` and ``e_φ > s_θ``; empty spans (special tokens such as BOS, or
    tokens without characters) overlap nothing.

    A θ token that overlaps no φ token (an empty span, e.g. θ's BOS, or a gap) takes the row of
    the nearest *preceding* θ token that has one, else of the nearest *following* one. If no θ
    token overlaps any φ token (e.g. a text of special tokens only), every θ token takes all φ
    tokens.
    """
    import numpy as np

    n_theta, n_phi = len(theta_offsets), len(phi_offsets)
    if n_phi == 0:
        raise ValueError("φ's tokenization is empty: nothing to map onto θ's tokens")
    ts = np.array([o[0] for o in theta_offsets], dtype=np.int64).reshape(-1)
    te = np.array([o[1] for o in theta_offsets], dtype=np.int64).reshape(-1)
    ps = np.array([o[0] for o in phi_offsets], dtype=np.int64)
    pe = np.array([o[1] for o in phi_offsets], dtype=np.int64)
    real = np.nonzero(pe > ps)[0]  # φ tokens that cover characters
    rs, re_ = ps[real], pe[real]
    rows: list[list[int] | None] = [None] * n_theta
    monotone = bool(np.all(np.diff(rs) >= 0) and np.all(np.diff(re_) >= 0))
    for i in range(n_theta):
        s, e = int(ts[i]), int(te[i])
        if e <= s or len(real) == 0:
            continue
        if monotone:  # the usual case: one binary search per θ token
            lo = int(np.searchsorted(re_, s, side="right"))  # first with end > s
            hi = int(np.searchsorted(rs, e, side="left"))  # first with start >= e
            hits = real[lo:hi]
        else:  # pragma: no cover - offsets out of order (unusual tokenizers)
            hits = real[(rs < e) & (re_ > s)]
        if len(hits):
            rows[i] = hits.tolist()
    have = [i for i, r in enumerate(rows) if r is not None]
    if not have:
        rows = [list(range(n_phi))] * n_theta
    else:
        prev = None
        for i in range(n_theta):  # nearest preceding θ token with a φ overlap ...
            if rows[i] is not None:
                prev = rows[i]
            elif prev is not None:
                rows[i] = prev
        first = rows[have[0]]
        rows = [r if r is not None else first for r in rows]  # ... else the next one
    k = max(len(r) for r in rows) if rows else 1
    index = torch.zeros(n_theta, k, dtype=torch.long)
    valid = torch.zeros(n_theta, k, dtype=torch.bool)
    for i, r in enumerate(rows):
        index[i, :len(r)] = torch.tensor(r, dtype=torch.long)
        index[i, len(r):] = r[0]
        valid[i, :len(r)] = True
    return index, valid


def offset_map(theta_offsets, phi_offsets, reduction: str = "mean") -> torch.Tensor:
    """The map from φ's tokens to θ's tokens, as a dense ``[n_theta, n_phi]`` matrix.

    * ``"mean"``: a row-stochastic float32 matrix M; θ token i gets ``(M @ w_phi)[i]``, the mean
      of the weights of the φ tokens whose character spans overlap its own.
    * ``"max"``: a max is not a linear map, so this returns the boolean membership matrix
      (``M[i, j]`` = φ token j belongs to θ token i); apply it with :func:`gather_weights`
      (a differentiable gather + amax), which is also what :class:`TrainAttention` uses for both
      reductions (it never builds the dense matrix: memory O(n_theta · K)).

    θ tokens without an overlapping φ token follow the rule of :func:`overlap_index` (nearest
    preceding θ token that has one, else the next one).
    """
    if reduction not in REDUCTIONS:
        raise ConfigError(f"unknown reduction '{reduction}' (use {' or '.join(REDUCTIONS)})", "reduction")
    index, valid = overlap_index(theta_offsets, phi_offsets)
    member = torch.zeros(len(theta_offsets), len(phi_offsets), dtype=torch.bool)
    rows = torch.arange(len(theta_offsets)).unsqueeze(1).expand_as(index)
    member[rows[valid], index[valid]] = True  # (not scatter_: padded slots repeat an index)
    if reduction == "max":
        return member
    m = member.float()
    return m / m.sum(dim=1, keepdim=True)


def gather_weights(phi_weights: torch.Tensor, index: torch.Tensor, valid: torch.Tensor,
                   reduction: str = "mean") -> torch.Tensor:
    """θ-token weights ``[n_theta]`` from φ-token weights ``[n_phi]`` (differentiable).

    ``index``/``valid`` come from :func:`overlap_index`. ``mean``: the mean over each row's φ
    tokens; ``max``: their maximum (the gradient goes to the arg-max φ token; ties share it).
    """
    index = index.to(phi_weights.device)
    valid = valid.to(phi_weights.device)
    g = phi_weights[index]  # [n_theta, K]
    if reduction == "mean":
        v = valid.to(g.dtype)
        return (g * v).sum(dim=1) / v.sum(dim=1)
    if reduction == "max":
        return g.masked_fill(~valid, float("-inf")).amax(dim=1)
    raise ConfigError(f"unknown reduction '{reduction}' (use {' or '.join(REDUCTIONS)})", "reduction")


# --------------------------------------------------------------------------------------------
# φ
# --------------------------------------------------------------------------------------------
def _backbone_of(model) -> nn.Module:
    """The transformer without its LM head: HF's ``base_model`` (LlamaModel, GPT2Model, ...)."""
    base = getattr(model, "base_model", None)
    if base is None or (base is model and getattr(model, "get_output_embeddings", lambda: None)() is not None):
        raise TaalmError(f"cannot find the backbone (base_model) of {type(model).__name__}")
    return base


def _hidden_size(backbone) -> int:
    cfg = backbone.config
    for key in ("hidden_size", "n_embd", "d_model"):
        if isinstance(getattr(cfg, key, None), int):
            return getattr(cfg, key)
    raise TaalmError(f"cannot read the hidden size of {type(backbone).__name__}")


def keep_first_layers(backbone: nn.Module, n: int) -> None:
    """Cut ``backbone`` to its first ``n`` decoder layers, in place (its final norm stays): a φ
    that reads shallower hidden states costs less per token. HF decoders keep their layers in a
    ``ModuleList`` named ``layers`` (Llama, Mistral, Qwen...) or ``h`` (GPT-2); the config's layer
    count (and per-layer lists such as ``layer_types``) are cut with them."""
    for name in ("layers", "h"):
        layers = getattr(backbone, name, None)
        if isinstance(layers, nn.ModuleList):
            break
    else:
        raise ConfigError(f"phi.layers: cannot find the decoder layers of {type(backbone).__name__}", "layers")
    if not 0 < n <= len(layers):
        raise ConfigError(f"phi.layers={n}: the backbone has {len(layers)} decoder layers", "layers")
    setattr(backbone, name, nn.ModuleList(list(layers)[:n]))
    cfg = backbone.config
    for key in ("num_hidden_layers", "n_layer"):
        if isinstance(getattr(cfg, key, None), int):
            setattr(cfg, key, n)
    if isinstance(getattr(cfg, "layer_types", None), list):
        cfg.layer_types = cfg.layer_types[:n]


def loss_feature(losses: torch.Tensor) -> torch.Tensor:
    """f_t = log max(ℓ_t, 1e-4) of θ0's per-token losses (aligned with the tokens), 0 at position
    0 (no loss there): from ≈ −9.2 for a token θ0 already predicts to ≈ 2.5 for a surprising one."""
    f = torch.log(losses.detach().float().clamp_min(1e-4))
    if len(f):
        f[0] = 0.0
    return f


def _inject_lora(backbone: nn.Module, lcfg: LoraConfig, seed: int) -> None:
    """Freeze ``backbone`` and add LoRA adapters (peft) in place; adapters are trainable."""
    import_peft()
    from peft import LoraConfig as PeftLoraConfig, inject_adapter_in_model
    from transformers.pytorch_utils import Conv1D

    if any("lora_" in n for n, _ in backbone.named_parameters()):
        raise TaalmError("the base model already carries LoRA adapters: pass a fresh base model")
    for p in backbone.parameters():
        p.requires_grad_(False)
    targets = lcfg.target_modules
    target = "all-linear" if list(targets) == ["all-linear"] else list(targets)
    conv1d = any(isinstance(m, Conv1D) for m in backbone.modules())  # GPT-2 stores W transposed
    pcfg = PeftLoraConfig(r=lcfg.r, lora_alpha=lcfg.alpha, lora_dropout=lcfg.dropout,
                          target_modules=target, bias="none", fan_in_fan_out=conv1d)
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*fan_in_fan_out.*")
        torch.manual_seed(seed)  # LoRA A matrices are random: φ0 is reproducible
        try:
            inject_adapter_in_model(pcfg, backbone)
        except ValueError as e:
            raise ConfigError(f"phi.lora.target_modules={targets}: {e}", "lora.target_modules") from None
    for n, p in backbone.named_parameters():
        p.requires_grad_("lora_" in n)


class TrainAttention(nn.Module):
    """Train-Attention φ: ``weights = sigmoid(head(backbone(x)))``, one weight per token.

    Build it from a loaded causal LM and its tokenizer (``TrainAttention(model, tokenizer,
    cfg)``, tests pass tiny models), from a config (:meth:`from_config` loads ``cfg.base``
    through :func:`taalm.models.loading.load_model`), or from a saved folder (:meth:`from_pretrained`).
    The LM head of ``model`` is not kept.
    """

    def __init__(self, model: nn.Module, tokenizer, cfg: PhiConfig | None = None):
        super().__init__()
        cfg = cfg or PhiConfig()
        if cfg.mode not in PHI_MODES:
            raise ConfigError(f"unknown phi mode '{cfg.mode}' (use {' or '.join(PHI_MODES)})", "mode")
        if cfg.reduction not in REDUCTIONS:
            raise ConfigError(f"unknown reduction '{cfg.reduction}' (use {' or '.join(REDUCTIONS)})",
                              "reduction")
        if not 0 <= cfg.stride < cfg.max_length:
            raise ConfigError(f"phi stride ({cfg.stride}) must be in [0, max_length={cfg.max_length})",
                              "stride")
        if not getattr(tokenizer, "is_fast", False):
            raise TaalmError("φ needs a fast (Rust) tokenizer for character offsets")
        self.cfg = cfg
        self.tokenizer = tokenizer
        self.backbone = _backbone_of(model)
        if cfg.layers:
            keep_first_layers(self.backbone, cfg.layers)
        self.hidden_size = _hidden_size(self.backbone)
        ref = next(self.backbone.parameters())
        # the head works in float32 whatever the backbone's dtype (bf16 on accelerators), or in
        # float64 on a float64 backbone (gradient checks)
        head_dtype = torch.float64 if ref.dtype == torch.float64 else torch.float32
        self.head = nn.Linear(self.hidden_size, 1, device=ref.device, dtype=head_dtype)
        gen = torch.Generator().manual_seed(cfg.seed)
        with torch.no_grad():
            self.head.weight.copy_(torch.randn(1, self.hidden_size, generator=gen) * cfg.head_std)
            self.head.bias.fill_(cfg.head_bias)
        self.loss_head = None
        if cfg.features == "loss":  # z_t += (u·h_t + a) · log ℓ_t(θ0); u = a = 0 at the start: φ0 unchanged
            self.loss_head = nn.Linear(self.hidden_size, 1, device=ref.device, dtype=head_dtype)
            with torch.no_grad():
                self.loss_head.weight.zero_()
                self.loss_head.bias.zero_()
        elif cfg.features != "text":
            raise ConfigError(f"unknown phi features '{cfg.features}' (use text or loss)", "features")
        if cfg.mode == "lora":
            _inject_lora(self.backbone, cfg.lora, cfg.seed)
        else:
            for p in self.backbone.parameters():
                p.requires_grad_(True)
        self.eval()

    # ---- construction --------------------------------------------------------------------------
    @classmethod
    def from_config(cls, cfg: PhiConfig | None = None, device: str = "auto", dtype: str = "auto",
                    attn: str = "auto", model=None, tokenizer=None) -> "TrainAttention":
        """A fresh φ0 on ``cfg.base`` (loaded with :func:`taalm.models.loading.load_model` unless a
        ``model`` and its ``tokenizer`` are passed)."""
        cfg = cfg or PhiConfig()
        if model is None:
            from .loading import load_model

            model, tokenizer = load_model(cfg.base, device, dtype, attn, with_tokenizer=True)
        elif tokenizer is None:
            raise TaalmError("pass the tokenizer together with the model")
        return cls(model, tokenizer, cfg)

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    def trainable_parameters(self) -> dict[str, nn.Parameter]:
        """name -> parameter for everything φ trains (head + LoRA, or head + whole backbone)."""
        return {n: p for n, p in self.named_parameters() if p.requires_grad}

    # ---- the forward pass ----------------------------------------------------------------------
    @property
    def loss_aware(self) -> bool:
        """φ's head also reads θ0's per-token loss (``phi.features=loss``)."""
        return self.loss_head is not None

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                features: torch.Tensor | None = None) -> torch.Tensor:
        """Weights ``[B, T]`` in (0, 1), float32 (float64 on a float64 φ); position t weighs ℓ_t
        (pads: any value, they are masked later).

        Position ids count the real tokens before each position, so right (and left) padding
        give the real tokens the same weights as an unpadded sequence. A loss-aware φ needs
        ``features`` ``[B, T]``: f_t = log ℓ_t(θ0) (:func:`loss_feature`), and its logit is
        z_t = head(h_t) + loss_head(h_t) · f_t, so how much the base model's surprise counts
        depends on the context φ reads.
        """
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        position_ids = (attention_mask.long().cumsum(dim=1) - 1).clamp_min(0)
        out = self.backbone(input_ids=input_ids, attention_mask=attention_mask,
                            position_ids=position_ids, use_cache=False)
        h = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
        h = h.to(self.head.weight.dtype)
        z = self.head(h).squeeze(-1)
        if self.loss_head is not None:
            if features is None:
                raise TaalmError("this φ is loss-aware (phi.features=loss): pass θ0's token losses")
            z = z + self.loss_head(h).squeeze(-1) * features.to(z.dtype)
        return torch.sigmoid(z)

    def _phi_encode(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        enc = self.tokenizer(text, return_offsets_mapping=True, add_special_tokens=True)
        return list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]

    def _phi_token_weights(self, sequences: list[list[int]], batch_size: int,
                           features: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
        """φ's weight for every token of every sequence (differentiable), windows for long ones;
        ``features``: one per sequence, aligned with its tokens (a loss-aware φ)."""
        cfg = self.cfg
        windows = [w for i, ids in enumerate(sequences)
                   for w in split_windows(i, ids, cfg.max_length, cfg.stride)]
        pieces: list[list[torch.Tensor]] = [[] for _ in sequences]
        for b0 in range(0, len(windows), max(1, batch_size)):
            chunk = windows[b0:b0 + max(1, batch_size)]
            ids, mask = pad_sequences([w.input_ids for w in chunk], self.tokenizer.pad_token_id)
            f = None
            if features is not None:
                f = torch.zeros(ids.shape, dtype=torch.float32)
                for b, w in enumerate(chunk):
                    f[b, :len(w.input_ids)] = features[w.doc_index][w.start:w.start + len(w.input_ids)].float().cpu()
                f = f.to(self.device)
            weights = self(ids.to(self.device), mask.to(self.device), f)
            for b, w in enumerate(chunk):
                own = w.loss_mask.index(1) if 1 in w.loss_mask else len(w.input_ids)
                # the tokens this window owns: those with `stride` tokens of left context
                pieces[w.doc_index].append(weights[b, own:len(w.input_ids)])
        return [torch.cat(p) if len(p) > 1 else p[0] for p in pieces]

    def weights_for_texts(self, texts: list[str], theta_encoded: list[Encoded],
                          batch_size: int = 8, losses: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
        """Per-θ-token weights (differentiable w.r.t. φ's trainable parameters).

        ``theta_encoded[i]`` is θ's tokenization of ``texts[i]`` (ids + character offsets). Each
        text is tokenised with φ's tokenizer, φ runs on it (batched, right padded, windows for
        texts longer than ``max_length``), and φ's weights are mapped onto θ's tokens: identity
        when the two tokenizations are identical, else through character offsets with
        ``cfg.reduction`` (mean or max of the overlapping φ tokens). θ tokens with an empty span
        (BOS and other specials) or no overlapping φ token take the weight of the nearest
        preceding θ token that has one, else of the next one (:func:`overlap_index`).

        A loss-aware φ also needs ``losses``: θ0's per-token losses of each text, aligned with θ's
        tokens (position 0: any value); it requires φ and θ to tokenise identically.

        Returns one float32 tensor ``[len(theta_encoded[i].input_ids)]`` per text, on φ's device.
        """
        if len(texts) != len(theta_encoded):
            raise ValueError(f"{len(texts)} texts but {len(theta_encoded)} θ encodings")
        phi = [self._phi_encode(t) for t in texts]
        features = self._loss_features(phi, theta_encoded, losses)
        w_phi = self._phi_token_weights([ids for ids, _ in phi], batch_size, features)
        out = []
        for (ids, offsets), enc, w in zip(phi, theta_encoded, w_phi):
            if list(enc.input_ids) == ids and [tuple(o) for o in enc.offsets] == offsets:
                out.append(w)  # identical tokenizations: the identity map
                continue
            index, valid = overlap_index(enc.offsets, offsets)
            out.append(gather_weights(w, index, valid, self.cfg.reduction))
        return out

    def _loss_features(self, phi_encoded, theta_encoded, losses) -> list[torch.Tensor] | None:
        """Per-text f = log ℓ(θ0) for a loss-aware φ (None for a text-only φ), checked."""
        if not self.loss_aware:
            return None
        if losses is None or len(losses) != len(theta_encoded):
            raise TaalmError("this φ is loss-aware (phi.features=loss): it needs θ0's token losses of every "
                             "document (the taalm method computes them with θ's model)")
        for (ids, offsets), enc, loss in zip(phi_encoded, theta_encoded, losses):
            if list(enc.input_ids) != ids or len(loss) != len(ids):
                raise ConfigError("phi.features=loss needs φ and θ to tokenise identically (θ0's losses are "
                                  "per θ token); use a text-only φ (phi.features=text) for another θ", "features")
        return [loss_feature(torch.as_tensor(loss)) for loss in losses]

    @torch.no_grad()
    def token_weights(self, texts: list[str], theta_encoded: list[Encoded],
                      batch_size: int = 8, losses: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
        """Inference: :meth:`weights_for_texts` in eval mode, without gradients, on the CPU."""
        was_training = self.training
        self.eval()
        try:
            return [w.detach().float().cpu()
                    for w in self.weights_for_texts(texts, theta_encoded, batch_size, losses)]
        finally:
            self.train(was_training)

    def weights(self, documents: list[Document], theta_tokenizer=None,
                batch_size: int = 8) -> list[torch.Tensor]:
        """One float32 tensor per document: a weight for every token of θ's tokenization
        (``encode_document(theta_tokenizer, doc).input_ids``; default tokenizer: φ's own)."""
        tok = theta_tokenizer if theta_tokenizer is not None else self.tokenizer
        encoded = [encode_document(tok, d) for d in documents]
        return self.token_weights([d.text for d in documents], encoded, batch_size)

    # ---- saving and loading ----------------------------------------------------------------------
    def save_pretrained(self, folder: str | Path) -> Path:
        """Write ``phi.safetensors`` (the trainable tensors only: LoRA + head, or the whole
        backbone + head in full mode) and ``phi_config.json``; each file atomically, the JSON
        last (a folder with a config is complete). Never pickle."""
        from ..core.files import atomic_write_json, save_tensors

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tensors = self.trainable_parameters()
        save_tensors(folder / PHI_TENSORS_FILE, tensors,
                     metadata={"format": "pt", "taalm": PHI_FORMAT, "version": str(PHI_FORMAT_VERSION)})
        atomic_write_json(folder / PHI_CONFIG_FILE, {
            "format": PHI_FORMAT,
            "format_version": PHI_FORMAT_VERSION,
            "config": to_dict(self.cfg),
            "base": self.cfg.base,
            **({"base_origin": origin} if (origin := _base_origin(self.cfg.base, self.backbone)) else {}),
            "architecture": type(self.backbone).__name__,
            "hidden_size": self.hidden_size,
            "tokenizer": Path(str(getattr(self.tokenizer, "name_or_path", "") or "")).name,  # no machine paths
            "vocab_size": len(self.tokenizer),
            "tensors": PHI_TENSORS_FILE,
            "n_tensors": len(tensors),
        })
        return folder

    @classmethod
    def from_pretrained(cls, folder: str | Path, device: str = "auto", dtype: str = "auto",
                        model=None, tokenizer=None, attn: str = "auto", base: str | None = None) -> "TrainAttention":
        """Load a φ written by :meth:`save_pretrained`: the base ``config.base`` (or ``base``, a copy
        of the same model elsewhere) through :func:`taalm.models.loading.load_model` (or the passed
        ``model`` + ``tokenizer``), LoRA re-applied, then the saved tensors. Missing files, another
        format or mismatching tensors raise :class:`ModelLoadError` naming the folder."""
        from ..core.files import load_tensors

        folder = Path(folder)
        cfg_path = folder / PHI_CONFIG_FILE
        if not cfg_path.is_file():
            raise ModelLoadError(f"{folder}: not a saved Train-Attention model (no {PHI_CONFIG_FILE})")
        try:
            meta = json.loads(cfg_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ModelLoadError(f"{cfg_path}: not valid JSON ({e})") from None
        if not isinstance(meta, dict) or meta.get("format") != PHI_FORMAT:
            raise ModelLoadError(f"{cfg_path}: not a Train-Attention config (format {PHI_FORMAT!r} expected)")
        if int(meta.get("format_version", 0)) > PHI_FORMAT_VERSION:
            raise ModelLoadError(f"{folder}: written by a newer taalm (format version "
                                 f"{meta['format_version']} > {PHI_FORMAT_VERSION}); upgrade taalm")
        try:
            cfg = from_dict(PhiConfig, meta.get("config", {}), where=f"{cfg_path}: ")
        except ConfigError as e:
            raise ModelLoadError(str(e)) from None
        if base:
            cfg.base = base
        tensor_path = folder / meta.get("tensors", PHI_TENSORS_FILE)
        if not tensor_path.is_file():
            raise ModelLoadError(f"{folder}: {tensor_path.name} is missing (the φ folder is incomplete)")
        if model is None:
            from .loading import load_model

            model, tokenizer = load_model(cfg.base, device, dtype, attn, with_tokenizer=True)
        elif tokenizer is None:
            raise TaalmError("pass the tokenizer together with the model")
        phi = cls(model, tokenizer, cfg)
        if meta.get("hidden_size") not in (None, phi.hidden_size):
            raise ModelLoadError(f"{folder}: saved for hidden size {meta['hidden_size']}, but the base "
                                 f"model '{cfg.base}' has {phi.hidden_size}")
        if meta.get("vocab_size") not in (None, len(tokenizer)):
            raise ModelLoadError(f"{folder}: saved with a tokenizer of {meta['vocab_size']} tokens, "
                                 f"but the base model's has {len(tokenizer)}")
        try:
            saved = load_tensors(tensor_path)
        except Exception as e:  # safetensors raises its own error types for broken files
            raise ModelLoadError(f"{tensor_path}: cannot read ({e})") from None
        params = phi.trainable_parameters()
        missing, extra = sorted(set(params) - set(saved)), sorted(set(saved) - set(params))
        if missing or extra:
            raise ModelLoadError(f"{folder}: saved tensors do not match this φ "
                                 f"(missing {missing[:3]}{'...' if len(missing) > 3 else ''}, "
                                 f"unexpected {extra[:3]}{'...' if len(extra) > 3 else ''})")
        with torch.no_grad():
            for n, p in params.items():
                if tuple(saved[n].shape) != tuple(p.shape):
                    raise ModelLoadError(f"{folder}: tensor {n} has shape {tuple(saved[n].shape)}, "
                                         f"this φ expects {tuple(p.shape)}")
                p.copy_(saved[n])
        return phi


__all__ = ["TrainAttention", "loss_feature", "keep_first_layers", "offset_map", "overlap_index", "gather_weights",
           "default_phi_checkpoint", "resolve_phi_checkpoint", "PHI_CONFIG_FILE", "PHI_TENSORS_FILE"]
