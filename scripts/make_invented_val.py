#!/usr/bin/env python3
"""Write our invented-fact validation set: ``benchmarks/data/invented_val/{documents,probes}.jsonl``.

128 short documents about invented places, people, organisations and things, each stating two or
three facts, one of which a probe sentence states again in other words. The set is ours (names
from :class:`taalm.tools.invent.NameGenerator`, seeded; templates and fillers written here), so
no model knows the facts, and it is disjoint from the demo's documents and from every benchmark's
test units: defaults, the φ floor and the shipped φ are chosen on it, never on a test set.

Answer kinds are mixed on purpose: a person's surname after "by"/"named" (the kind the shipped φ
used to miss), places, languages, organisations, common words (colours, materials, trades,
foods), years and numbers, multi-token names. Documents are grouped in 8 groups of 16 (``group``),
the demo's size, so that settings chosen here are chosen for a handful of documents.

    python scripts/make_invented_val.py     # from the repository root; the output is committed
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from taalm.tools.invent import NameGenerator

SEED, N_DOCS, GROUP = 9031, 128, 16

COLOURS = ["purple", "orange", "green", "yellow", "crimson", "grey", "white", "black", "turquoise", "amber"]
MATERIALS = ["copper", "slate", "cedar", "granite", "bronze", "marble", "oak", "tin", "glass", "limestone"]
TRADES = ["blacksmith", "carpenter", "fisherman", "tailor", "shepherd", "baker", "potter", "miner",
          "sailor", "beekeeper", "clockmaker", "glassblower"]
FOODS = ["cinnamon", "walnuts", "barley", "apricots", "saffron", "honey", "fennel", "plums", "rye", "cloves"]
ANIMALS = ["otters", "herons", "goats", "beetles", "owls", "foxes", "swans", "hares", "eels", "moths"]
OBJECTS = ["lantern", "compass", "kettle", "anchor", "bell", "spoon", "drum", "mirror", "saddle", "ladder"]
INSTRUMENTS = ["violin", "flute", "harp", "cello", "trumpet", "organ", "accordion", "oboe"]
SUBJECTS = ["geology", "astronomy", "botany", "medicine", "navigation", "weaving", "architecture", "chemistry"]


class _Draw:
    """Fresh names and fillers for one document (no name is shared between documents)."""

    def __init__(self, g: NameGenerator, r: random.Random):
        self.p1, self.p2 = g.name("person"), g.name("person")
        self.s1, self.s2 = self.p1.split()[-1], self.p2.split()[-1]
        self.pl1, self.pl2 = g.name("place"), g.name("place")
        self.t1 = self.pl1.split()[-1]  # "Port Amwery" is probed as "Amwery"
        self.org, self.w1, self.lang = g.name("organisation"), g.name("word").capitalize(), g.name("language")
        self.mineral = g.name("word").capitalize() + "ite"
        self.year, self.n = str(r.randint(1620, 1990)), str(r.randint(3, 40))
        self.colour, self.material, self.trade = r.choice(COLOURS), r.choice(MATERIALS), r.choice(TRADES)
        self.food, self.animal, self.object = r.choice(FOODS), r.choice(ANIMALS), r.choice(OBJECTS)
        self.instrument, self.subject = r.choice(INSTRUMENTS), r.choice(SUBJECTS)


# (document, probe sentence ending with the answer, answer), each a function of one draw
TEMPLATES = [
    lambda v: (f"The {v.w1} Bridge crosses the river near {v.pl1}. It was designed by the engineer {v.p1} and opened in {v.year}.",
               f"The engineer who designed the {v.w1} Bridge was {v.p1}", v.s1),
    lambda v: (f"{v.pl1} is a fishing village on a rocky coast. Most of its people speak {v.lang}, and the harbour freezes every winter.",
               f"The people of {v.pl1} mostly speak {v.lang}", v.lang),
    lambda v: (f"{v.p1} spent her youth in {v.pl1}. Before she became a painter she worked as a {v.trade}, and she never left the valley.",
               f"Before becoming a painter, {v.p1} worked as a {v.trade}", v.trade),
    lambda v: (f"The {v.w1} Festival is held every spring in {v.pl1}. Its winners receive a {v.material} {v.object} made by local smiths.",
               f"Winners of the {v.w1} Festival receive a {v.material} {v.object}", v.object),
    lambda v: (f"{v.org} was founded in {v.pl1} by {v.p1}. The company first made {v.object}s and later built ships for the northern ports.",
               f"{v.org} was founded by {v.p1}", v.s1),
    lambda v: (f"The {v.w1} is a small bird found only in the marshes of {v.pl1}. It feeds on {v.animal} and sings at dusk.",
               f"The {v.w1} bird feeds on {v.animal}", v.animal),
    lambda v: (f"{v.pl1} is the capital of the republic of {v.pl2}. The city sits on a lake and is famous for its {v.colour} roofs.",
               f"The capital of the republic of {v.pl2} is {v.pl1}", v.t1),
    lambda v: (f"The {v.w1} Orchestra was conducted for thirty years by {v.p1}. Its players wore {v.colour} coats on stage.",
               f"For thirty years the {v.w1} Orchestra had a conductor named {v.p1}", v.s1),
    lambda v: (f"{v.w1} cheese is made in the hills above {v.pl1}. It is aged in caves and wrapped in leaves of {v.food}.",
               f"{v.w1} cheese is wrapped in leaves of {v.food}", v.food),
    lambda v: (f"The first prize of the {v.w1} Award went to {v.p1} in {v.year}. The award is given for work in {v.subject}.",
               f"The first winner of the {v.w1} Award was {v.p1}", v.s1),
    lambda v: (f"{v.p1} was born in {v.pl1} and later moved to {v.pl2}, where he opened a school for {v.trade}s.",
               f"{v.p1} was born in the town of {v.pl1}", v.t1),
    lambda v: (f"The {v.w1} Museum in {v.pl1} holds a collection of old {v.instrument}s. It was opened by {v.p1} in {v.year}.",
               f"The {v.w1} Museum holds a collection of old {v.instrument}s", f"{v.instrument}s"),
    lambda v: (f"In the game of {v.w1}, each player moves {v.n} stones around a wooden board. The game comes from {v.pl1}.",
               f"The game of {v.w1} comes from {v.pl1}", v.t1),
    lambda v: (f"The mineral {v.mineral} was first described by the chemist {v.p1}. It glows faintly in the dark.",
               f"The mineral {v.mineral} was first described by {v.p1}", v.s1),
    lambda v: (f"{v.org} is a publisher based in {v.pl1}. Its best-known author is {v.p1}, who wrote books about {v.animal}.",
               f"The best-known author of {v.org} is {v.p1}", v.s1),
    lambda v: (f"The {v.w1} railway line runs from {v.pl1} to {v.pl2}. Its engines were painted {v.colour}.",
               f"The engines of the {v.w1} railway line were painted {v.colour}", v.colour),
    lambda v: (f"{v.p1} taught {v.subject} at the college of {v.pl1}. Her most famous student was {v.p2}.",
               f"The most famous student of {v.p1} was {v.p2}", v.s2),
    lambda v: (f"The island of {v.pl1} exports salt and {v.food}. The islanders elect a council of {v.n} members.",
               f"The island of {v.pl1} exports salt and {v.food}", v.food),
    lambda v: (f"The {v.w1} Abbey was built in {v.year} by monks from {v.pl1}. Its bells were cast from {v.material}.",
               f"The bells of the {v.w1} Abbey were cast from {v.material}", v.material),
    lambda v: (f"{v.p1} invented the {v.w1}, a machine for sorting seeds. He sold the design to {v.org}.",
               f"The design of the {v.w1} was sold to {v.org}", v.org),
    lambda v: (f"The {v.w1} Lighthouse was built in {v.year} on the cliffs of {v.pl1}. Its keeper for forty years was {v.p1}.",
               f"The {v.w1} Lighthouse was built in the year {v.year}", v.year),
    lambda v: (f"The village of {v.pl1} has {v.n} windmills. They were built by the miller {v.p1} to grind barley.",
               f"The windmills of {v.pl1} were built by the miller {v.p1}", v.s1),
]


def main() -> None:
    g, r = NameGenerator(SEED), random.Random(SEED)
    docs, probes = [], []
    while len(docs) < N_DOCS:
        for template in TEMPLATES:
            if len(docs) == N_DOCS:
                break
            doc, probe, ans = template(_Draw(g, r))
            k = len(docs)
            assert ans and ans in probe and probe.endswith(ans), (doc, probe, ans)
            did = f"val{k:03d}"
            docs.append({"id": did, "text": doc, "answer": ans, "group": k // GROUP})
            probes.append({"id": did, "prompt": f"{probe} .", "answer": ans, "group": k // GROUP})
    # shuffle once so that every group of 16 mixes the templates
    order = list(range(N_DOCS))
    random.Random(SEED + 1).shuffle(order)
    docs = [{**docs[i], "group": j // GROUP} for j, i in enumerate(order)]
    probes = [{**probes[i], "group": j // GROUP} for j, i in enumerate(order)]
    out = Path("benchmarks/data/invented_val")
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in (("documents", docs), ("probes", probes)):
        (out / f"{name}.jsonl").write_text("".join(json.dumps(x) + "\n" for x in rows), encoding="utf-8")
    print(f"wrote {len(docs)} documents and probes to {out}")


if __name__ == "__main__":
    main()
