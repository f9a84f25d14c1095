"""Train/validation/test splits: stratified by label, optionally grouped by near-duplicates.

Synthetic utterances often share a skeleton ("turn on the kitchen lights", "turn on
the garage lights"). If one lands in train and the other in test, the test score
measures memory, not generalisation. With grouping, texts that are near-duplicates
once entity values are masked go to the same split.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from textsynth.quality.normalize import normalize

__all__ = ["masked_text", "near_duplicate_groups", "stratified_split"]

_BLOCK = 2000


def masked_text(text: str, entities: Sequence[dict[str, Any]] = ()) -> str:
    """Normalised text with each entity value replaced by its type.

    >>> masked_text("Turn on the Kitchen lights!", [{"start": 12, "end": 19, "entity": "room"}])
    'turn on the room lights'
    """
    out, pos = [], 0
    for span in sorted(entities, key=lambda s: s["start"]):
        out += [text[pos:span["start"]], f" {span['entity']} "]
        pos = span["end"]
    out.append(text[pos:])
    return normalize("".join(out))


class _UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def near_duplicate_groups(keys: Sequence[str], threshold: float) -> list[int]:
    """A group id per key: keys with similarity >= ``threshold`` (0..1) share a group.

    Similarity is rapidfuzz's normalised Indel ratio; groups are transitive. Equal
    keys are compared once, so data with few distinct skeletons groups fast.
    """
    from rapidfuzz import fuzz, process  # a core dependency, imported when used
    unique = list(dict.fromkeys(keys))
    uf = _UnionFind(len(unique))
    cutoff = threshold * 100
    for lo in range(0, len(unique), _BLOCK):
        block = unique[lo:lo + _BLOCK]
        scores = process.cdist(block, unique, scorer=fuzz.ratio, score_cutoff=cutoff, workers=1)
        for i, j in zip(*scores.nonzero(), strict=True):
            if lo + int(i) < int(j):
                uf.union(lo + int(i), int(j))
    index = {key: i for i, key in enumerate(unique)}
    return [uf.find(index[key]) for key in keys]


def _counts(n: int, ratios: dict[str, float], turn: int) -> list[int]:
    names = list(ratios)
    exact = [ratios[name] * n for name in names]
    counts = [int(x) for x in exact]
    # leftover rows go to the largest remainders; ties rotate across labels so small
    # splits still get rows
    order = sorted(range(len(names)), key=lambda j: (exact[j] - counts[j],
                                                     -((j - turn) % len(names))), reverse=True)
    for j in order:
        if sum(counts) >= n:
            break
        counts[j] += 1
    return counts


def stratified_split(labels: Sequence[str], ratios: dict[str, float], seed: int,
                     groups: Sequence[int] | None = None) -> dict[str, list[int]]:
    """Row indices per split, stratified by label, deterministic for a seed.

    Each label's rows are shuffled and cut by the ratios (largest remainders get the
    leftover rows). With ``groups``, rows of one group never straddle two splits,
    whatever their labels: groups are placed whole, largest first, in the split whose
    labels are furthest below their share, so the ratios hold as nearly as the group
    sizes allow.
    """
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        by_label[label].append(i)
    names = list(ratios)
    targets = {label: _counts(len(by_label[label]), ratios, turn)
               for turn, label in enumerate(sorted(by_label))}
    if groups is not None:
        return _grouped(labels, names, targets, groups, seed)
    out: dict[str, list[int]] = {name: [] for name in names}
    for label in sorted(by_label):
        idx = by_label[label]
        random.Random(f"{seed}:{label}").shuffle(idx)
        start = 0
        for name, count in zip(names, targets[label], strict=True):
            out[name].extend(idx[start:start + count])
            start += count
    return {name: sorted(v) for name, v in out.items()}


def _grouped(labels: Sequence[str], names: list[str], targets: dict[str, list[int]],
             groups: Sequence[int], seed: int) -> dict[str, list[int]]:
    members: dict[int, list[int]] = defaultdict(list)
    for i, group in enumerate(groups):
        members[group].append(i)
    bundles = [members[g] for g in sorted(members)]
    random.Random(f"{seed}:groups").shuffle(bundles)
    bundles.sort(key=len, reverse=True)  # stable: equal sizes keep the shuffled order
    filled = {label: [0] * len(names) for label in targets}
    out: dict[str, list[int]] = {name: [] for name in names}
    for bundle in bundles:
        need: dict[str, int] = defaultdict(int)
        for i in bundle:
            need[labels[i]] += 1

        def room(j: int, need: dict[str, int] = need) -> tuple[float, int]:
            gap = sum(n * (targets[lb][j] - filled[lb][j]) for lb, n in need.items())
            return gap, -j

        j = max(range(len(names)), key=room)
        out[names[j]].extend(bundle)
        for label, n in need.items():
            filled[label][j] += n
    return {name: sorted(v) for name, v in out.items()}
