"""Candidates for the semantic index's large runs: an inverted file over compact codes.

:class:`InvertedFile` wraps faiss (extra ``textsynth[scale]``): a coarse k-means
quantizer splits the vectors into ``nlist`` lists, and each vector is kept as a 4-bit
product-quantizer code (``dim / sub_dims`` sub-vectors, half a byte each: 16 bytes
for MiniLM's 384 dimensions in 12-dimension sub-vectors, plus faiss's 8-byte id)
scanned with SIMD ("fast scan"). Faiss's lists grow by doubling, so they hold up to
twice that (1.57 times in the benchmark at 1M; :attr:`InvertedFile.nbytes`
reports what they hold). A
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
        import numpy as np

        self._index = index
        self._index.nprobe = min(nprobe, index.nlist)
        # each list's length, and the capacity of its std::vector of ids (which grows
        # to size + max(size, added) when full), to report the memory really held
        self._sizes = np.zeros(index.nlist, dtype=np.int64)
        self._id_capacity = np.zeros(index.nlist, dtype=np.int64)

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
        """Bytes of memory faiss holds: centroids and codebooks, and the lists as
        allocated (they grow by doubling, so up to twice their codes and ids): a list's
        codes take whole blocks of 32 vectors, rounded up to a power of two (256 bytes
        at least, faiss's ``AlignedTable``); its ids, 8 bytes each, the capacity their
        vector grew to."""
        import numpy as np

        faiss = require("faiss", "the approximate semantic index")
        index = self._index
        fixed = 4 * int(index.d) * (self.nlist + 16)  # centroids, PQ codebooks
        invlists = faiss.downcast_InvertedLists(index.invlists)
        per_block, block = int(invlists.n_per_block), int(invlists.block_size)
        used = -(-self._sizes // per_block) * block
        rounded = np.where(used > 0, 256, 0)
        while (short := rounded < used).any():
            rounded[short] *= 2
        return fixed + int(rounded.sum()) + 8 * int(self._id_capacity.sum())

    @property
    def used_bytes(self) -> int:
        """Bytes the stored items' codes and ids fill (what :attr:`nbytes` would be with
        lists of the exact size)."""
        return int(self._index.ntotal) * (int(self._index.code_size) + 8)

    def add(self, vectors: np.ndarray) -> None:
        """Append ``vectors`` (float32 rows); they are numbered from :attr:`size` on."""
        import numpy as np

        self._index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        invlists = self._index.invlists
        sizes = np.fromiter((invlists.list_size(i) for i in range(self.nlist)),
                            dtype=np.int64, count=self.nlist)
        old, full = self._sizes, sizes > self._id_capacity
        self._id_capacity[full] = old[full] + np.maximum(old[full], sizes[full] - old[full])
        self._sizes = sizes

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
