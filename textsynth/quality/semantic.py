"""A cosine-similarity index over unit sentence vectors.

The vectors come from :mod:`textsynth.embeddings` (all-MiniLM-L6-v2, offline, no
torch); ``Embedder`` and ``default_embedding_model`` are re-exported here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textsynth.embeddings import Embedder, default_embedding_model

if TYPE_CHECKING:
    import numpy as np

__all__ = ["Embedder", "SemanticIndex", "default_embedding_model"]


class SemanticIndex:
    """Stored unit vectors; a query returns the most similar one above ``threshold``.

    >>> index = SemanticIndex(threshold=0.9)  # doctest: +SKIP
    >>> index.dedup(embedder.encode(texts))  # doctest: +SKIP
    """

    def __init__(self, threshold: float = 0.9):
        self.threshold = threshold
        self._vectors: np.ndarray | None = None
        self.size = 0

    def query(self, vector: np.ndarray) -> tuple[int, float] | None:
        """``(item, cosine)`` of the closest stored vector at or above the threshold."""
        if self._vectors is None or self.size == 0:
            return None
        sims = self._vectors[: self.size] @ vector
        best = int(sims.argmax())
        score = float(sims[best])
        return (best, score) if score >= self.threshold else None

    def insert(self, vector: np.ndarray) -> int:
        import numpy as np

        if self._vectors is None:
            self._vectors = np.empty((256, len(vector)), dtype=np.float32)
        if self.size == len(self._vectors):
            grown = np.empty((2 * self.size, self._vectors.shape[1]), dtype=np.float32)
            grown[: self.size] = self._vectors
            self._vectors = grown
        self._vectors[self.size] = vector
        self.size += 1
        return self.size - 1

    def dedup(self, vectors: np.ndarray, chunk: int = 256) -> list[int | None]:
        """For each vector in order: the stored item it duplicates, or None (then stored).

        Work is done a chunk at a time as matrix products: the chunk against the
        stored vectors, then the chunk against itself, resolved in order.
        """
        out: list[int | None] = []
        for start in range(0, len(vectors), chunk):
            block = vectors[start:start + chunk]
            best_old: list[int | None] = [None] * len(block)
            if self.size:
                assert self._vectors is not None
                sims = block @ self._vectors[: self.size].T
                arg = sims.argmax(axis=1)
                hit = sims[range(len(block)), arg] >= self.threshold
                best_old = [int(a) if h else None for a, h in zip(arg, hit, strict=True)]
            inner = block @ block.T
            kept: list[int] = []  # positions in this block that were stored
            for i, vector in enumerate(block):
                match = best_old[i]
                if match is None and kept:
                    row = inner[i, kept]
                    j = int(row.argmax())
                    if row[j] >= self.threshold:
                        match = self.size - len(kept) + j
                if match is None:
                    self.insert(vector)
                    kept.append(i)
                out.append(match)
        return out
