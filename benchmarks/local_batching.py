"""Tokens per second of the transformers backend at several batch sizes.

    python benchmarks/local_batching.py [--sizes 1 8 32] [--max-tokens 64]

Runs the embedded SmolLM2-135M-Instruct on whatever device is there (GPU if any)
and prints generated tokens/s per batch size and the speed-up over batch size 1.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# spinning OpenMP threads wait for a core another process holds: figures then measure that
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from textsynth.backends.base import Request
from textsynth.backends.transformers import TransformersBackend

PROMPT = ("Write 5 different things a user might say to a voice assistant to {task}. "
          "Answer with a numbered list.\n1.")
TASKS = ["play music", "set an alarm", "turn on the lights", "book a table", "check the weather"]


def requests(count: int, max_tokens: int, offset: int) -> list[Request]:
    return [Request(messages=({"role": "user", "content": PROMPT.format(
        task=TASKS[(offset + i) % len(TASKS)])},), seed=offset + i, max_tokens=max_tokens,
        temperature=0.9, top_p=0.95) for i in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--min-requests", type=int, default=8,
                        help="each size runs at least this many requests (whole batches)")
    args = parser.parse_args()
    backend = TransformersBackend({"batch_size": max(args.sizes)})
    start = time.perf_counter()
    backend.load()
    loaded = time.perf_counter() - start
    print(f"model: {backend.model_name} on {backend._device}; load {loaded:.1f} s")
    asyncio.run(backend.generate(requests(2, 8, 10_000)))  # warm-up
    base = None
    header = ("batch", 5), ("requests", 8), ("tokens", 7), ("seconds", 8), ("tokens/s", 9)
    print(" ".join(f"{name:>{width}}" for name, width in header), f"{'speed-up':>8}")
    for size in args.sizes:
        batches = max(1, -(-args.min_requests // size))
        tokens = 0
        t0 = time.perf_counter()
        for b in range(batches):
            out = asyncio.run(backend.generate(requests(size, args.max_tokens, b * size)))
            tokens += sum(c.usage.completion_tokens for c in out)
        dt = time.perf_counter() - t0
        rate = tokens / dt
        base = base or rate
        print(f"{size:>5} {size * batches:>8} {tokens:>7} {dt:>8.1f} {rate:>9.1f} "
              f"{rate / base:>7.2f}x")


if __name__ == "__main__":
    main()
