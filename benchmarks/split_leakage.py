"""How often near-duplicates straddle train and test, with and without grouping.

Synthetic slot data repeats skeletons ("turn on the {room} lights"); a test row whose
skeleton is also in train measures memory. Prints the share of such test rows for a
plain stratified split and a grouped one, and the time grouping takes.

    python benchmarks/split_leakage.py [ROWS]
"""

from __future__ import annotations

import random
import sys
import time

from textsynth.export.split import masked_text, near_duplicate_groups, stratified_split

SKELETONS = [
    "turn on the {} lights", "switch the {} lamp on", "lights on in the {} please",
    "could you light up the {}", "I need some light in the {}", "brighten the {} a bit",
    "make the {} bright", "please turn the {} lights on now", "{} lights on",
    "can you switch on the {} light",
]
ROOMS = ["kitchen", "garage", "bedroom", "office", "attic", "hall", "porch", "den", "studio",
         "cellar", "nursery", "loft"]
WORDS = ["now", "please", "tonight", "quickly", "again", "for me", "thanks", "before dinner",
         "when I get home", "at once", "softly", "all of them", "too", "right away", "ok"]
RATIOS = {"train": 0.8, "validation": 0.1, "test": 0.1}


def rows(n: int, seed: int = 0) -> tuple[list[str], list[list[dict[str, object]]], list[str]]:
    rng = random.Random(seed)
    texts, spans, labels = [], [], []
    for i in range(n):
        label = f"intent_{i % 4}"
        skeleton = SKELETONS[rng.randrange(len(SKELETONS))].replace("lights", f"lights {label}")
        room = rng.choice(ROOMS)
        # most rows get a few words of their own, so most skeletons are distinct
        extra = " ".join(rng.choice(WORDS) for _ in range(rng.choice((0, 3, 4, 5))))
        text = f"{skeleton.format(room)} {extra}".strip()
        start = text.index(room)
        texts.append(text)
        spans.append([{"start": start, "end": start + len(room), "entity": "room"}])
        labels.append(label)
    return texts, spans, labels


def leakage(keys: list[str], split: dict[str, list[int]]) -> float:
    train = {keys[i] for i in split["train"]}
    test = split["test"]
    return sum(keys[i] in train for i in test) / max(1, len(test))


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    texts, spans, labels = rows(n)
    keys = [masked_text(t, s) for t, s in zip(texts, spans, strict=True)]
    plain = stratified_split(labels, RATIOS, seed=0)
    start = time.perf_counter()
    groups = near_duplicate_groups(keys, 0.85)
    seconds = time.perf_counter() - start
    grouped = stratified_split(labels, RATIOS, seed=0, groups=groups)
    print(f"rows: {n}, near-duplicate groups: {len(set(groups))}, grouping took {seconds:.2f} s")
    for name, split in (("stratified", plain), ("stratified + grouped", grouped)):
        sizes = ", ".join(f"{k} {len(v)}" for k, v in split.items())
        print(f"{name:>22}: test rows whose skeleton is in train: "
              f"{leakage(keys, split):6.1%}  ({sizes})")


if __name__ == "__main__":
    main()
