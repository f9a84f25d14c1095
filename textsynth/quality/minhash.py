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

from collections.abc import Sequence
from typing import TYPE_CHECKING

from textsynth.quality.normalize import normalize_many

if TYPE_CHECKING:
    import numpy as np

__all__ = ["MinHashIndex", "lsh_params"]

_MASK64 = (1 << 64) - 1


def lsh_params(threshold: float, num_perm: int, fn_weight: float = 0.8) -> tuple[int, int]:
    """Bands and rows minimising weighted false positives and negatives around ``threshold``.

    Candidates are confirmed on their signatures, so a false positive costs one
    comparison while a false negative is a missed duplicate: misses weigh more.

    >>> lsh_params(0.8, 64)
    (8, 8)
    """
    import numpy as np

    grid = np.linspace(0.0, 1.0, 201)
    best, best_err = (1, num_perm), float("inf")
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            p = 1.0 - (1.0 - grid**rows) ** bands
            fp = np.trapezoid(np.where(grid < threshold, p, 0.0), grid)
            fn = np.trapezoid(np.where(grid >= threshold, 1.0 - p, 0.0), grid)
            err = float((1 - fn_weight) * fp + fn_weight * fn)
            if err < best_err:
                best, best_err = (bands, rows), err
    return best


class MinHashIndex:
    """Incremental near-duplicate index: ``query`` then ``insert``, or ``dedup`` in bulk.

    >>> index = MinHashIndex(threshold=0.8)
    >>> index.dedup(["play some jazz", "Play some jazz!!", "what's the weather"])
    [None, 0, None]
    """

    def __init__(self, threshold: float = 0.8, num_perm: int = 64, ngram: int = 4,
                 seed: int = 1, exhaustive_below: int = 0):
        import numpy as np

        if not 0.0 < threshold <= 1.0:
            raise ValueError("threshold must be in (0, 1]")
        self.threshold = threshold
        self.num_perm = num_perm
        self.ngram = ngram
        self.exhaustive_below = exhaustive_below
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
        padded = [norm.ljust(n, "\x00") for norm in normalize_many(texts)]
        flat = np.frombuffer("".join(padded).encode("utf-32-le"), dtype=np.uint32)
        flat = flat.astype(np.uint64)
        lengths = np.fromiter(map(len, padded), dtype=np.int64, count=len(padded))
        windows = lengths - n + 1
        starts = np.concatenate([[0], np.cumsum(windows)[:-1]])
        hashes = self._shingle_hashes(flat, lengths)
        idx = starts
        if len(hashes) < 2048:  # a few texts (one candidate): numpy call overhead dominates
            perm = hashes[:, None] * self._a32[None, :] + self._b32[None, :]
            return np.minimum.reduceat(perm, idx, axis=0)
        out = np.empty((self.num_perm, len(texts)), dtype=np.uint32)
        perm = np.empty_like(hashes)
        for k in range(self.num_perm):  # one pass per permutation keeps memory flat
            np.multiply(hashes, self._a32[k], out=perm)  # uint32 wraparound is the modulus
            np.add(perm, self._b32[k], out=perm)
            np.minimum.reduceat(perm, idx, out=out[k])
        return out.T.copy()

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

    def query(self, sig: np.ndarray, keys: Sequence[int] | None = None) -> int | None:
        """The first stored item that is a near-duplicate of ``sig``, or None.

        Up to ``exhaustive_below`` stored items, every one is compared (no LSH
        misses); above that, only the LSH candidates are.
        """
        import numpy as np

        if 0 < self.size <= self.exhaustive_below:
            sims = (self._sigs[: self.size] == sig).mean(axis=1)
            best = int(np.argmax(sims))
            return best if sims[best] >= self.threshold else None
        if keys is None:
            keys = self.band_keys(sig[None])[0].tolist()
        tried = -1
        for table, key in zip(self._tables, keys, strict=True):
            item = table.get(key)
            if item is not None and item != tried:
                if self.similarity(sig, item) >= self.threshold:
                    return item
                tried = item
        return None

    def _reserve(self, count: int) -> None:
        """Room for ``count`` more signatures."""
        import numpy as np

        need = self.size + count
        if need > len(self._sigs):
            grown = np.empty((max(need, 2 * len(self._sigs)), self.num_perm), dtype=np.uint32)
            grown[: self.size] = self._sigs[: self.size]
            self._sigs = grown

    def insert(self, sig: np.ndarray, keys: Sequence[int] | None = None) -> int:
        """Store ``sig``; returns its item number (0, 1, 2 ... in order)."""
        if keys is None:
            keys = self.band_keys(sig[None])[0].tolist()
        self._reserve(1)
        item = self.size
        self._sigs[item] = sig
        self.size += 1
        for table, key in zip(self._tables, keys, strict=True):
            table.setdefault(key, item)
        return item

    def dedup(self, texts: Sequence[str], chunk: int = 8192) -> list[int | None]:
        """For each text in order: the item number of an earlier near-duplicate, or None
        (and then the text is stored as the next item).

        The same result as ``query`` then ``insert`` one text at a time with LSH
        only, but signatures are computed and stored a chunk at a time.
        """
        out: list[int | None] = []
        tables = self._tables
        for start in range(0, len(texts), chunk):
            sigs = self.signatures(texts[start:start + chunk])
            kept: list[int] = []  # offsets in this chunk; item number = self.size + rank
            for offset, keys in enumerate(self.band_keys(sigs).tolist()):
                match, tried = None, -1
                for table, key in zip(tables, keys, strict=True):
                    item = table.get(key)
                    if item is None or item == tried:
                        continue
                    stored = self._sigs[item] if item < self.size else sigs[
                        kept[item - self.size]]
                    if (stored == sigs[offset]).mean() >= self.threshold:
                        match = item
                        break
                    tried = item
                if match is None:
                    item = self.size + len(kept)
                    kept.append(offset)
                    for table, key in zip(tables, keys, strict=True):
                        table.setdefault(key, item)
                out.append(match)
            self._reserve(len(kept))
            self._sigs[self.size:self.size + len(kept)] = sigs[kept]
            self.size += len(kept)
        return out
