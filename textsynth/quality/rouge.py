"""ROUGE-L between short texts, as Self-Instruct uses it to keep only novel examples.

ROUGE-L F1 of two token lists is ``2 * LCS / (len(a) + len(b))``: exactly the
normalised Indel similarity, which rapidfuzz computes in C++. Tokens are mapped
to one character each (:func:`~textsynth.quality.normalize.encode_tokens`) so
rapidfuzz compares word sequences; any script works (see ``word_tokens``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textsynth.quality.normalize import encode_tokens, word_tokens

__all__ = ["RougeMatch", "RougePool", "rouge_l"]


def _rapidfuzz() -> tuple[Any, Any, Any]:
    from rapidfuzz import process  # a core dependency, imported when used
    from rapidfuzz.distance import Indel, LCSseq
    return process, Indel, LCSseq


def rouge_l(a: str, b: str) -> float:
    """ROUGE-L F1 of two texts on word tokens.

    >>> round(rouge_l("add this song to my playlist", "add that song to my playlist"), 2)
    0.83
    """
    _, indel, _ = _rapidfuzz()
    vocab: dict[str, str] = {}
    x, y = encode_tokens(word_tokens(a), vocab), encode_tokens(word_tokens(b), vocab)
    if not x and not y:
        return 1.0
    return float(indel.normalized_similarity(x, y))


@dataclass(frozen=True)
class RougeMatch:
    """The closest pooled text: its position, ROUGE-L F1, and how much of it is covered."""

    index: int
    f1: float
    recall: float


class RougePool:
    """Texts to compare new candidates against (seeds, accepted examples)."""

    def __init__(self, texts: list[str] | None = None):
        self._process, self._indel, self._lcs = _rapidfuzz()
        self._vocab: dict[str, str] = {}
        self.texts: list[str] = []
        self._encoded: list[str] = []
        self._last: tuple[str, str] = ("", "")  # the last query and its encoding
        for text in texts or []:
            self.add(text)

    def __len__(self) -> int:
        return len(self.texts)

    def add(self, text: str) -> None:
        self.texts.append(text)
        self._encoded.append(encode_tokens(word_tokens(text), self._vocab))

    def _query(self, text: str) -> str:
        """``text`` encoded; rules often ask about the same candidate several times."""
        if self._last[0] != text:
            self._last = (text, encode_tokens(word_tokens(text), self._vocab))
        return self._last[1]

    def closest(self, text: str, cutoff: float = 0.0) -> RougeMatch | None:
        """The pooled text with the highest ROUGE-L F1 at or above ``cutoff``, or None."""
        if not self._encoded:
            return None
        query = self._query(text)
        found = self._process.extractOne(
            query, self._encoded, scorer=self._indel.normalized_similarity,
            score_cutoff=cutoff, processor=None)
        if found is None:
            return None
        _, score, index = found
        return RougeMatch(index, float(score), self._recall(query, index))

    def covering(self, text: str, min_tokens: int, recall: float) -> RougeMatch | None:
        """A pooled text of ``min_tokens`` or more whose tokens ``text`` contains, in order,
        for at least ``recall`` of them (a seed copied inside a longer candidate)."""
        query = self._query(text)
        for index, seed in enumerate(self._encoded):
            if len(seed) >= min_tokens and self._recall(query, index) >= recall:
                f1 = float(self._indel.normalized_similarity(query, seed))
                return RougeMatch(index, f1, self._recall(query, index))
        return None

    def most_contained(self, text: str) -> tuple[int, float] | None:
        """The pooled text that holds the largest share of ``text``'s words, in order,
        and that share (ROUGE-L precision of ``text``)."""
        query = self._query(text)
        if not query or not self._encoded:
            return None
        shares = [self._lcs.similarity(query, other) / len(query) for other in self._encoded]
        best = max(range(len(shares)), key=shares.__getitem__)
        return best, float(shares[best])

    def _recall(self, query: str, index: int) -> float:
        seed = self._encoded[index]
        if not seed:
            return 0.0
        return float(self._lcs.similarity(query, seed)) / len(seed)
