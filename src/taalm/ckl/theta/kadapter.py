"""θ form ``kadapter``: a frozen base plus a small stack of adapter blocks (K-Adapter, Wang et al.
2021, as the CKL paper uses it).

Block i reads the base's hidden state after layer ``layers[i]`` (default: layer 1, the middle one
and the last, as the TAALM release does), projects it to ``width``, adds the previous block's
output, and applies LayerNorm → causal self-attention → MLP with residuals. The last block's
output goes back to the base's width; the logits are

    logits = head(h_final + scale · LayerNorm(up(adapter output)))

with h_final the base's final hidden state (after its last norm) and head its LM head. The base
never changes (its parameters are frozen; tested bit for bit), so with ``scale = 0`` the model is
the base. The output LayerNorm's gain starts at 0, so the untrained adapter adds nothing and θ0 is
the base too (the first version started from base + LayerNorm(random), which cost SmolLM2 70% of
its Not-To-Forget facts before any training); its first step moves the gain, the next ones
everything. Saved as ``kadapter/adapter.safetensors`` + ``kadapter/kadapter_config.json``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...core.config import Rules, option
import json
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

from ...core.errors import ConfigError, ModelLoadError
from .base import THETA_FORMS, ThetaForm


class AdapterBlock(nn.Module):
    """in: base hidden [B, T, H] and the previous block's output [B, T, W]; out: [B, T, W]."""

    def __init__(self, hidden: int, width: int, heads: int, dropout: float):
        super().__init__()
        self.down = nn.Linear(hidden, width)
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))
        self.heads, self.drop = heads, nn.Dropout(dropout)

    def forward(self, h: torch.Tensor, prev: torch.Tensor | None, allowed: torch.Tensor) -> torch.Tensor:
        x = self.down(h) + (prev if prev is not None else 0.0)
        B, T, W = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(B, T, 3, self.heads, W // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed[:, None])  # [B, heads, T, W/heads]
        x = x + self.drop(self.proj(a.transpose(1, 2).reshape(B, T, W)))
        return x + self.drop(self.mlp(self.ln2(x)))


class KAdapterModel(nn.Module):
    """The base (frozen) with the adapter stack; ``forward`` returns an object with ``.logits``."""

    def __init__(self, base: nn.Module, cfg: KAdapterConfig):
        super().__init__()
        self.base, self.config = base, base.config
        n_layers = base.config.num_hidden_layers
        layers = list(cfg.layers) or sorted({1 % n_layers, n_layers // 2, n_layers - 1})
        if any(not -n_layers <= i < n_layers for i in layers):
            raise ConfigError(f"theta.kadapter.layers={layers}: the base has {n_layers} layers", "theta.kadapter.layers")
        self.layers = [i % n_layers for i in layers]
        self.kcfg = KAdapterConfig(**{**vars(cfg), "layers": self.layers})
        H = base.config.hidden_size
        self.blocks = nn.ModuleList(AdapterBlock(H, cfg.width, cfg.heads, cfg.dropout) for _ in self.layers)
        self.up = nn.Linear(cfg.width, H)
        self.norm = nn.LayerNorm(H)
        nn.init.zeros_(self.norm.weight)  # θ0 = the base exactly (as LoRA's B = 0): CKL starts from what it knows
        for p in self.base.parameters():
            p.requires_grad_(False)

    def get_input_embeddings(self):
        return self.base.get_input_embeddings()

    def forward(self, input_ids, attention_mask=None, position_ids=None, **_ignored):
        """``logits_to_keep`` and other keywords are ignored: all logits are returned."""
        out = self.base.base_model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                                   output_hidden_states=True)
        hs = out.hidden_states  # embeddings, then one entry per layer (the last after the final norm)
        T = input_ids.shape[1]
        key_ok = (attention_mask if attention_mask is not None else torch.ones_like(input_ids)).bool()
        causal = torch.ones(T, T, dtype=torch.bool, device=input_ids.device).tril()
        allowed = (causal[None] & key_ok[:, None, :]) | torch.eye(T, dtype=torch.bool, device=input_ids.device)[None]
        x = None
        for block, layer in zip(self.blocks, self.layers):
            x = block(hs[layer + 1].to(self.up.weight.dtype), x, allowed)  # the blocks run in their own dtype
        final = hs[-1]
        mixed = final + self.kcfg.scale * self.norm(self.up(x)).to(final.dtype)
        return SimpleNamespace(logits=self.base.get_output_embeddings()(mixed))

    def adapter_state(self) -> dict[str, torch.Tensor]:
        return {n: p for n, p in self.named_parameters() if not n.startswith("base.")}


@dataclass
class KAdapterConfig:
    """The ``kadapter`` θ form: a frozen base plus a small stack of adapter blocks (K-Adapter)."""

    layers: list[int] = option(factory=list, help="base layers the blocks read; [] = [1, middle, last]")
    width: int = option(128, "the blocks' hidden size")
    heads: int = option(4, "attention heads per block")
    dropout: float = option(0.0, "dropout inside the blocks")
    scale: float = option(1.0, "logits = head(h_base + scale · LayerNorm(adapter output))")

    def _rules(self, r: Rules) -> None:
        r.at_least("width", 1)
        r.at_least("heads", 1)
        r.need(self.width % max(self.heads, 1) == 0, "width", f"must be a multiple of theta.kadapter.heads={self.heads}")
        r.finite("dropout", 0.0, 1.0, high_open=True)
        r.finite("scale")


@THETA_FORMS.register("kadapter", config=KAdapterConfig)
class KAdapter(ThetaForm):
    """K-Adapter: a frozen base + adapter blocks reading its hidden states (theta.kadapter.*)."""

    def prepare(self, model):
        if isinstance(model, KAdapterModel):  # prepared by an earlier learn(): continue it
            return model
        torch.manual_seed(self.seed)  # the blocks' initialisation is part of θ0: reproducible
        base_param = next(model.parameters())
        return KAdapterModel(model, self.cfg.kadapter).to(device=base_param.device)

    def save(self, model, tokenizer, folder: Path) -> Path:
        from ...core.files import atomic_write_json, save_tensors

        out = Path(folder) / "kadapter"
        save_tensors(out / "adapter.safetensors", model.adapter_state())
        atomic_write_json(out / "kadapter_config.json", vars(model.kcfg))
        return out


def load_kadapter(base: nn.Module, folder: str | Path) -> KAdapterModel:
    """The K-Adapter model saved in ``folder`` (a run folder or its ``kadapter/``) on ``base``."""
    from ...core.files import load_tensors

    folder = Path(folder)
    folder = folder / "kadapter" if (folder / "kadapter").is_dir() else folder
    try:
        cfg = KAdapterConfig(**json.loads((folder / "kadapter_config.json").read_text()))
        model = KAdapterModel(base, cfg)
        saved = load_tensors(folder / "adapter.safetensors")
    except (OSError, ValueError, TypeError) as e:
        raise ModelLoadError(f"{folder}: not a K-Adapter folder ({e})") from None
    own = model.adapter_state()
    if set(saved) != set(own):
        raise ModelLoadError(f"{folder}: the adapter does not fit this base model")
    with torch.no_grad():
        for n, p in own.items():
            p.copy_(saved[n])
    return model.to(next(base.parameters()).device)
