"""Throughput and peak memory of exact, MinHash and semantic dedup.

    python benchmarks/dedup.py                 # 10k, 100k, 1M (semantic up to 100k)
    python benchmarks/dedup.py --sizes 10000   # quicker

Each measurement runs in a fresh process, so peak memory (max RSS) belongs to
that one method and size. The strings are generated utterances: templates
filled from word lists, with about 5% exact repeats (changed case and
punctuation) and 10% near-repeats (one word changed or added) of earlier ones.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

VERBS = ["play", "add", "find", "book", "show", "rate", "put", "search for", "get", "open"]
THINGS = ["song", "album", "playlist", "table", "movie", "book", "show", "forecast", "track",
          "podcast", "novel", "game", "restaurant", "film", "record"]
NAMES = [f"{a}{b}" for a in ["ka", "lo", "mi", "ze", "ru", "an", "te", "bo", "si", "fa", "ne"]
         for b in ["ra", "len", "dor", "vi", "mak", "sen", "tis", "lo", "ner", "qua"]]
PLACES = ["paris", "tokyo", "lagos", "lima", "oslo", "perth", "quito", "hanoi", "cairo", "riga"]
TIMES = ["tonight", "tomorrow", "at noon", "next week", "this weekend", "on friday", "at 8 pm"]
EXTRA = ["please", "now", "for me", "right away", "again", "if you can", "quickly"]


def make_strings(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    out: list[str] = []
    for _ in range(n):
        roll = rng.random()
        if out and roll < 0.05:  # exact repeat, different surface
            out.append(rng.choice(out).upper() + "!")
        elif out and roll < 0.15:  # near repeat: one word more
            out.append(f"{rng.choice(out)} {rng.choice(EXTRA)}")
        else:
            parts = [rng.choice(VERBS), "the", rng.choice(THINGS), rng.choice(NAMES),
                     rng.choice(NAMES), "in", rng.choice(PLACES), rng.choice(TIMES)]
            if rng.random() < 0.5:
                parts.append(rng.choice(EXTRA))
            out.append(" ".join(parts))
    return out


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _incremental(rule: object, texts: list[str]) -> int:
    """check + add one candidate at a time, as during generation; returns the drops."""
    from textsynth.example import Example

    dropped = 0
    for text in texts:
        example = Example(text, "x")
        if rule.check(example).keep:  # type: ignore[attr-defined]
            rule.add(example)  # type: ignore[attr-defined]
        else:
            dropped += 1
    return dropped


def _datasketch(texts: list[str]) -> int:
    """The same dedup with datasketch's MinHash + MinHashLSH, for comparison."""
    from datasketch import MinHash, MinHashLSH  # pip install datasketch

    from textsynth.quality.normalize import normalize

    proto = MinHash(num_perm=64)
    lsh = MinHashLSH(threshold=0.8, num_perm=64)
    dropped = 0
    for i, text in enumerate(texts):
        norm = normalize(text)
        m = MinHash(num_perm=64, permutations=proto.permutations, scheme=proto.scheme)
        m.update_batch([norm[j:j + 4].encode() for j in range(max(1, len(norm) - 3))])
        if lsh.query(m):
            dropped += 1
        else:
            lsh.insert(i, m, check_duplication=False)
    return dropped


def run_one(method: str, n: int) -> dict[str, float]:
    import numpy  # noqa: F401 - imported before timing, like the libraries below

    from textsynth.quality.dedup import ExactDedup, NearDuplicateDedup
    from textsynth.quality.minhash import MinHashIndex
    from textsynth.quality.semantic import Embedder, SemanticIndex

    texts = make_strings(n)
    embedder = Embedder(batch_size=256)
    if method == "semantic":
        embedder.encode(["warm up"])  # model load is not throughput
    base = _rss_mib()
    start = time.perf_counter()
    if method == "exact":
        dropped = _incremental(ExactDedup(), texts)
    elif method == "minhash":  # bulk: signatures a chunk at a time, then in-order LSH
        dropped = sum(m is not None for m in MinHashIndex(threshold=0.8).dedup(texts))
    elif method == "minhash-rule":
        dropped = _incremental(NearDuplicateDedup(threshold=0.8), texts)
    elif method == "datasketch":
        import datasketch  # noqa: F401 - imported before timing

        start = time.perf_counter()
        dropped = _datasketch(texts)
    elif method == "semantic":
        vectors = embedder.encode(texts)
        dropped = sum(m is not None for m in SemanticIndex(threshold=0.9).dedup(vectors))
    else:
        raise SystemExit(f"unknown method {method}")
    seconds = time.perf_counter() - start
    peak = _rss_mib()
    return {"seconds": seconds, "per_sec": n / seconds, "dropped": dropped,
            "peak_mib": peak, "added_mib": peak - base}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--methods", nargs="+",
                        default=["exact", "minhash", "minhash-rule", "datasketch", "semantic"])
    parser.add_argument("--one", nargs=2, metavar=("METHOD", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one[0], int(args.one[1]))))
        return
    limits = {"semantic": 100_000, "minhash-rule": 100_000, "datasketch": 100_000}
    print(f"{'method':<13} {'strings':>9} {'seconds':>9} {'strings/s':>11} {'dropped':>8} "
          f"{'peak MiB':>9} {'added MiB':>10}")
    for method in args.methods:
        for n in args.sizes:
            if n > limits.get(method, n):
                continue
            proc = subprocess.run([sys.executable, __file__, "--one", method, str(n)],
                                  capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                print(f"{method:<13} {n:>9} failed: {proc.stderr.strip().splitlines()[-1]}")
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"{method:<13} {n:>9} {r['seconds']:>9.2f} {r['per_sec']:>11,.0f} "
                  f"{r['dropped']:>8} {r['peak_mib']:>9.0f} {r['added_mib']:>10.0f}", flush=True)


if __name__ == "__main__":
    main()
