"""The semantic index with its memory bounded decides as the all-in-memory float32 one."""

from __future__ import annotations

import numpy as np
import pytest

from textsynth.quality.semantic import SemanticIndex

DIM = 384


def _vectors(n: int, seed: int = 0) -> np.ndarray:
    """Unit vectors in clusters: about a third are paraphrase-like neighbours of an
    earlier vector (cosine 0.8-0.99, none within 1e-3 of the 0.9 threshold)."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, DIM), dtype=np.float32)
    for i in range(n):
        if i and rng.random() < 0.35:
            base = out[rng.integers(i)]
            while True:
                cos = rng.uniform(0.8, 0.99)
                if abs(cos - 0.9) > 1e-3:
                    break
            noise = rng.standard_normal(DIM).astype(np.float32)
            noise -= (noise @ base) * base
            noise /= np.linalg.norm(noise)
            v = cos * base + np.sqrt(1 - cos**2) * noise
        else:
            v = rng.standard_normal(DIM).astype(np.float32)
        out[i] = v / np.linalg.norm(v)
    return out


def _reference(vectors: np.ndarray, threshold: float) -> list[tuple[int, float] | None]:
    """What the index did before its memory was bounded: every vector in float32."""
    stored: list[np.ndarray] = []
    out: list[tuple[int, float] | None] = []
    for v in vectors:
        found = None
        if stored:
            sims = np.stack(stored) @ v
            j = int(sims.argmax())
            found = (j, float(sims[j])) if sims[j] >= threshold else None
        out.append(found)
        if found is None:
            stored.append(v)
    return out


def test_spilled_index_gives_the_same_decisions() -> None:
    vectors = _vectors(3000)
    expected = _reference(vectors, 0.9)
    # room for 200 vectors in memory, 64 read back at a time: most of them spill
    index = SemanticIndex(0.9, memory_bytes=200 * DIM * 4, chunk_rows=64)
    index.block_rows = 48  # in memory: blocks of 48, 48, 48, 48 and 8 vectors
    got: list[tuple[int, float] | None] = []
    for v in vectors:
        found = index.query(v)
        got.append(found)
        if found is None:
            index.insert(v)
    assert [g and g[0] for g in got] == [e and e[0] for e in expected]
    scores = [(g[1], e[1]) for g, e in zip(got, expected, strict=True) if g and e]
    assert len(scores) > 300 and max(abs(a - b) for a, b in scores) < 1e-3
    assert index.nbytes == 200 * DIM * 4
    assert index.spilled_bytes >= 2 * DIM * (index.size - 200) > 2 * DIM * 1000
    # many matches were found among the spilled (float16) vectors
    assert sum(1 for g in got if g and g[0] < index.size - 200) > 200
    index.close()


def test_bulk_dedup_over_a_spilled_index_matches_one_by_one() -> None:
    vectors = _vectors(2000, seed=1)
    expected = [e and e[0] for e in _reference(vectors, 0.9)]
    index = SemanticIndex(0.9, memory_bytes=150 * DIM * 4, chunk_rows=100)
    assert index.dedup(vectors, chunk=128) == expected
    assert index.size == sum(e is None for e in expected) and index.spilled_bytes > 0


@pytest.mark.parametrize("memory", [64 << 20, 10 * DIM * 4])
def test_empty_and_tiny_indexes(memory: int) -> None:
    index = SemanticIndex(0.9, memory_bytes=memory)
    v = _vectors(1)[0]
    assert index.query(v) is None and index.nbytes == 0
    assert index.insert(v) == 0
    assert index.query(v) == (0, pytest.approx(1.0, abs=1e-5))
