"""The compact dedup state decides exactly as the dict-based state it replaced."""

from __future__ import annotations

import random
from array import array
from typing import Any

import numpy as np
import pytest

from textsynth.example import Example
from textsynth.quality.base import KEEP, Verdict
from textsynth.quality.dedup import ExactDedup, NearDuplicateDedup
from textsynth.quality.minhash import MinHashIndex
from textsynth.quality.normalize import normalize
from textsynth.quality.tables import KeyTable, SpillFile

WORDS = ["play", "jazz", "lights", "kitchen", "weather", "paris", "tomorrow", "alarm", "seven",
         "turn", "off", "on", "please", "music", "some", "the", "in", "set", "an", "for"]


def utterances(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """(label, text) with exact repeats (other case), near repeats and cross-label copies."""
    rng = random.Random(seed)
    out: list[tuple[str, str]] = []
    labels = ["a", "b", "c"]
    for _ in range(n):
        roll = rng.random()
        label = rng.choice(labels)
        if out and roll < 0.08:
            out.append((label, rng.choice(out)[1].upper() + "!"))
        elif out and roll < 0.2:
            out.append((label, f"{rng.choice(out)[1]} {rng.choice(WORDS)}"))
        else:
            out.append((label, " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 9)))))
    return out


class _Reference:
    """The previous state: Python dicts and lists (decisions to compare with)."""

    kind = "duplicate"

    def __init__(self) -> None:
        self.owners: list[list[Any]] = []  # [label, text, conflicted]
        self.withdrawn: list[tuple[str, str]] = []

    def judge(self, example: Example, item: int, detail: str = "") -> Verdict:
        label, text, conflicted = self.owners[item]
        if conflicted:
            return Verdict(False, f"cross_label_{self.kind}",
                           f"matches a text claimed by two labels{detail}")
        if label == example.label:
            return Verdict(False, self.kind, f"matches {text!r}{detail}")
        self.owners[item][2] = True
        self.withdrawn.append((label, text))
        return Verdict(False, f"cross_label_{self.kind}",
                       f"matches {text!r} under '{label}'{detail}")


class _ReferenceExact(_Reference):
    def __init__(self) -> None:
        super().__init__()
        self.seen: dict[str, int] = {}

    def check(self, example: Example) -> Verdict:
        item = self.seen.get(normalize(example.text))
        return KEEP if item is None else self.judge(example, item)

    def add(self, example: Example) -> None:
        key = normalize(example.text)
        if key not in self.seen:
            self.seen[key] = len(self.owners)
            self.owners.append([example.label, example.text, False])


class _ReferenceNear(_Reference):
    kind = "near_duplicate"

    def __init__(self, exhaustive_below: int) -> None:
        super().__init__()
        self.index = MinHashIndex(0.8)  # signatures and band keys only
        self.exhaustive_below = exhaustive_below
        self.tables: list[dict[int, int]] = [{} for _ in range(self.index.bands)]
        self.sigs: list[np.ndarray] = []

    def _query(self, sig: np.ndarray) -> int | None:
        if 0 < len(self.sigs) <= self.exhaustive_below:
            sims = (np.stack(self.sigs) == sig).mean(axis=1)
            best = int(np.argmax(sims))
            return best if sims[best] >= 0.8 else None
        tried = -1
        for table, key in zip(self.tables, self.index.band_keys(sig[None])[0].tolist(),
                              strict=True):
            item = table.get(key)
            if item is not None and item != tried:
                if (self.sigs[item] == sig).mean() >= 0.8:
                    return item
                tried = item
        return None

    def check(self, example: Example) -> Verdict:
        sig = self.index.signatures([example.text])[0]
        item = self._query(sig)
        if item is None:
            return KEEP
        score = float((self.sigs[item] == sig).mean())
        return self.judge(example, item, f" (Jaccard ~{score:.2f})")

    def add(self, example: Example) -> None:
        sig = self.index.signatures([example.text])[0]
        for table, key in zip(self.tables, self.index.band_keys(sig[None])[0].tolist(),
                              strict=True):
            table.setdefault(key, len(self.sigs))
        self.sigs.append(sig)
        self.owners.append([example.label, example.text, False])


def _decisions(rule: Any, items: list[tuple[str, str]]) -> list[tuple[bool, str, str]]:
    out = []
    for label, text in items:
        example = Example(text, label)
        verdict = rule.check(example)
        if verdict.keep:
            rule.add(example)
        out.append((verdict.keep, verdict.reason, verdict.detail))
    return out


def test_exact_dedup_decides_as_the_dict_it_replaced() -> None:
    items = utterances(4000)
    new, old = ExactDedup(), _ReferenceExact()
    decisions = _decisions(new, items)
    assert decisions == _decisions(old, items)
    assert sum(not keep for keep, _, _ in decisions) > 200  # the data has duplicates
    assert new.remove_label_conflicts() == old.withdrawn != []


@pytest.mark.parametrize(("exhaustive_below", "key_bits"), [(0, 32), (300, 32), (0, 8), (0, 64)])
def test_near_dedup_decides_as_the_dicts_it_replaced(exhaustive_below: int,
                                                     key_bits: int) -> None:
    """Band keys kept as their low 32 bits (or 8: collisions everywhere, settled on the
    stored signatures) decide as 64-bit dicts."""
    items = utterances(3000, seed=1)
    new = NearDuplicateDedup(0.8)
    # few signatures in memory, so most candidates are confirmed on spilled ones
    new.index = MinHashIndex(0.8, exhaustive_below=exhaustive_below, memory_rows=100,
                             key_bits=key_bits)
    old = _ReferenceNear(exhaustive_below)
    decisions = _decisions(new, items)
    assert decisions == _decisions(old, items)
    reasons = {reason for _, reason, _ in decisions}
    assert {"near_duplicate", "cross_label_near_duplicate"} <= reasons
    assert new.remove_label_conflicts() == old.withdrawn


def test_key_table_matches_a_dict_through_growth() -> None:
    rng = random.Random(3)
    keys: array[int] = array("Q")
    table = KeyTable(keys, capacity=8)
    reference: dict[int, int] = {}
    for item in range(20_000):
        key = rng.getrandbits(64) if rng.random() < 0.7 else rng.choice(keys or [5])
        keys.append(key)
        assert table.setdefault(key, item) == reference.setdefault(key, item)
    assert table.capacity >= 16_384 and table.count == len(reference)
    for key, item in reference.items():
        assert table.get(key) == item
    assert table.get(2**64 - 1) is reference.get(2**64 - 1)


@pytest.mark.parametrize("key_bits", [32, 6])
def test_key_table_of_low_key_bits_matches_a_dict_of_full_keys(key_bits: int) -> None:
    """Keys that share their low bits but not the rest are told apart by ``confirm``:
    each keeps its own item, through growth, as in a dict of 64-bit keys."""
    rng = random.Random(5)
    full: list[int] = []  # the full key of each item (what a signature gives again)
    keys: array[int] = array("I")
    checked: list[int] = []
    mask = (1 << key_bits) - 1

    def confirm(item: int, key: int) -> bool:
        checked.append(item)
        return full[item] == key

    table = KeyTable(keys, capacity=8, confirm=confirm, key_bits=key_bits)
    reference: dict[int, int] = {}
    for item in range(6_000):
        roll = rng.random()
        if full and roll < 0.3:  # the same full key again
            key = rng.choice(full)
        elif full and roll < 0.6:  # the same low bits, other high bits
            key = (rng.getrandbits(32) << 32) | (rng.choice(full) & 0xFFFFFFFF)
        else:
            key = rng.getrandbits(64)
        full.append(key)
        keys.append(key & mask)
        assert table.setdefault(key, item) == reference.setdefault(key, item)
    assert table.count == len(reference) and checked
    for key, item in reference.items():
        assert table.get(key) == item
        assert table.get(key ^ (1 << 40)) == reference.get(key ^ (1 << 40))


def test_key_table_needs_confirm_for_short_keys() -> None:
    with pytest.raises(ValueError, match="confirm"):
        KeyTable(array("I"))


def test_key_table_with_several_tables_in_one_key_array() -> None:
    keys = array("Q", [1, 2, 3, 1, 5, 6])  # item 0: (1, 2, 3), item 1: (1, 5, 6)
    tables = [KeyTable(keys, stride=3, offset=k) for k in range(3)]
    for item in (0, 1):
        for k, table in enumerate(tables):
            table.setdefault(keys[item * 3 + k], item)
    assert [t.get(1) for t in tables] == [0, None, None]
    assert tables[1].get(5) == 1 and tables[2].get(3) == 0


def test_spill_file_reads_back_every_record() -> None:
    log = SpillFile(buffer_bytes=64)  # a flush every few records
    texts = [f"text number {i} " + "é" * (i % 7) for i in range(500)]
    for i, text in enumerate(texts):
        assert log.append(text.encode()) == i
    assert len(log) == 500 and log._flushed > 400  # most of them are on disk
    assert [log.get(i).decode() for i in range(500)] == texts
    log.close()


def test_spill_file_offsets_past_4_gib() -> None:
    """Offsets keep 32 bits; the records where the high bits change are listed, so a
    file past 4 GiB reads back (here a sparse one: the first record is 4 GiB long)."""
    log = SpillFile(buffer_bytes=64)
    big = (1 << 32) - 10
    log._end, log._count = big, 1  # record 0, of ``big`` bytes, never written
    log._low.append(big)
    log._flushed = 1
    records = [bytes([65 + i % 26]) * (3 + i % 5) for i in range(40)]
    for i, record in enumerate(records):
        assert log.append(record) == i + 1
    log.flush()
    assert log._wraps and log.nbytes < 8 * len(log)  # 4 bytes an offset, and the wrap
    assert [log.get(i + 1) for i in range(40)] == records
    log.close()


def test_spill_file_of_fixed_size_records_keeps_no_offsets() -> None:
    log = SpillFile(buffer_bytes=100, record_size=8)
    for i in range(1000):
        log.append(i.to_bytes(8, "little"))
    assert log.nbytes <= 8 and len(log) == 1000
    assert [int.from_bytes(log.get(i), "little") for i in range(1000)] == list(range(1000))
    with pytest.raises(ValueError, match="8 bytes"):
        log.append(b"short")
    log.close()


def test_key_table_rejects_a_capacity_that_is_not_a_power_of_two() -> None:
    with pytest.raises(ValueError, match="power of two"):
        KeyTable(array("Q"), capacity=1000)


def test_dedup_state_stays_small_per_accepted_candidate() -> None:
    """The dict-based state took about 270 bytes an item for exact dedup and 1,040 for
    MinHash; the compact one about 30 and 135, and with 4-byte text offsets, 32-bit band
    keys and no offsets for the fixed-size signatures 27 and 90 (texts and signatures
    on disk)."""
    items = [("a", f"{text} {i}") for i, (_, text) in enumerate(utterances(20_000, seed=2))]
    exact, near = ExactDedup(), NearDuplicateDedup(0.8)
    near.index = MinHashIndex(0.8, memory_rows=0)
    for label, text in items:
        example = Example(text, label)
        exact.add(example)
        near.add(example)
    assert len(exact.owners) == len(near.owners) == near.index.size > 19_000
    assert exact.nbytes / len(exact.owners) < 29
    assert near.nbytes / near.index.size < 100
    assert near.index.similarity(near.index.signatures([items[7][1]])[0], 7) == 1.0
    assert exact.owners.text(12_345) == items[12_345][1]


@pytest.mark.parametrize(("num_perm", "threshold"), [(16, 0.7), (64, 0.7), (64, 0.8),
                                                     (64, 0.9), (128, 0.8)])
def test_exhaustive_query_is_the_most_similar_stored_item(num_perm: int,
                                                          threshold: float) -> None:
    """With or without the 32-value probe and the pigeonhole blocks, and for texts that
    all look alike (so the probe passes most rows): the argmax of the similarities."""
    index = MinHashIndex(threshold, num_perm=num_perm, exhaustive_below=1_000)
    texts = [f"please check {t}" for _, t in utterances(600, seed=4)]
    stored: list[np.ndarray] = []
    found = 0
    for sig in index.signatures(texts):
        sims = (np.stack(stored) == sig).mean(axis=1) if stored else None
        best = None if sims is None or sims.max() < threshold else int(np.argmax(sims))
        assert index.query(sig) == best
        if best is None:
            stored.append(sig)
            index.insert(sig)
        found += best is not None
    assert found > 20


def test_exhaustive_queries_compare_few_stored_signatures() -> None:
    """Below ``exhaustive_below`` a query finds every near-duplicate (no LSH misses)
    without comparing the whole index: only items that share a pigeonhole block."""
    items = utterances(4000, seed=5)
    rule = NearDuplicateDedup(0.8)  # exhaustive up to 5,000 accepted
    decisions = _decisions(rule, items)
    assert decisions == _decisions(_ReferenceNear(5_000), items)
    assert sum(not keep for keep, _, _ in decisions) > 300
    size = rule.index.size
    # comparing with every stored item would be about len(items) * size / 2
    assert rule.index.compared < len(items) * size / 50


def test_extend_stores_what_setdefault_would() -> None:
    rng = random.Random(5)
    full = [rng.getrandbits(64) for _ in range(3000)]
    full += [k ^ (1 << 40) for k in full[:300]]  # the same low 32 bits, another full key
    full += full[:500]  # keys said again: the first item keeps them
    keys = array("I", [k & 0xFFFFFFFF for k in full])

    def confirm(item: int, key: int) -> bool:
        return full[item] == key

    one_by_one = KeyTable(keys, confirm=confirm, capacity=64)
    for item, key in enumerate(full):
        one_by_one.setdefault(key, item)
    first = list({key: item for item, key in reversed(list(enumerate(full)))}.values())
    at_once = KeyTable(keys, confirm=confirm, capacity=64)
    at_once.extend(first[:100])
    at_once.extend(first[100:])
    absent = [rng.getrandbits(64) for _ in range(500)]
    assert at_once.count == one_by_one.count == len(set(full))
    assert [at_once.get(k) for k in full + absent] == [one_by_one.get(k) for k in full + absent]


@pytest.mark.parametrize("memory_rows", [4096, 40])
def test_band_tables_filled_late_answer_as_filled_early(memory_rows: int) -> None:
    """While queries are exhaustive the LSH band tables are not filled; they are, at once,
    before the first LSH query: from then on the answers are the same as always."""
    rng = random.Random(2)
    words = ["play", "some", "jazz", "music", "turn", "on", "the", "kitchen", "light", "now",
             "please", "set", "alarm"]
    texts = [" ".join(rng.choice(words) for _ in range(rng.randint(6, 12))) for _ in range(600)]
    for i in range(250, 600, 3):  # near copies of earlier texts, after the switch to LSH
        texts[i] = texts[rng.randrange(i)] + " ok"
    answers = []
    for late in (True, False):
        index = MinHashIndex(exhaustive_below=200, memory_rows=memory_rows)
        if not late:  # filled item by item, as before
            index._banded = True
        got = []
        for sig, keys in zip(index.signatures(texts), index.band_keys(
                index.signatures(texts)).tolist(), strict=True):
            match = index.query(sig, keys)
            if match is None:
                index.insert(sig, keys)
            got.append(match)
        answers.append(got)
    assert answers[0] == answers[1] and sum(a is not None for a in answers[0][200:]) > 10
