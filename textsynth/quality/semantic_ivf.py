"""Candidates for the semantic index's large runs: an inverted file over compact codes.

:class:`InvertedFile` wraps faiss (extra ``textsynth[scale]``): a coarse k-means
quantizer splits the vectors into ``nlist`` lists, and each vector is kept as a 4-bit
product-quantizer code (``dim / 6`` sub-vectors, half a byte each: 32 bytes for
MiniLM's 384 dimensions, plus faiss's 8-byte id) scanned with SIMD ("fast scan"). A
query probes the ``nprobe`` closest lists and returns the ``k`` items whose codes come
closest; :class:`~textsynth.quality.semantic.SemanticIndex` then computes their exact
cosines from its own copy of the vectors, so only the candidate list is approximate.

Training is seeded and faiss's k-means gives the same centroids and codes for any
number of threads, so the same vectors in the same order give the same index (a resumed
run rebuilds it by replaying the store, as it rebuilds every other rule).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textsynth._deps import require

if TYPE_CHECKING:
    import numpy as np

__all__ = ["InvertedFile", "lists_for"]

MAX_LISTS = 1024
"""Lists at most: about 10,000 vectors a list at 10M; 32 probed find 100% of the exact
matches in the benchmark at 1M (16: 99%), at 0.35 ms a query."""

TRAIN_PER_LIST = 40
"""Training vectors per list (faiss asks for 39 at least)."""


def lists_for(n: int) -> int:
    """The number of lists to train on ``n`` vectors: a power of two, ``n / 40`` at most."""
    lists = 1
    while lists * 2 * TRAIN_PER_LIST <= n and lists * 2 <= MAX_LISTS:
        lists *= 2
    return lists


class InvertedFile:
    """An IVF index of 4-bit PQ codes (faiss ``IndexIVFPQFastScan``), items numbered in
    the order they are added.

    >>> ivf = InvertedFile.trained(sample, seed=0)  # doctest: +SKIP
    >>> ivf.add(vectors); ivf.search(query, k=16)  # doctest: +SKIP
    """

    def __init__(self, index: Any, nprobe: int):
        self._index = index
        self._index.nprobe = min(nprobe, index.nlist)

    @classmethod
    def trained(cls, sample: np.ndarray, *, seed: int = 0, nprobe: int = 32,
                sub_dims: int = 6) -> InvertedFile:
        """An empty index whose quantizers are trained on ``sample`` (float32 rows), a
        4-bit code for every ``sub_dims`` dimensions (or the next divisor of the dimension)."""
        faiss = require("faiss", "the approximate semantic index")
        import numpy as np

        dim = sample.shape[1]
        subs = next(m for m in range(dim // sub_dims or 1, 0, -1) if dim % m == 0)
        quantizer = faiss.IndexFlatL2(dim)  # unit vectors: L2 order is cosine order
        index = faiss.IndexIVFPQFastScan(quantizer, dim, lists_for(len(sample)), subs, 4)
        index.own_fields = True
        quantizer.this.disown()  # the index frees it
        index.cp.seed = seed
        index.cp.min_points_per_centroid = 1  # a small sample trains without a warning
        index.pq.cp.seed = seed + 1
        index.pq.cp.min_points_per_centroid = 1
        index.train(np.ascontiguousarray(sample, dtype=np.float32))
        return cls(index, nprobe)

    @property
    def size(self) -> int:
        return int(self._index.ntotal)

    @property
    def nlist(self) -> int:
        return int(self._index.nlist)

    @property
    def nbytes(self) -> int:
        """Bytes of memory: codes and ids of the stored items, centroids and codebooks
        (faiss's lists grow by doubling: the process holds up to twice the codes and
        ids, about 1.8 times at 10M vectors)."""
        index = self._index
        dim = int(index.d)
        fixed = 4 * dim * (self.nlist + 16)  # centroids, PQ codebooks
        return int(index.ntotal) * (int(index.code_size) + 8) + fixed

    def add(self, vectors: np.ndarray) -> None:
        """Append ``vectors`` (float32 rows); they are numbered from :attr:`size` on."""
        import numpy as np

        self._index.add(np.ascontiguousarray(vectors, dtype=np.float32))

    def search(self, vector: np.ndarray, k: int) -> np.ndarray:
        """The items (int64, closest first as the codes tell) of up to ``k`` candidates."""
        import numpy as np

        query = np.ascontiguousarray(vector, dtype=np.float32).reshape(1, -1)
        _, items = self._index.search(query, k)
        found: np.ndarray = items[0]
        return found[found >= 0]

    def serialize(self) -> bytes:
        """The whole index as bytes (to compare two builds)."""
        faiss = require("faiss", "the approximate semantic index")
        return bytes(faiss.serialize_index(self._index).tobytes())
