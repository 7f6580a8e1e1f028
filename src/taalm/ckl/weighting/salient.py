"""A rule anyone could write: weight on capitalised words and numbers."""

from __future__ import annotations

from dataclasses import dataclass

from ...core.config import Rules, option
import re

import torch

from ...core.errors import ConfigError
from .base import WEIGHTINGS, PrepareContext, WeightingMethod

# Function words that start sentences with a capital letter but carry no fact.
_CAPITALISED_FUNCTION_WORDS = frozenset(
    "A An The This That These Those It Its He She His Her They Their Them We Our I In On At Of "
    "For From By With As To And But Or If When While After Before During Since Until There Here "
    "Then Also However Although Because Following According".split())
_WORD = re.compile(r"[^\W_]+(?:['’.-][^\W_]+)*")


def salient_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the words the ``salient`` rule keeps: words that start with an
    upper-case letter (minus capitalised function words) and words that contain a digit."""
    spans = []
    for m in _WORD.finditer(text):
        word = m.group()
        if any(c.isdigit() for c in word) or (word[0].isupper() and word not in _CAPITALISED_FUNCTION_WORDS):
            spans.append(m.span())
    return spans


def span_token_mask(offsets: list[tuple[int, int]], spans: list[tuple[int, int]]) -> torch.Tensor:
    """Bool ``[n_tokens]``: the token's characters overlap one of ``spans`` (offsets from a fast
    tokenizer; tokens without characters, e.g. BOS, are never inside)."""
    out = torch.zeros(len(offsets), dtype=torch.bool)
    for i, (s, e) in enumerate(offsets):
        if e > s and any(s < b and e > a for a, b in spans):
            out[i] = True
    return out


@dataclass
class SalientConfig:
    """The `salient` control: a fixed rule, no answers, no meta-training."""

    high: float = option(1.0, "weight of tokens inside capitalised words and numbers")
    low: float = option(0.1, "weight of every other token")

    def _rules(self, r: Rules) -> None:
        r.finite("high", 0.0, 1.0)
        r.finite("low", 0.0, 1.0)


@WEIGHTINGS.register("salient", config=SalientConfig)
class SalientWeights(WeightingMethod):
    """A fixed rule: weight ``high`` on tokens of capitalised words and numbers, ``low`` elsewhere.

    Why this rule: a fact in an encyclopaedic sentence is mostly carried by its named entities
    (people, places, organisations, works: capitalised) and by numbers (dates, counts), while
    function words and the surrounding phrasing are what the model already predicts. It needs
    neither the answer (unlike ``oracle``) nor meta-training (unlike ``taalm``), so it is the
    control that tells whether a learned φ beats a rule anyone could write. Its blind spot is
    lower-case objects (occupations, genres, instruments), which only a learned φ can find.
    Capitalised function words that merely open a sentence ("The", "In", "He", ...) stay low.
    """

    def __init__(self, cfg, seed=0):
        super().__init__(cfg, seed)
        sc = cfg.salient
        if not (0.0 <= sc.low <= 1.0 and 0.0 < sc.high <= 1.0 and sc.low <= sc.high):
            raise ConfigError(f"method.salient needs 0 <= low <= high <= 1 and high > 0, "
                              f"got low={sc.low}, high={sc.high}", "method.salient")
        self.texts: list[str] | None = None

    def prepare(self, ctx: PrepareContext) -> None:
        if ctx.documents is None or len(ctx.documents) != len(ctx.encoded):
            raise ConfigError("method 'salient' needs the documents' texts (PrepareContext.documents)")
        self.texts = [d.text for d in ctx.documents]

    def document_weights(self, doc_index, encoded):
        if self.texts is None:
            raise RuntimeError("method 'salient': prepare() must run before document_weights()")
        keep = span_token_mask(encoded.offsets, salient_spans(self.texts[doc_index]))
        sc = self.cfg.salient
        return torch.where(keep, torch.tensor(sc.high), torch.tensor(sc.low)).float()
