"""MinHash LSH over character n-grams, vectorised with numpy.

A signature is ``num_perm`` minima of a 2-universal hash family over the
character n-gram hashes of the normalised text (char n-grams work for every
script, spaced or not). LSH bands of ``rows`` values are folded into one 64-bit
key, and each band keeps a plain dict from key to the first item that had it.
Candidates from the bands are confirmed on the signatures themselves (estimated
Jaccard similarity at least ``threshold``).

Measured against datasketch 2.0 (``MinHash`` + ``MinHashLSH``, same threshold and
permutations), this computes signatures for a whole batch in a few numpy calls
instead of one Python object per string, and stores a band key as an int rather
than a bytes object: see ``benchmarks/dedup.py``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from textsynth.quality.normalize import normalize

if TYPE_CHECKING:
    import numpy as np

__all__ = ["MinHashIndex", "lsh_params"]

_MASK64 = (1 << 64) - 1


def lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """Bands and rows minimising false positives plus false negatives around ``threshold``.

    >>> lsh_params(0.8, 64)
    (6, 10)
    """
    import numpy as np

    grid = np.linspace(0.0, 1.0, 201)
    best, best_err = (1, num_perm), float("inf")
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            p = 1.0 - (1.0 - grid**rows) ** bands
            fp = np.trapezoid(np.where(grid < threshold, p, 0.0), grid)
            fn = np.trapezoid(np.where(grid >= threshold, 1.0 - p, 0.0), grid)
            if fp + fn < best_err:
                best, best_err = (bands, rows), fp + fn
    return best


class MinHashIndex:
    """Incremental near-duplicate index: ``query`` then ``insert``, or ``dedup`` in bulk.

    >>> index = MinHashIndex(threshold=0.8)
    >>> index.dedup(["play some jazz", "Play some jazz!!", "what's the weather"])
    [None, 0, None]
    """

    def __init__(self, threshold: float = 0.8, num_perm: int = 64, ngram: int = 4,
                 seed: int = 1):
        import numpy as np

        if not 0.0 < threshold <= 1.0:
            raise ValueError("threshold must be in (0, 1]")
        self.threshold = threshold
        self.num_perm = num_perm
        self.ngram = ngram
        self.bands, self.rows = lsh_params(threshold, num_perm)
        rng = np.random.default_rng(seed)
        self._a = rng.integers(1, 1 << 32, num_perm, dtype=np.uint64) | np.uint64(1)
        self._b = rng.integers(0, 1 << 32, num_perm, dtype=np.uint64)
        self._a32 = self._a.astype(np.uint32)
        self._b32 = self._b.astype(np.uint32)
        self._band_mix = rng.integers(1, 1 << 63, (self.bands, self.rows), dtype=np.uint64) | 1
        self._powers = np.array([pow(0x100000001B3, ngram - 1 - k, 1 << 64)
                                 for k in range(ngram)], dtype=np.uint64)
        self._tables: list[dict[int, int]] = [{} for _ in range(self.bands)]
        self._sigs = np.empty((1024, num_perm), dtype=np.uint32)
        self.size = 0

    # -- signatures ----------------------------------------------------------------
    def signatures(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), num_perm)`` uint32 signatures of the normalised texts."""
        import numpy as np

        n = self.ngram
        codes, starts = [], []
        offset = 0
        for text in texts:
            norm = normalize(text) or "\x00"
            arr = np.frombuffer(norm.encode("utf-32-le"), dtype=np.uint32)
            if len(arr) < n:
                arr = np.concatenate([arr, np.zeros(n - len(arr), dtype=np.uint32)])
            codes.append(arr)
            starts.append(offset)
            offset += len(arr) - n + 1
        flat = np.concatenate(codes).astype(np.uint64)
        lengths = np.array([len(c) for c in codes], dtype=np.int64)
        hashes = self._shingle_hashes(flat, lengths)
        out = np.empty((len(texts), self.num_perm), dtype=np.uint32)
        idx = np.asarray(starts, dtype=np.int64)
        for k in range(self.num_perm):  # one pass per permutation keeps memory flat
            perm = hashes * self._a32[k] + self._b32[k]  # uint32 wraparound is the modulus
            out[:, k] = np.minimum.reduceat(perm, idx)
        return out

    def _shingle_hashes(self, flat: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """32-bit hashes of every n-gram that lies inside one text, text after text."""
        import numpy as np

        n = self.ngram
        total = len(flat) - n + 1
        h = np.zeros(total, dtype=np.uint64)
        for k in range(n):
            h += flat[k:k + total] * self._powers[k]
        ends = np.cumsum(lengths)
        # windows starting in the last n-1 positions of a text cross into the next one
        valid = np.ones(total, dtype=bool)
        for k in range(1, n):
            cut = ends - k
            valid[cut[cut < total]] = False
        h = h[valid]
        h ^= h >> np.uint64(33)  # murmur3 fmix64: spread the polynomial hash
        h *= np.uint64(0xFF51AFD7ED558CCD)
        h ^= h >> np.uint64(33)
        return (h >> np.uint64(32)).astype(np.uint32)

    def band_keys(self, sigs: np.ndarray) -> np.ndarray:
        """``(len(sigs), bands)`` 64-bit keys, one per LSH band."""
        import numpy as np

        used = sigs[:, : self.bands * self.rows].astype(np.uint64)
        bands = used.reshape(len(sigs), self.bands, self.rows)
        keys = (bands * self._band_mix[None]).sum(axis=2, dtype=np.uint64)
        return keys ^ (keys >> np.uint64(29))

    # -- the index -----------------------------------------------------------------
    def similarity(self, sig: np.ndarray, item: int) -> float:
        """Estimated Jaccard similarity of ``sig`` and the stored ``item``."""
        return float((self._sigs[item] == sig).mean())

    def _candidates(self, keys: Sequence[int]) -> Iterator[int]:
        seen = set()
        for table, key in zip(self._tables, keys, strict=True):
            item = table.get(key)
            if item is not None and item not in seen:
                seen.add(item)
                yield item

    def query(self, sig: np.ndarray, keys: Sequence[int] | None = None) -> int | None:
        """The first stored item that is a near-duplicate of ``sig``, or None."""
        if keys is None:
            keys = self.band_keys(sig[None])[0].tolist()
        for item in self._candidates(keys):
            if self.similarity(sig, item) >= self.threshold:
                return item
        return None

    def insert(self, sig: np.ndarray, keys: Sequence[int] | None = None) -> int:
        """Store ``sig``; returns its item number (0, 1, 2 ... in insertion order)."""
        import numpy as np

        if keys is None:
            keys = self.band_keys(sig[None])[0].tolist()
        item = self.size
        if item == len(self._sigs):
            grown = np.empty((2 * len(self._sigs), self.num_perm), dtype=np.uint32)
            grown[:item] = self._sigs
            self._sigs = grown
        self._sigs[item] = sig
        for table, key in zip(self._tables, keys, strict=True):
            table.setdefault(key, item)
        self.size += 1
        return item

    def dedup(self, texts: Sequence[str], chunk: int = 4096) -> list[int | None]:
        """For each text in order: the stored item it duplicates, or None (then it is stored)."""
        out: list[int | None] = []
        for start in range(0, len(texts), chunk):
            sigs = self.signatures(texts[start:start + chunk])
            for sig, keys in zip(sigs, self.band_keys(sigs).tolist(), strict=True):
                match = self.query(sig, keys)
                if match is None:
                    self.insert(sig, keys)
                out.append(match)
        return out
