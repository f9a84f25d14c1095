"""What correction turns buy on the embedded model: parse rejects and tokens per kept row.

    PYTHONPATH=. python benchmarks/repair_turns.py [--turns 0 1 2] [--per-label 6]
        [--schema labeled_text|utterances]

Runs the same small recipe (two smart-home labels; ``labeled_text`` with a prompt that
asks for its JSON, or the built-in ``utterances`` list; the openvino backend with
SmolLM2-135M-Instruct; the recipe seed) once per ``generation.repair_turns`` value and
prints, for each: requests answered, correction turns sent, parse rejects, accepted
rows, and completion tokens per accepted row.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from textsynth.engine import Engine
from textsynth.recipe import load_recipe

TEMPLATE = """Write {{ n }} short things a user might say to a voice assistant.
Intent: {{ label_name }} ({{ label_description }}).
Reply with JSON only, in this form:
{"items": [{"text": "...", "label": "{{ label }}"}]}
"""


def recipe(out: Path, turns: int, per_label: int, schema: str = "labeled_text") -> Any:
    template = out / "json.jinja"
    template.write_text(TEMPLATE, encoding="utf-8")
    return load_recipe({
        "name": "repair-bench", "schema": schema,
        "template": template.name if schema == "labeled_text" else schema,
        "source": out / "recipe.yaml",  # the template is found beside it
        "per_label": per_label, "seed": 1,
        "labels": {"turn_on": "Switch a device on", "turn_off": "Switch a device off"},
        "backend": {"type": "openvino", "options": {"batch_size": 8}},
        "generation": {"examples_per_request": 3, "max_tokens": 120, "repair_turns": turns,
                       "max_attempts": 8},
        "export": {"dir": str(out)},
        "quality": {"language_id": False, "near_duplicates": False, "novelty": False,
                    "semantic": False, "classifier": False},
    })


def measure(turns: int, per_label: int, schema: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        engine = Engine(recipe(Path(folder), turns, per_label, schema))
        start = time.perf_counter()
        result = asyncio.run(engine.run())
        seconds = time.perf_counter() - start
        stats = engine.store.get_meta("summary")["backend_stats"]
        accepted = sum(q.accepted for q in result.quotas.values())
        parse = sum(n for reason, n in result.rejected.items() if reason.startswith("parse:"))
        tokens = engine.store.usage().completion_tokens
        engine.store.close()
    return {"turns": turns, "requests": result.sent, "repairs": stats.get("repair_turns", 0),
            "parse_rejects": parse, "accepted": accepted, "complete": result.complete,
            "tokens_per_row": tokens / max(1, accepted), "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--per-label", type=int, default=6)
    parser.add_argument("--schema", choices=["labeled_text", "utterances"],
                        default="labeled_text")
    args = parser.parse_args()
    print("turns requests repairs parse_rejects accepted complete tokens/row seconds")
    for turns in args.turns:
        m = measure(turns, args.per_label, args.schema)
        print(f"{m['turns']:5} {m['requests']:8} {m['repairs']:7} {m['parse_rejects']:13} "
              f"{m['accepted']:8} {m['complete']!s:8} {m['tokens_per_row']:10.1f} "
              f"{m['seconds']:7.1f}")


if __name__ == "__main__":
    main()
