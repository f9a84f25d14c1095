"""Helpers for the export tests: a slots recipe and a deterministic fake model."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from textsynth import FakeBackend, Request, load_recipe
from textsynth.pipeline import run_recipe
from textsynth.result import RunResult

SLOTS = {
    "room": ["kitchen", "living room", "bedroom", "garage"],
    "artist": ["Queen", "Miles Davis", "Adele"],
}
_ASKED = re.compile(r'the (\w[\w ]*?) "([^"]+)"')
_OPENERS = ["please", "hey", "could you", "now", "quickly", "kindly", "ok", "right away"]


def slot_handler(request: Request) -> str:
    """Deterministic per request: three good utterances using the job's slot values,
    one whose value is not in its text, and one with overlapping entities."""
    prompt = request.messages[-1]["content"]
    label = str(request.metadata["slot"]).split("/")[0]
    asked = dict((k.replace(" ", "_"), v) for k, v in _ASKED.findall(prompt))
    values = " ".join(asked.values())
    entities = ", ".join(f'"{k}": "{v}"' for k, v in asked.items())
    lines = []
    for i in range(3):
        opener = _OPENERS[(request.seed + i) % len(_OPENERS)]
        text = f"{opener} {label.replace('_', ' ')} {values} number {request.seed % 997 + i}"
        lines.append(f'{{"text": "{text}", "intent": "{label}", "entities": {{{entities}}}}}')
    lines.append(f'{{"text": "do {label} somewhere", "intent": "{label}", '
                 f'"entities": {{"room": "attic"}}}}')
    lines.append(f'{{"text": "play Queen Street music {request.seed}", "intent": "{label}", '
                 f'"entities": {{"artist": "Queen", "room": "Queen Street"}}}}')
    return "\n".join(lines)


def slots_recipe(tmp_path: Path) -> dict[str, Any]:
    """A small slots recipe on the fake backend, writing under ``tmp_path``."""
    return {
        "name": "slots-test",
        "description": "smart-home commands with slots",
        "license": "cc-by-4.0",
        "schema": "slots",
        "template": "slots",
        "per_label": 8,
        "labels": {
            "turn_on": {"description": "Switch the lights on in a room", "slots": ["room"],
                        "examples": ["turn on the kitchen lights"]},
            "play_music": {"description": "Play an artist", "slots": ["artist", "room"]},
        },
        "slots": SLOTS,
        "backend": {"type": "fake"},
        "export": {"dir": str(tmp_path / "out"), "formats": ["arrow", "parquet", "jsonl",
                                                              "csv", "rasa"],
                   "bio_tags": True},
        "generation": {"examples_per_request": 3},
        # fake texts differ only by a number: the rules that compare meaning stay off
        "quality": {"near_duplicates": False, "novelty": False, "semantic": False,
                    "classifier": False},
    }


def run_slots(recipe_dict: dict[str, Any]) -> RunResult:
    recipe = load_recipe(recipe_dict)
    return run_recipe(recipe, backend=FakeBackend(handler=slot_handler))
