"""MinHash LSH over character n-grams, vectorised with numpy.

A signature is ``num_perm`` minima of a 2-universal hash family over the
character n-gram hashes of the normalised text (char n-grams work for every
script, spaced or not). LSH bands of ``rows`` values are folded into one 64-bit
key, and each band keeps a table from key to the first item that had it
(:class:`~textsynth.quality.tables.KeyTable`: 4 bytes a slot; of the keys only their
low 32 bits stay in memory, 4 bytes per band and item, and when those agree the full
key is recomputed from the stored signature, so the tables answer as 64-bit dicts).
Candidates from the bands are confirmed on the signatures themselves (estimated
Jaccard similarity at least ``threshold``); the first signatures stay in memory,
later ones are spilled to a temporary file (fixed-size records: no offsets) and read
back only for a candidate, so a stored item costs 80-110 bytes of memory at 8 bands
(the tables' share depends on how full they are). While queries compare with every
stored item (up to ``exhaustive_below``) the band tables are not asked, so they are
filled once, in a few numpy passes, just before the first LSH query.

Measured against datasketch 2.0 (``MinHash`` + ``MinHashLSH``, same threshold and
permutations), this computes signatures for a whole batch in a few numpy calls
instead of one Python object per string, and stores a band key as an int rather
than a bytes object: see ``benchmarks/dedup.py``.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from textsynth.quality.lsh import lsh_params
from textsynth.quality.normalize import normalize, normalize_many
from textsynth.quality.tables import KeyTable, SpillFile

if TYPE_CHECKING:
    import numpy as np

__all__ = ["MinHashIndex", "lsh_params"]

_MASK64 = (1 << 64) - 1


class MinHashIndex:
    """Incremental near-duplicate index: ``query`` then ``insert``, or ``dedup`` in bulk.

    ``key_bits`` of each band key stay in memory (32; 64 keeps them whole, fewer only
    make the stored signatures settle more low-bit collisions, as tests do).

    >>> index = MinHashIndex(threshold=0.8)
    >>> index.dedup(["play some jazz", "Play some jazz!!", "what's the weather"])
    [None, 0, None]
    """

    def __init__(self, threshold: float = 0.8, num_perm: int = 64, ngram: int = 4,
                 seed: int = 1, exhaustive_below: int = 0, memory_rows: int = 4096,
                 key_bits: int = 32):
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
        self._mix = self._band_mix.tolist()
        self._powers = np.array([pow(0x100000001B3, ngram - 1 - k, 1 << 64)
                                 for k in range(ngram)], dtype=np.uint64)
        # band keys' low 32 bits of every item, item after item; a table per band holds
        # item numbers and checks a full key on the stored signature when the low bits agree
        self._keys: array[int] = array("I" if key_bits <= 32 else "Q")
        self._key_mask = (1 << key_bits) - 1
        self._tables = [KeyTable(self._keys, self.bands, band, key_bits=key_bits,
                                 confirm=self._confirmer(band) if key_bits < 64 else None)
                        for band in range(self.bands)]
        # signatures: the first ones in memory (all of them while queries are exhaustive)
        self._head = np.empty((max(exhaustive_below, memory_rows), num_perm), dtype=np.uint32)
        self._spill = SpillFile(record_size=4 * num_perm)
        self._read: tuple[int, np.ndarray] | None = None  # the last signature read from disk
        # the band keys of the last query that found no match, and each band's owner then
        self._owners: tuple[Sequence[int], list[int | None]] | None = None
        self.size = 0
        # while queries are exhaustive the band tables are not asked: items go into them
        # all at once when the first query needs them (see _build_bands)
        self._banded = not exhaustive_below
        # equal values a match needs (the same float test as the similarity's)
        self._need = next(c for c in range(num_perm + 1) if c / num_perm >= threshold)
        # the first 32 values of the in-memory signatures again, contiguous, to rule
        # out rows in exhaustive queries (none below 32 permutations)
        self._probe_head = np.empty((len(self._head), 32 if num_perm >= 32 else 0),
                                    dtype=np.uint32)
        self._init_blocks(rng)
        self.compared = 0  # stored signatures compared in full by exhaustive queries

    def _init_blocks(self, rng: np.random.Generator) -> None:
        """Pigeonhole blocks for the exhaustive queries.

        A near-duplicate differs in at most ``spare = num_perm - need`` values, so if
        the signature is cut into ``spare + 1`` blocks, one block of it is equal to the
        query's. A table per block from the block's values to the items that have
        them gives every stored item that can be a near-duplicate: the same answer as
        comparing with all of them, at the cost of a few lookups. Where blocks would
        be shorter than two values, equal blocks say too little: every row is compared.
        The block tables are dicts: they live only while queries are exhaustive (up to
        ``exhaustive_below`` items, a few MB at most), where a lookup is on the hot path.
        """
        import numpy as np

        blocks = self.num_perm - self._need + 1
        self._blocks = blocks if self.exhaustive_below and 2 * blocks <= self.num_perm else 0
        self._block_prev: array[int] = array("i")  # the previous item with the same key
        self._block_tables: list[dict[int, int]] = [{} for _ in range(self._blocks)]
        sizes = np.full(max(1, self._blocks), self.num_perm // max(1, self._blocks))
        sizes[: self.num_perm % max(1, self._blocks)] += 1
        self._block_starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        self._block_mix = rng.integers(1, 1 << 63, self.num_perm, dtype=np.uint64) | 1
        self._last_blocks: tuple[np.ndarray, list[int]] | None = None

    # -- signatures ----------------------------------------------------------------
    def signatures(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), num_perm)`` uint32 signatures of the normalised texts."""
        import numpy as np

        if len(texts) == 1:
            return self._signature(texts[0])[None]
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

    def _signature(self, text: str) -> np.ndarray:
        """One text's signature: the same values as :meth:`signatures`, in fewer numpy calls
        (the gate asks for one candidate at a time)."""
        import numpy as np

        n = self.ngram
        norm = normalize(text).ljust(n, "\x00")
        codes = np.frombuffer(norm.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
        total = len(codes) - n + 1
        h = codes[:total] * self._powers[0]
        for k in range(1, n):
            h += codes[k:k + total] * self._powers[k]
        h ^= h >> np.uint64(33)  # murmur3 fmix64, as in _shingle_hashes
        h *= np.uint64(0xFF51AFD7ED558CCD)
        h ^= h >> np.uint64(33)
        shingles = (h >> np.uint64(32)).astype(np.uint32)
        perm = shingles[:, None] * self._a32[None, :]
        perm += self._b32[None, :]
        mins: np.ndarray = perm.min(axis=0)
        return mins

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
        mixed: np.ndarray = keys ^ (keys >> np.uint64(29))
        return mixed

    def _confirmer(self, band: int) -> Callable[[int, int], bool]:
        """For ``band``'s table: whether stored ``item``'s full band key is ``key`` (the
        same arithmetic as :meth:`band_keys`, on the stored signature)."""
        lo, hi, mix = band * self.rows, (band + 1) * self.rows, self._mix[band]

        def confirm(item: int, key: int) -> bool:
            values: list[int] = self._stored(item)[lo:hi].tolist()
            folded: int = sum(v * m for v, m in zip(values, mix, strict=True)) & _MASK64
            return (folded ^ (folded >> 29)) == key

        return confirm

    # -- the index -----------------------------------------------------------------
    def _stored(self, item: int) -> np.ndarray:
        """The signature of stored ``item`` (the first ones in memory, the rest on disk)."""
        import numpy as np

        if item < len(self._head):
            head: np.ndarray = self._head[item]
            return head
        if self._read is None or self._read[0] != item:  # a confirmed key, then similarity
            self._read = (item, np.frombuffer(self._spill.get(item - len(self._head)),
                                              dtype=np.uint32))
        return self._read[1]

    def similarity(self, sig: np.ndarray, item: int) -> float:
        """Estimated Jaccard similarity of ``sig`` and the stored ``item``."""
        return float((self._stored(item) == sig).mean())

    def _keys_of_blocks(self, sig: np.ndarray) -> list[int]:
        """The pigeonhole block keys of ``sig`` (a query and the insert after it ask for
        the same signature)."""
        import numpy as np

        if self._last_blocks is not None and self._last_blocks[0] is sig:
            return self._last_blocks[1]
        keys = np.add.reduceat(sig.astype(np.uint64) * self._block_mix, self._block_starts)
        keys ^= keys >> np.uint64(29)
        out: list[int] = keys.tolist()
        self._last_blocks = (sig, out)
        return out

    def _exact(self, sig: np.ndarray) -> int | None:
        """What :meth:`_exhaustive` answers, from the items that share a pigeonhole
        block with ``sig`` (every near-duplicate does); texts so alike that they are
        a good share of the index are compared with every row instead."""
        if not self._blocks:
            return self._exhaustive(sig)
        blocks, prev, most = self._blocks, self._block_prev, self.size // 8
        found: list[int] = []
        for block, (table, key) in enumerate(zip(self._block_tables,
                                                 self._keys_of_blocks(sig), strict=True)):
            item = table.get(key)
            while item is not None and item >= 0:
                found.append(item)
                item = prev[item * blocks + block]
            if len(found) > most:
                return self._exhaustive(sig)
        if not found:
            return None
        rows = sorted(set(found))  # ascending: the first item wins a tie
        self.compared += len(rows)
        full = (self._head[rows] == sig).sum(axis=1)
        best = int(full.argmax())
        return rows[best] if full[best] / self.num_perm >= self.threshold else None

    def _exhaustive(self, sig: np.ndarray) -> int | None:
        """The most similar stored item (the first on a tie) if it is a near-duplicate.

        A match needs ``_need`` equal values; the first 32 rule out most rows
        cheaply. Counting equal values gives the same order and threshold test as
        their mean, so the answer is the argmax of the similarities.
        """
        import numpy as np

        head = self._head[: self.size]
        probe = self._probe_head.shape[1]
        rows: np.ndarray | None = None
        if probe:
            equal = (self._probe_head[: self.size] == sig[:probe]).view(np.uint64)
            # bools are words of eight 0/1 bytes: add the words, a multiply sums the bytes
            counts = (equal.sum(axis=1, dtype=np.uint64) * np.uint64(0x0101010101010101)) >> \
                np.uint64(56)
            rows = np.flatnonzero(counts >= self._need - (self.num_perm - probe))
            if not len(rows):
                return None
            if 2 * len(rows) > self.size:  # similar texts: gathering rows costs more
                rows = None
        self.compared += self.size if rows is None else len(rows)
        if rows is None:
            full = np.count_nonzero(head == sig, axis=1)
            best = int(full.argmax())
            return best if full[best] / self.num_perm >= self.threshold else None
        full = np.count_nonzero(head[rows] == sig, axis=1)
        best = int(full.argmax())
        return int(rows[best]) if full[best] / self.num_perm >= self.threshold else None

    def query(self, sig: np.ndarray, keys: Sequence[int] | None = None) -> int | None:
        """The first stored item that is a near-duplicate of ``sig``, or None.

        Up to ``exhaustive_below`` stored items, every one is compared (no LSH
        misses); above that, only the LSH candidates are.
        """

        if 0 < self.size <= self.exhaustive_below:
            return self._exact(sig)
        if not self._banded:
            if not self.size:  # nothing stored: nothing to find
                return None
            self._build_bands()
        if keys is None:
            keys = self.band_keys(sig[None])[0].tolist()
        tried = -1
        owners: list[int | None] = []
        for table, key in zip(self._tables, keys, strict=True):
            item = table.get(key)
            owners.append(item)
            if item is not None and item != tried:
                if self.similarity(sig, item) >= self.threshold:
                    return item
                tried = item
        self._owners = (keys, owners)
        return None

    def insert(self, sig: np.ndarray, keys: Sequence[int] | None = None) -> int:
        """Store ``sig``; returns its item number (0, 1, 2 ... in order)."""
        if keys is None:
            keys = self.band_keys(sig[None])[0].tolist()
        item = self.size
        if item < len(self._head):
            self._head[item] = sig
            self._probe_head[item] = sig[: self._probe_head.shape[1]]
        else:
            self._spill.append(sig.astype("<u4", copy=False).tobytes())
        self._keys.extend([key & self._key_mask for key in keys])
        self.size += 1
        # a band whose key the last query found owned keeps its owner (tables only grow):
        # no second lookup, nor a second check of the full key, for the same keys
        looked, self._owners = self._owners, None
        owners = looked[1] if looked is not None and looked[0] is keys else None
        if self._banded:
            for band, (table, key) in enumerate(zip(self._tables, keys, strict=True)):
                if owners is None or owners[band] is None:
                    table.setdefault(key, item)
        elif item + 1 >= self.exhaustive_below:  # the next query but one is an LSH query
            self._build_bands()
        if item < self.exhaustive_below and self._blocks:
            prev = self._block_prev
            for block, key in zip(self._block_tables, self._keys_of_blocks(sig), strict=True):
                prev.append(block.get(key, -1))
                block[key] = item
        elif self._blocks:  # queries use LSH from now on
            self._blocks, self._block_tables, self._block_prev = 0, [], array("i")
        return item

    def _build_bands(self) -> None:
        """Put every item stored so far into the band tables, as ``setdefault`` one item
        after the other would (the first item with each full key), in a few numpy passes."""
        import numpy as np

        self._banded = True
        assert self.size <= len(self._head)  # items of exhaustive queries are all in memory
        keys = self.band_keys(self._head[: self.size])
        for band, table in enumerate(self._tables):
            _, first = np.unique(keys[:, band], return_index=True)
            table.extend(np.sort(first).tolist())

    @property
    def nbytes(self) -> int:
        """Bytes of memory the index holds (signatures past the first ones are on disk)."""
        return (self._head.nbytes + len(self._keys) * self._keys.itemsize
                + sum(t.nbytes for t in self._tables) + self._spill.nbytes
                + 4 * len(self._block_prev)
                + sum(sys.getsizeof(t) + 64 * len(t) for t in self._block_tables))

    def dedup(self, texts: Sequence[str], chunk: int = 8192) -> list[int | None]:
        """For each text in order: the item number of an earlier near-duplicate, or None
        (and then the text is stored as the next item).

        The same result as ``query`` then ``insert`` one text at a time with LSH
        only, but signatures and band keys are computed a chunk at a time.
        """
        out: list[int | None] = []
        exhaustive, self.exhaustive_below = self.exhaustive_below, 0
        try:
            for start in range(0, len(texts), chunk):
                sigs = self.signatures(texts[start:start + chunk])
                for sig, keys in zip(sigs, self.band_keys(sigs).tolist(), strict=True):
                    match = self.query(sig, keys)
                    if match is None:
                        self.insert(sig, keys)
                    out.append(match)
        finally:
            self.exhaustive_below = exhaustive
        return out
