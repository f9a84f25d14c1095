"""Deduplicators: rules that judge a candidate against what was already accepted.

Exact, near-duplicate (MinHash LSH) and semantic (embedding cosine) dedup work
across labels: the same or near-same text under two labels is a conflict. The
candidate is dropped and, with ``withdraw_conflicts`` (the default), the earlier
example is withdrawn too, since a classifier cannot learn from a text that
belongs to two labels; the region stays marked, so later matches are dropped.
ROUGE-L novelty (Self-Instruct) compares within a label, against its seeds and
accepted examples.
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from textsynth.example import Example
from textsynth.quality.base import KEEP, Rule, Verdict
from textsynth.quality.normalize import normalize
from textsynth.quality.tables import KeyTable, SpillFile

if TYPE_CHECKING:
    from textsynth.quality.semantic import Embedder, IndexKind

__all__ = ["ExactDedup", "NearDuplicateDedup", "RougeNovelty", "SemanticDedup"]

_PRIMED_MAX = 2048  # signatures computed ahead and not used yet, at most (~1.5 MB)


class _Owners:
    """Who has each stored item: a label code (2 bytes), the text on disk (its offset:
    4 bytes), and the few items claimed by two labels. About 6 bytes of memory an item."""

    def __init__(self) -> None:
        self.labels: list[str] = []
        self._codes: dict[str, int] = {}
        self._label = array("H")
        self._texts = SpillFile()
        self.conflicted: set[int] = set()

    def __len__(self) -> int:
        return len(self._label)

    def append(self, label: str, text: str) -> int:
        code = self._codes.get(label)
        if code is None:
            code = self._codes[label] = len(self.labels)
            self.labels.append(label)
        self._label.append(code)
        self._texts.append(text.encode("utf-8", "surrogatepass"))
        return len(self._label) - 1

    def label(self, item: int) -> str:
        return self.labels[self._label[item]]

    def text(self, item: int) -> str:
        return self._texts.get(item).decode("utf-8", "surrogatepass")

    @property
    def nbytes(self) -> int:
        return 2 * len(self._label) + self._texts.nbytes + 64 * len(self.conflicted)


class _CrossLabelRule(Rule):
    """Shared handling of a match: same label is a duplicate, another label a conflict."""

    kind = "duplicate"

    def __init__(self, withdraw_conflicts: bool = True):
        super().__init__()
        self.withdraw_conflicts = withdraw_conflicts
        self.owners = _Owners()

    def _judge(self, example: Example, item: int, detail: str = "") -> Verdict:
        owners = self.owners
        if item in owners.conflicted:
            return Verdict(False, f"cross_label_{self.kind}",
                           f"matches a text claimed by two labels{detail}")
        label, text = owners.label(item), owners.text(item)
        if label == example.label:
            return Verdict(False, self.kind, f"matches {text!r}{detail}")
        if self.withdraw_conflicts:
            owners.conflicted.add(item)
            self.withdraw(label, text)
        return Verdict(False, f"cross_label_{self.kind}",
                       f"matches {text!r} under '{label}'{detail}")


class ExactDedup(_CrossLabelRule):
    """Normalised exact duplicates across the whole run (every label).

    A normalised text is kept as its 64-bit BLAKE2b hash in a compact table (about
    25 bytes an item with its owner): two different texts share a hash with a
    chance of about one in 10^7 in a run of ten million.
    """

    name = "exact_dedup"

    def __init__(self, withdraw_conflicts: bool = True):
        super().__init__(withdraw_conflicts)
        self._hashes: array[int] = array("Q")
        self.seen = KeyTable(self._hashes)
        self._last: tuple[str, int] | None = None

    def _hash(self, text: str) -> int:
        """The normalised text's hash (check and add ask for the same text)."""
        if self._last is None or self._last[0] != text:
            digest = hashlib.blake2b(normalize(text).encode("utf-8", "surrogatepass"),
                                     digest_size=8).digest()
            self._last = (text, int.from_bytes(digest, "little"))
        return self._last[1]

    @property
    def nbytes(self) -> int:
        """Bytes of memory the rule's state holds (texts are on disk)."""
        return 8 * len(self._hashes) + self.seen.nbytes + self.owners.nbytes

    def check(self, example: Example) -> Verdict:
        item = self.seen.get(self._hash(example.text))
        return KEEP if item is None else self._judge(example, item)

    def add(self, example: Example) -> None:
        key = self._hash(example.text)
        if self.seen.get(key) is None:
            item = self.owners.append(example.label, example.text)
            self._hashes.append(key)
            self.seen.setdefault(key, item)


class NearDuplicateDedup(_CrossLabelRule):
    """Near duplicates by MinHash LSH over character 4-grams (Jaccard >= threshold)."""

    name = "near_dedup"
    kind = "near_duplicate"

    def __init__(self, threshold: float = 0.8, num_perm: int = 64, ngram: int = 4,
                 withdraw_conflicts: bool = True):
        from textsynth.quality.minhash import MinHashIndex

        super().__init__(withdraw_conflicts)
        # a run's accepted set is small: compare with all of it, LSH only beyond 5k
        self.index = MinHashIndex(threshold, num_perm, ngram, exhaustive_below=5_000)
        self._last: tuple[str, Any] | None = None
        self._primed: dict[str, tuple[Any, list[int]]] = {}  # see prime()

    def prime(self, texts: Sequence[str]) -> None:
        """Compute the signatures of candidates to come in one batch (a few numpy calls
        for all of them instead of a dozen for each); check() takes them from here."""
        if len(self._primed) > _PRIMED_MAX:  # candidates never checked (quota met ...)
            self._primed.clear()
        texts = [t for t in dict.fromkeys(texts) if t not in self._primed]
        if not texts:
            return
        sigs = self.index.signatures(texts)
        for text, sig, keys in zip(texts, sigs, self.index.band_keys(sigs).tolist(),
                                   strict=True):
            self._primed[text] = (sig, keys)

    def _signature(self, text: str) -> tuple[Any, list[int]]:
        """The text's signature and band keys (check and add ask for the same text)."""
        if self._last is None or self._last[0] != text:
            found = self._primed.pop(text, None)
            if found is None:
                sig = self.index.signatures([text])[0]
                found = (sig, self.index.band_keys(sig[None])[0].tolist())
            self._last = (text, found)
        return self._last[1]

    @property
    def nbytes(self) -> int:
        """Bytes of memory the rule's state holds (texts and most signatures are on disk)."""
        return self.index.nbytes + self.owners.nbytes

    def check(self, example: Example) -> Verdict:
        sig, keys = self._signature(example.text)
        item = self.index.query(sig, keys)
        if item is None:
            return KEEP
        score = self.index.similarity(sig, item)
        return self._judge(example, item, f" (Jaccard ~{score:.2f})")

    def add(self, example: Example) -> None:
        self.index.insert(*self._signature(example.text))
        self.owners.append(example.label, example.text)


class SemanticDedup(_CrossLabelRule):
    """Paraphrases: cosine of sentence embeddings (all-MiniLM-L6-v2) >= threshold."""

    name = "semantic_dedup"
    kind = "semantic_duplicate"
    needs_prepare = True

    def __init__(self, threshold: float = 0.9, embedder: Embedder | None = None,
                 withdraw_conflicts: bool = True, index: IndexKind = "auto"):
        from textsynth.quality.semantic import Embedder, SemanticIndex

        super().__init__(withdraw_conflicts)
        self.embedder = embedder or Embedder()
        self.index = SemanticIndex(threshold, index=index)
        self._cache: dict[str, Any] = {}

    @property
    def nbytes(self) -> int:
        """Bytes of memory the rule's state holds (older vectors and texts are on disk)."""
        return self.index.nbytes + self.owners.nbytes

    def _vector(self, text: str) -> Any:
        vector = self._cache.get(text)
        if vector is None:
            if len(self._cache) > 4096:
                self._cache.clear()
            vector = self._cache[text] = self.embedder.encode([text])[0]
        return vector

    async def prepare(self, examples: Any) -> None:
        """Embed a whole completion's candidates in one batch (faster than one by one)."""
        texts = [e.text for e in examples if e.text not in self._cache]
        if texts:
            for text, vector in zip(texts, self.embedder.encode(texts), strict=True):
                self._cache[text] = vector

    def check(self, example: Example) -> Verdict:
        found = self.index.query(self._vector(example.text))
        if found is None:
            return KEEP
        item, score = found
        return self._judge(example, item, f" (cosine {score:.2f})")

    def add(self, example: Example) -> None:
        self.index.insert(self._vector(example.text))
        self.owners.append(example.label, example.text)
        self._cache.pop(example.text, None)


class RougeNovelty(Rule):
    """Self-Instruct's novelty test: ROUGE-L F1 with every seed and accepted example
    of the same label must stay below ``threshold`` (0.7 in Self-Instruct).

    ``references`` are further texts per label to stay away from, such as the
    label's description: a small model that copies the description into every
    answer is not writing new examples.
    """

    name = "novelty"

    def __init__(self, threshold: float = 0.7, seeds: dict[str, list[str]] | None = None,
                 references: dict[str, list[str]] | None = None):
        from textsynth.quality.rouge import RougePool

        super().__init__()
        self.threshold = threshold
        self._pool_type = RougePool
        self.pools: dict[str, RougePool] = {}
        self._fixed: dict[str, tuple[int, int]] = {}  # label -> (seeds, seeds + references)
        for label in {*(seeds or {}), *(references or {})}:
            first = list((seeds or {}).get(label, []))
            more = [r for r in (references or {}).get(label, []) if r]
            self.pools[label] = RougePool(first + more)
            self._fixed[label] = (len(first), len(first) + len(more))

    def check(self, example: Example) -> Verdict:
        pool = self.pools.get(example.label)
        if pool is None:
            return KEEP
        match = pool.closest(example.text, cutoff=self.threshold)
        if match is None:
            return KEEP
        n_seeds, n_fixed = self._fixed.get(example.label, (0, 0))
        if match.index < n_seeds:
            what = "a seed example"
        elif match.index < n_fixed:
            what = "the label description"
        else:
            what = repr(pool.texts[match.index])
        return Verdict(False, "not_novel", f"ROUGE-L {match.f1:.2f} with {what}")

    def add(self, example: Example) -> None:
        pool = self.pools.get(example.label)
        if pool is None:
            pool = self.pools[example.label] = self._pool_type()
        pool.add(example.text)
