"""The engine's own cost: CPU time per request on the fake backend (no model, no network).

Every request is rendered, sent through the request window, stored, parsed, judged by
the cheap quality rules (length, assistant speak, PII, exact dedup) and its rows stored,
so the figure is what the engine adds on top of a backend.

    python benchmarks/engine_overhead.py                     # 20 labels x 1000 rows
    python benchmarks/engine_overhead.py --labels 5 --per-label 200 --repeat 1
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import statistics
import time

from textsynth import FakeBackend, Request, load_recipe
from textsynth.engine import Engine
from textsynth.store import Store

_WORDS = ["amber", "birch", "cedar", "dune", "ember", "fjord", "grove", "heath", "inlet",
          "juniper", "kelp", "larch", "moss", "nettle", "oak", "pine"]


def _answer(request: Request) -> str:
    """Five rows that depend only on the request (letters only: no rule sees a number)."""
    lines = []
    for i in range(5):
        digest = hashlib.sha256(f"{request.seed} {i}".encode()).digest()
        lines.append(f"{i + 1}. please {' '.join(_WORDS[b % 16] for b in digest[:4])} now")
    return "\n".join(lines)


def once(labels: int, per_label: int, batch: int) -> tuple[float, float, int]:
    recipe = load_recipe({
        "name": "overhead", "labels": {f"label_{i}": f"label {i}" for i in range(labels)},
        "per_label": per_label, "generation": {"examples_per_request": 5},
        "backend": {"type": "fake", "options": {"batch_size": batch}},
        "export": {"dir": "/nonexistent"},  # the store is in memory: nothing is written
        # the cheap rules the docstring names: the form rule would drop the made-up rows
        # that pick a word twice (a third of them) and send more requests to replace them
        "quality": {"language_id": False, "near_duplicates": False, "novelty": False,
                    "semantic": False, "request": False, "classifier": False, "form": False},
    })
    engine = Engine(recipe, backend=FakeBackend({"batch_size": batch}, handler=_answer),
                    store=Store(":memory:"))
    cpu, wall = time.process_time(), time.perf_counter()
    result = asyncio.run(engine.run())
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    assert result.complete
    return cpu, wall, result.sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, default=20)
    parser.add_argument("--per-label", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    runs = [once(args.labels, args.per_label, args.batch) for _ in range(args.repeat)]
    cpu = statistics.median(r[0] for r in runs)
    wall = statistics.median(r[1] for r in runs)
    sent = runs[0][2]
    print(f"{args.labels} labels x {args.per_label} rows, {sent} requests of 5 rows, "
          f"batch {args.batch}: median of {args.repeat}: {cpu:.2f} s CPU "
          f"({cpu / sent * 1000:.2f} ms a request), {wall:.2f} s wall")


if __name__ == "__main__":
    main()
