"""A cosine-similarity index over unit sentence vectors.

The vectors come from :mod:`textsynth.embeddings` (all-MiniLM-L6-v2, offline, no
torch); ``Embedder`` and ``default_embedding_model`` are re-exported here.

Memory is bounded: the newest vectors stay in memory as float32, up to
``memory_bytes`` (256 MiB: about 175,000 MiniLM vectors); older ones move to an
unnamed temporary file (in ``TMPDIR``) as float16, 768 bytes each, and a query
reads them back a chunk at a time. Float16 keeps a unit vector's cosine to about
1e-4, so a decision changes only for a pair that close to the threshold.

Reading every stored vector makes a query's cost grow with the run (0.55 s at 1M
vectors), so from ``approximate_from`` vectors on (``index="auto"``: 200,000, when
faiss is installed) the index turns approximate: every vector moves to the file, an
inverted file of compact codes (:mod:`textsynth.quality.semantic_ivf`) proposes the
16 likeliest matches of a query, and their exact cosines, read back from the file,
decide as before; only the newest 1,024 vectors, not yet in the inverted file, are
compared one by one. A match is missed only when the codes leave it out of the 16.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Literal

from textsynth._deps import available, require
from textsynth.embeddings import Embedder, default_embedding_model

if TYPE_CHECKING:
    import numpy as np

    from textsynth.quality.semantic_ivf import InvertedFile

__all__ = [
    "APPROXIMATE_SIZE",
    "AUTO_SIZE",
    "Embedder",
    "IndexKind",
    "SemanticIndex",
    "default_embedding_model",
]

log = logging.getLogger(__name__)

IndexKind = Literal["auto", "exact", "approximate"]

AUTO_SIZE = 200_000
"""Stored vectors from which ``index="auto"`` turns approximate (a query then takes
about 1 ms of CPU exactly, 0.1 ms approximately)."""

APPROXIMATE_SIZE = 10_000
"""Stored vectors from which ``index="approximate"`` is: enough to train the codes;
below it the exact scan is as fast."""


class SemanticIndex:
    """Stored unit vectors; a query returns the most similar one above ``threshold``.

    ``memory_bytes`` bounds the vectors held in memory (older ones spill to disk as
    float16); ``chunk_rows`` is how many spilled vectors a query reads at a time.
    ``index`` is ``"exact"`` (every stored vector is compared), ``"approximate"`` (from
    :data:`APPROXIMATE_SIZE` vectors on, or ``approximate_from``) or ``"auto"``
    (approximate from :data:`AUTO_SIZE` on when faiss is installed, else exact);
    ``seed`` seeds the codes' training.

    >>> index = SemanticIndex(threshold=0.9)  # doctest: +SKIP
    >>> index.dedup(embedder.encode(texts))  # doctest: +SKIP
    """

    block_rows = 8192  # vectors in memory are kept in blocks of this many (12 MiB of MiniLM's)
    pending_rows = 1024  # approximate: the newest vectors, compared one by one
    candidates = 16  # approximate: likeliest matches whose exact cosine is computed
    nprobe = 32  # approximate: lists of the inverted file a query reads
    sub_dims = 12  # approximate: dimensions per 4-bit code (12: 16 bytes a MiniLM vector;
    # 32-byte codes found the same 1,649 of 1,650 exact matches at 1M, for 1.6 times the memory)
    regrow = 8  # approximate: retrain with more lists when the index is this many times
    # larger than what the codes were trained on (a small 'approximate' start)

    def __init__(self, threshold: float = 0.9, memory_bytes: int = 256 << 20,
                 chunk_rows: int = 8192, *, index: IndexKind = "auto",
                 approximate_from: int | None = None, seed: int = 0):
        if index not in ("auto", "exact", "approximate"):
            raise ValueError(f"index must be auto, exact or approximate, not {index!r}")
        if index == "approximate":
            require("faiss", "quality.semantic.index: approximate")
        self.threshold = threshold
        self.memory_bytes = memory_bytes
        self.chunk_rows = chunk_rows
        self.kind = index
        self.seed = seed
        self.approximate_from: int | None = None  # stored vectors from which it turns approximate
        if index != "exact":
            self.approximate_from = approximate_from or (
                AUTO_SIZE if index == "auto" else APPROXIMATE_SIZE)
        # the newest vectors, float32, in blocks of equal size (no copy when they grow);
        # the last block fills up first
        self._hot_blocks: list[np.ndarray] = []
        self._hot = 0  # vectors in memory: items cold .. size - 1
        self._cold = 0  # vectors on disk: items 0 .. cold - 1
        self._dim = 0
        self._file: IO[bytes] | None = None
        self._ivf: InvertedFile | None = None  # the spilled vectors' codes, once approximate
        self._trained_on = 0  # vectors on disk when the codes were trained
        self.size = 0

    @property
    def approximate(self) -> bool:
        """Whether queries now go through the inverted file."""
        return self._ivf is not None

    @property
    def nbytes(self) -> int:
        """Bytes of memory the vectors take (those on disk not counted)."""
        codes = self._ivf.nbytes if self._ivf is not None else 0
        return sum(int(block.nbytes) for block in self._hot_blocks) + codes

    @property
    def spilled_bytes(self) -> int:
        """Bytes of vectors in the temporary file."""
        return 2 * self._dim * self._cold

    def _hot_views(self) -> Iterator[np.ndarray]:
        """The filled part of each block in memory, oldest first."""
        left = self._hot
        for block in self._hot_blocks:
            if left <= 0:
                return
            yield block[: min(left, len(block))]
            left -= len(block)

    def _blocks(self, spilled: bool = True) -> Iterator[tuple[int, np.ndarray]]:
        """``(first item, float32 vectors)`` for every stored vector (those in memory only
        unless ``spilled``), oldest first; a spilled block lives in a buffer the next one
        overwrites."""
        import numpy as np

        dim = self._dim
        if self._cold and spilled:
            # two buffers, reused chunk after chunk: 18 MiB at 8,192 MiniLM vectors
            buffer = np.empty((min(self.chunk_rows, self._cold), dim), dtype=np.float16)
            wide = np.empty(buffer.shape, dtype=np.float32)
            for start in range(0, self._cold, self.chunk_rows):
                rows = min(self.chunk_rows, self._cold - start)
                view = buffer[:rows]
                self._pread(view, start)
                np.copyto(wide[:rows], view)
                yield start, wide[:rows]
        start = self._cold
        for view in self._hot_views():
            yield start, view
            start += len(view)

    def _pread(self, into: np.ndarray, item: int) -> None:
        """Fill ``into`` (float16 rows) with the spilled vectors from ``item`` on."""
        assert self._file is not None
        got = os.preadv(self._file.fileno(), [into.data.cast("B")], 2 * self._dim * item)
        if got != into.nbytes:
            raise OSError(f"short read from the semantic index's spill file ({got} "
                          f"of {into.nbytes} bytes)")

    def query(self, vector: np.ndarray, *, exact: bool = False) -> tuple[int, float] | None:
        """``(item, cosine)`` of the closest stored vector at or above the threshold
        (``exact``: compare with every stored vector even when approximate, to measure
        what the inverted file misses)."""
        best, score = -1, float("-inf")
        scan = exact or self._ivf is None
        if not scan:  # the likeliest spilled vectors, then the pending ones
            items, rows = self._likeliest(vector)
            if len(items):
                sims = rows @ vector
                j = int(sims.argmax())
                best, score = int(items[j]), float(sims[j])
        for start, block in self._blocks(spilled=scan):
            sims = block @ vector
            j = int(sims.argmax())
            if sims[j] > score:  # the first of equal maxima, as one argmax would give
                best, score = start + j, float(sims[j])
        return (best, score) if best >= 0 and score >= self.threshold else None

    def query_exact(self, vectors: np.ndarray) -> list[tuple[int, float] | None]:
        """``query(vector, exact=True)`` for each row of ``vectors``, in one pass over the
        stored vectors (to measure what the inverted file misses on many queries)."""
        import numpy as np

        rows = np.arange(len(vectors))
        best = np.full(len(vectors), -1, dtype=np.int64)
        score = np.full(len(vectors), -np.inf, dtype=np.float32)
        for start, block in self._blocks():
            sims = vectors @ block.T
            arg = sims.argmax(axis=1)
            top = sims[rows, arg]
            better = top > score  # the first of equal maxima, as query gives
            best[better], score[better] = start + arg[better], top[better]
        return [(int(b), float(c)) if b >= 0 and c >= self.threshold else None
                for b, c in zip(best, score, strict=True)]

    def _likeliest(self, vector: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The inverted file's likeliest matches: their items in order, and their vectors
        as the file keeps them (float32)."""
        import numpy as np

        assert self._ivf is not None
        items = np.sort(self._ivf.search(vector, self.candidates))
        return items, self._read_items(items)

    def _read_items(self, items: np.ndarray) -> np.ndarray:
        """The spilled vectors ``items`` (float32 rows, in that order), one read each."""
        import numpy as np

        rows = np.empty((len(items), self._dim), dtype=np.float16)
        for i, item in enumerate(items.tolist()):
            self._pread(rows[i:i + 1], item)
        return rows.astype(np.float32)

    def insert(self, vector: np.ndarray) -> int:
        import numpy as np

        self._dim = self._dim or len(vector)
        limit = self._hot_limit()
        if self._hot >= limit:
            self._spill()
        at = self._hot
        for block in self._hot_blocks:
            if at < len(block):
                block[at] = vector
                break
            at -= len(block)
        else:  # every block is full: one more
            capacity = sum(len(b) for b in self._hot_blocks)
            block = np.empty((min(self.block_rows, limit - capacity), self._dim),
                             dtype=np.float32)
            block[0] = vector
            self._hot_blocks.append(block)
        self._hot += 1
        self.size += 1
        if self.approximate_from is not None and self._ivf is None and \
                self.size >= self.approximate_from:
            self._switch()
        return self.size - 1

    def _hot_limit(self) -> int:
        """Vectors kept in memory at most."""
        if self._ivf is not None:
            return self.pending_rows
        return max(1, self.memory_bytes // (4 * self._dim))

    def _spill(self) -> None:
        """Move the vectors in memory to the end of the file, as float16 (and their codes
        to the inverted file, once there is one)."""
        import numpy as np

        if self._file is None:
            # unnamed, removed when closed or when the process ends
            self._file = tempfile.TemporaryFile(prefix="textsynth-semantic-",  # noqa: SIM115
                                                buffering=0)
        for view in self._hot_views():  # one block at a time: no copy of them all
            data = view.astype(np.float16)
            os.pwrite(self._file.fileno(), data.data.cast("B"), 2 * self._dim * self._cold)
            self._cold += len(view)
            if self._ivf is not None:  # the codes of the vectors as the file keeps them
                self._ivf.add(data.astype(np.float32))
        self._hot = 0  # the blocks stay, to be filled again
        if self._ivf is not None and self._cold >= self.regrow * self._trained_on:
            from textsynth.quality.semantic_ivf import lists_for

            if lists_for(self._cold) > self._ivf.nlist:
                self._ivf = self._build()

    def _switch(self) -> None:
        """Turn approximate: every vector to the file, codes for all of them."""
        if not available("faiss"):  # only 'auto' gets here without it
            log.warning("the semantic index holds %d vectors and stays exact (each query "
                        "reads them all): install 'textsynth[scale]' for the approximate "
                        "index", self.size)
            self.approximate_from = None
            return
        self._spill()
        self._hot_blocks = []  # from now on memory holds only the pending vectors
        self._ivf = self._build()

    def _build(self) -> InvertedFile:
        """An inverted file trained on (at most 40,960 vectors evenly spread over) the
        spilled vectors, holding all of them."""
        import numpy as np

        from textsynth.quality.semantic_ivf import MAX_LISTS, TRAIN_PER_LIST, InvertedFile

        n = self._cold
        want = min(n, MAX_LISTS * TRAIN_PER_LIST)
        picks = np.arange(want, dtype=np.int64) * n // want
        # only the picked rows are read (60 MiB at most), not the whole file again
        sample = self._read_items(picks)
        ivf = InvertedFile.trained(sample, seed=self.seed, nprobe=self.nprobe,
                                   sub_dims=self.sub_dims)
        del sample
        for start, block in self._blocks():
            if start >= n:
                break
            ivf.add(block)
        self._trained_on = n
        return ivf

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._ivf = None

    def dedup(self, vectors: np.ndarray, chunk: int = 256) -> list[int | None]:
        """For each vector in order: the stored item it duplicates, or None (then stored).

        Work is done a chunk at a time as matrix products: the chunk against the
        stored vectors, then the chunk against itself, resolved in order (one vector
        at a time once the index is approximate).
        """
        out: list[int | None] = []
        for begin in range(0, len(vectors), chunk):
            block = vectors[begin:begin + chunk]
            if self._ivf is None:
                out.extend(self._dedup_exact(block))
                continue
            for vector in block:
                found = self.query(vector)
                out.append(found[0] if found else None)
                if found is None:
                    self.insert(vector)
        return out

    def _dedup_exact(self, block: np.ndarray) -> list[int | None]:
        """``dedup`` of one chunk by matrix products with every stored vector."""
        import numpy as np

        out: list[int | None] = []
        best = np.full(len(block), -1, dtype=np.int64)
        score = np.full(len(block), -np.inf, dtype=np.float32)
        for start, stored in self._blocks():
            sims = block @ stored.T
            arg = sims.argmax(axis=1)
            top = sims[np.arange(len(block)), arg]
            better = top > score
            best[better], score[better] = start + arg[better], top[better]
        hit = score >= self.threshold
        best_old = [int(b) if h else None for b, h in zip(best, hit, strict=True)]
        inner = block @ block.T
        kept: list[int] = []  # positions in this block that were stored
        items: list[int] = []  # their item numbers
        for i, vector in enumerate(block):
            match = best_old[i]
            if match is None and kept:
                row = inner[i, kept]
                j = int(row.argmax())
                if row[j] >= self.threshold:
                    match = items[j]
            if match is None:
                items.append(self.insert(vector))
                kept.append(i)
            out.append(match)
        return out
