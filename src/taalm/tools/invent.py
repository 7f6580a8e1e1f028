"""Invented-entity facts: counterfactual copies of pool facts about names no model can know.

A φ meta-trained only on real-world T-REx facts learns "weight the real-world entity names it
half-knows", which does not transfer to documents about new people, places and things (the
demo's invented facts, a user's notes). :func:`invent_units` makes counterfactual copies of pool
units: the subject and the object are replaced by invented names, every occurrence, in the
evidence, the masked evidence and both probe texts. The evidence keeps its real sentence
structure, so φ must find the tokens that carry the new fact from context, not from the names.

Names come from :class:`NameGenerator`, seeded, in several shapes, so that φ cannot key on one
kind of token: ``person`` ("Tavrin Oskelund"), ``place`` ("Vellmark", "Port Amwery"),
``organisation`` ("Quessa Instruments"), ``word`` (a common-looking lowercase word, "brantle"),
``language`` ("Vessarian"), and ``long`` (multi-token names, "Ombrulet-Tanaquay Dorvessil").
Each relation picks a subject shape and an object shape that fit it (:data:`SHAPES`): an
occupation becomes an invented common-looking word, a birthplace an invented place. Every name
is used once in a pool, so validation names never occur in training.

The caller scores every invented unit with the base model in both probe formats (the pool's
scorer) and keeps only those scoring exactly 0 in both; units that fail are drawn again with new
names (see :func:`taalm.tools.pool.build_pool`).
"""

from __future__ import annotations

import random
import re

# relation code -> (subject shape, object shape); unknown relations: ("long", "word")
SHAPES: dict[str, tuple[str, str]] = {
    "P19": ("person", "place"), "P20": ("person", "place"), "P27": ("person", "place"),
    "P937": ("person", "place"), "P103": ("person", "language"), "P1412": ("person", "language"),
    "P39": ("person", "word"), "P101": ("person", "word"), "P106": ("person", "word"),
    "P1303": ("person", "word"), "P136": ("person", "word"), "P140": ("person", "word"),
    "P413": ("person", "word"), "P108": ("person", "organisation"), "P463": ("person", "organisation"),
    "P264": ("person", "organisation"), "P159": ("organisation", "place"),
    "P740": ("organisation", "place"), "P495": ("long", "place"), "P127": ("organisation", "organisation"),
    "P176": ("long", "organisation"), "P178": ("long", "organisation"), "P449": ("long", "organisation"),
    "P364": ("long", "language"), "P407": ("long", "language"), "P138": ("place", "person"),
    "P31": ("long", "word"), "P527": ("long", "word"), "P361": ("long", "long"),
    "P36": ("place", "place"), "P1376": ("place", "place"), "P131": ("place", "place"),
    "P17": ("place", "place"), "P30": ("place", "place"), "P47": ("place", "place"),
    "P190": ("place", "place"), "P530": ("place", "place"), "P37": ("place", "language"),
    "P276": ("long", "place"), "P279": ("word", "word"), "P1001": ("long", "place"),
}
NAME_SHAPES = ("person", "place", "organisation", "word", "language", "long")

_ONSETS = ["b", "br", "d", "dr", "f", "g", "gr", "h", "k", "kr", "l", "m", "n", "p", "qu", "r", "s", "sk",
           "st", "t", "tr", "v", "w", "z", "th", "sh", "ch", "j"]
_VOWELS = ["a", "e", "i", "o", "u", "ae", "ou", "ei", "y"]
_CODAS = ["", "", "", "", "n", "r", "l", "s", "th", "nd", "m", "st", "ck", "ll"]
_PLACE_SUFFIX = ["holt", "vik", "mere", "ford", "ara", "by", "stead", "wick", "ton", "gard", "oria", "esk"]
_PLACE_PREFIX = ["Port", "Lower", "Upper", "North", "East", "Saint", "New", "Fort", "Glen", "Cape"]
_ORG_SUFFIX = ["Industries", "Instruments", "Collective", "Institute", "Records", "Broadcasting", "Works",
               "Society", "Group", "Studios", "Motors", "Laboratories", "Union", "Foundation", "Press"]
_LANG_SUFFIX = ["ian", "ese", "ic", "ish", "an", "i"]


class NameGenerator:
    """Seeded invented names in :data:`NAME_SHAPES`; never the same name twice, never a name
    in ``avoid`` (e.g. every real subject and object of the pool, lowercased)."""

    def __init__(self, seed: int = 0, avoid: set[str] | None = None):
        self.rng = random.Random(seed)
        self.used: set[str] = set()
        self.avoid = {a.lower() for a in (avoid or ())}

    def _syllables(self, lo: int, hi: int) -> str:
        r = self.rng
        return "".join(r.choice(_ONSETS) + r.choice(_VOWELS) + r.choice(_CODAS) for _ in range(r.randint(lo, hi)))

    def _root(self, lo: int = 2, hi: int = 3) -> str:
        return self._syllables(lo, hi).capitalize()

    def _draw(self, shape: str) -> str:
        r = self.rng
        if shape == "person":
            return f"{self._root(1, 2)} {self._root(2, 3)}"
        if shape == "place":
            root = self._root(1, 2) + r.choice(_PLACE_SUFFIX)
            return f"{r.choice(_PLACE_PREFIX)} {root}" if r.random() < 0.3 else root
        if shape == "organisation":
            return f"{self._root(2, 3)} {r.choice(_ORG_SUFFIX)}"
        if shape == "word":
            return self._syllables(2, 3)
        if shape == "language":
            return self._root(1, 2) + r.choice(_LANG_SUFFIX)
        if shape == "long":
            return f"{self._root(2, 3)}-{self._root(2, 3)} {self._root(2, 3)}"
        raise ValueError(f"unknown name shape {shape!r} (use {', '.join(NAME_SHAPES)})")

    def name(self, shape: str) -> str:
        """A new invented name of ``shape`` (redrawn until unused and not a real name)."""
        for _ in range(1000):
            n = self._draw(shape)
            if n.lower() not in self.used and n.lower() not in self.avoid:
                self.used.add(n.lower())
                return n
        raise RuntimeError(f"could not draw a new {shape} name")


def _replacer(mapping: dict[str, str]):
    """A function text -> text replacing every whole-word occurrence of each key (longest first,
    so an object inside the subject's name is not replaced inside it)."""
    keys = sorted(mapping, key=len, reverse=True)
    pattern = re.compile(r"(?<!\w)(" + "|".join(re.escape(k) for k in keys) + r")(?!\w)")
    return lambda text: pattern.sub(lambda m: mapping[m.group(1)], text)


def invent_unit(unit: dict, names: NameGenerator, tag: str = "inv") -> dict | None:
    """A counterfactual copy of a LAMA-ckl unit with invented subject and object names (every
    occurrence in ``evidence``, ``masked_evidence``, ``task_descriptive``, ``task_schematic``),
    or None when the unit cannot be rewritten cleanly (subject = object, or a name that does not
    stand as a whole word in the evidence). ``uuid`` becomes ``<uuid>-<tag>``; ``invented``
    records the original uuid, subject and object."""
    sub, obj = unit["subject"], unit["object"]
    if not sub or not obj or sub == obj or sub in obj or obj in sub:
        return None
    s_shape, o_shape = SHAPES.get(unit.get("relation_code", ""), ("long", "word"))
    new_sub, new_obj = names.name(s_shape), names.name(o_shape)
    rep = _replacer({sub: new_sub, obj: new_obj})
    row = dict(unit)
    for key in ("evidence", "masked_evidence", "task_descriptive", "task_schematic"):
        if isinstance(row.get(key), str):
            row[key] = rep(row[key])
    ev = row["evidence"]
    if new_sub not in ev or new_obj not in ev or new_obj not in row["task_descriptive"] \
            or new_obj not in row["task_schematic"]:
        return None
    row.update(subject=new_sub, object=new_obj, uuid=f"{unit['uuid']}-{tag}",
               evidence_length=len(ev), invented={"from": unit["uuid"], "subject": sub, "object": obj,
                                                  "shapes": [s_shape, o_shape]})
    masked = row.get("masked_evidence")
    if isinstance(masked, str) and "[MASK]" in masked:
        row["position"] = masked.index("[MASK]") / len(masked)
    return row


def invent_units(units: list[dict], names: NameGenerator, tag: str = "inv") -> tuple[list[dict], int]:
    """(invented copies, number of units that could not be rewritten) of ``units``, in order."""
    out, failed = [], 0
    for u in units:
        row = invent_unit(u, names, tag)
        if row is None:
            failed += 1
        else:
            out.append(row)
    return out, failed


__all__ = ["NameGenerator", "NAME_SHAPES", "SHAPES", "invent_unit", "invent_units"]
