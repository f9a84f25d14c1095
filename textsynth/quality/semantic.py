"""A cosine-similarity index over unit sentence vectors.

The vectors come from :mod:`textsynth.embeddings` (all-MiniLM-L6-v2, offline, no
torch); ``Embedder`` and ``default_embedding_model`` are re-exported here.

Memory is bounded: the newest vectors stay in memory as float32, up to
``memory_bytes`` (256 MiB: about 175,000 MiniLM vectors); older ones move to an
unnamed temporary file (in ``TMPDIR``) as float16, 768 bytes each, and a query
reads them back a chunk at a time. Float16 keeps a unit vector's cosine to about
1e-4, so a decision changes only for a pair that close to the threshold.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING

from textsynth.embeddings import Embedder, default_embedding_model

if TYPE_CHECKING:
    import numpy as np

__all__ = ["Embedder", "SemanticIndex", "default_embedding_model"]


class SemanticIndex:
    """Stored unit vectors; a query returns the most similar one above ``threshold``.

    ``memory_bytes`` bounds the vectors held in memory (older ones spill to disk as
    float16); ``chunk_rows`` is how many spilled vectors a query reads at a time.

    >>> index = SemanticIndex(threshold=0.9)  # doctest: +SKIP
    >>> index.dedup(embedder.encode(texts))  # doctest: +SKIP
    """

    block_rows = 8192  # vectors in memory are kept in blocks of this many (12 MiB of MiniLM's)

    def __init__(self, threshold: float = 0.9, memory_bytes: int = 256 << 20,
                 chunk_rows: int = 8192):
        self.threshold = threshold
        self.memory_bytes = memory_bytes
        self.chunk_rows = chunk_rows
        # the newest vectors, float32, in blocks of equal size (no copy when they grow);
        # the last block fills up first
        self._hot_blocks: list[np.ndarray] = []
        self._hot = 0  # vectors in memory: items cold .. size - 1
        self._cold = 0  # vectors on disk: items 0 .. cold - 1
        self._dim = 0
        self._file: IO[bytes] | None = None
        self.size = 0

    @property
    def nbytes(self) -> int:
        """Bytes of memory the vectors take (those on disk not counted)."""
        return sum(int(block.nbytes) for block in self._hot_blocks)

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

    def _blocks(self) -> Iterator[tuple[int, np.ndarray]]:
        """``(first item, float32 vectors)`` for every stored vector, oldest first; a spilled
        block lives in a buffer the next one overwrites."""
        import numpy as np

        dim = self._dim
        if self._cold:
            assert self._file is not None
            # two buffers, reused chunk after chunk: 18 MiB at 8,192 MiniLM vectors
            buffer = np.empty((min(self.chunk_rows, self._cold), dim), dtype=np.float16)
            wide = np.empty(buffer.shape, dtype=np.float32)
            for start in range(0, self._cold, self.chunk_rows):
                rows = min(self.chunk_rows, self._cold - start)
                view = buffer[:rows]
                got = os.preadv(self._file.fileno(), [view.data.cast("B")],
                                2 * dim * start)
                if got != view.nbytes:
                    raise OSError(f"short read from the semantic index's spill file ({got} "
                                  f"of {view.nbytes} bytes)")
                np.copyto(wide[:rows], view)
                yield start, wide[:rows]
        start = self._cold
        for view in self._hot_views():
            yield start, view
            start += len(view)

    def query(self, vector: np.ndarray) -> tuple[int, float] | None:
        """``(item, cosine)`` of the closest stored vector at or above the threshold."""
        best, score = -1, float("-inf")
        for start, block in self._blocks():
            sims = block @ vector
            j = int(sims.argmax())
            if sims[j] > score:  # the first of equal maxima, as one argmax would give
                best, score = start + j, float(sims[j])
        return (best, score) if best >= 0 and score >= self.threshold else None

    def insert(self, vector: np.ndarray) -> int:
        import numpy as np

        self._dim = self._dim or len(vector)
        limit = max(1, self.memory_bytes // (4 * self._dim))  # vectors in memory at most
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
        return self.size - 1

    def _spill(self) -> None:
        """Move the vectors in memory to the end of the file, as float16."""
        import numpy as np

        if self._file is None:
            # unnamed, removed when closed or when the process ends
            self._file = tempfile.TemporaryFile(prefix="textsynth-semantic-",  # noqa: SIM115
                                                buffering=0)
        for view in self._hot_views():  # one block at a time: no copy of them all
            data = view.astype(np.float16)
            os.pwrite(self._file.fileno(), data.data.cast("B"), 2 * self._dim * self._cold)
            self._cold += len(view)
        self._hot = 0  # the blocks stay, to be filled again

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def dedup(self, vectors: np.ndarray, chunk: int = 256) -> list[int | None]:
        """For each vector in order: the stored item it duplicates, or None (then stored).

        Work is done a chunk at a time as matrix products: the chunk against the
        stored vectors, then the chunk against itself, resolved in order.
        """
        import numpy as np

        out: list[int | None] = []
        for begin in range(0, len(vectors), chunk):
            block = vectors[begin:begin + chunk]
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
