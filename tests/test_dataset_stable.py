"""The same recipe, seed and deterministic backend give the same dataset, release after release.

Each case runs a recipe on the fake backend and compares what it produced (the exported
rows of every split, the store's accepted rows in order, and its rejects) with a golden
file in ``tests/data/golden``. The fake answers depend on the rendered prompt, so a change
to prompts, planning, the processing order, the quality gate or the export shows up here.

A golden file is rewritten only on purpose, when a change of output is intended:
``TEXTSYNTH_REGENERATE_GOLDEN=1 pytest tests/test_dataset_stable.py``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from pathlib import Path
from typing import Any

import pytest

from textsynth import FakeBackend, Request, load_recipe
from textsynth.pipeline import run_recipe
from textsynth.store import Store

GOLDEN = Path(__file__).parent / "data" / "golden"
_WORDS = ["amber", "birch", "cedar", "dune", "ember", "fjord", "grove", "heath", "inlet",
          "juniper", "kelp", "larch", "moss", "nettle", "oak", "pine"]


def _words(*parts: object, k: int = 3) -> str:
    """A few words that depend only on ``parts`` (letters only: no rule sees a number)."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return " ".join(_WORDS[b % len(_WORDS)] for b in digest[:k])


def _answer(request: Request) -> str | list[str]:
    """Like a deterministic model: the answer depends on the whole prompt.

    Every answer has good lines, one that repeats across requests (a duplicate) and one
    that talks about itself (assistant speak), so the quotas need top-up.
    """
    prompt = json.dumps([request.messages, request.seed], sort_keys=True)
    label = str(request.metadata["slot"]).split("/")[0].replace("_", " ")

    def one(choice: int) -> str:
        lines = [f"please {label} the {_words(prompt, choice, i)} now" for i in range(2)]
        lines.append(f"please {label} the lamp")
        lines.append("As an AI language model I cannot do that")
        return "\n".join(f"{i + 1}. {line}" for i, line in enumerate(lines))

    if request.n > 1:
        return [one(choice) for choice in range(request.n)]
    return one(0)


def _slots_answer(request: Request) -> str:
    prompt = json.dumps([request.messages, request.seed], sort_keys=True)
    label = str(request.metadata["slot"]).split("/")[0].replace("_", " ")
    return "\n".join([
        json.dumps({"text": f"{label} in the kitchen {_words(prompt, 1)} please",
                    "entities": {"room": "kitchen"}}),
        json.dumps({"text": f"{label} the garage {_words(prompt, 2)}",
                    "entities": {"room": "attic"}}),  # not in the text: rejected
        json.dumps({"text": f"the garage {label} {_words(prompt, 3)}",
                    "entities": {"room": "garage"}}),
    ])


def _plain(spec: dict[str, Any]) -> dict[str, Any]:
    spec["per_label"] = 9
    spec["labels"]["turn_on"] = {"description": "Switch something on",
                                 "examples": ["light on please", "fan on now", "heat up"]}
    spec["generation"] = {"examples_per_request": 4, "avoid": 3, "fewshot": 1}
    # one request per call: the look-ahead is short, so "do not repeat" lists fill early
    spec["backend"] = {"type": "fake", "options": {"batch_size": 1}}
    return spec


def _languages(spec: dict[str, Any]) -> dict[str, Any]:
    spec.update(languages=["de", "it"], per_label=3)
    spec["vary"] = {"style": ["terse", "chatty"]}
    return spec


def _slots(spec: dict[str, Any]) -> dict[str, Any]:
    spec.update(schema="slots", template="slots", per_label=4,
                slots={"room": ["kitchen", "garage"]})
    return spec


def _budget(spec: dict[str, Any]) -> dict[str, Any]:
    spec["per_label"] = 30
    spec["generation"] = {"n": 2, "max_tokens": 30, "examples_per_request": 3}
    spec["budget"] = {"max_tokens": 1200}
    spec["backend"] = {"type": "fake", "options": {"batch_size": 1}}
    return spec


CASES = {
    "plain": (_plain, _answer),
    "languages": (_languages, _answer),
    "slots": (_slots, _slots_answer),
    "budget_n2": (_budget, _answer),
}


def _produced(out: Path) -> list[dict[str, Any]]:
    """What a run left behind, as comparable records (its exported splits, then the store)."""
    records: list[dict[str, Any]] = []
    for path in sorted(out.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            records.append({"from": path.name, **json.loads(line)})
    with Store.in_dir(out) as store:
        records += [{"from": "store:accepted", **ex.to_dict()} for ex in store.examples()]
        records += [{"from": "store:rejected", **row} for row in store.rejects()]
    return records


def _endpoint_answer(body: Any, choice: int) -> str:
    """What the loopback server answers: lines from few words, so that exact and near
    duplicates (and texts under two labels) turn up across requests."""
    prompt = json.dumps([body["messages"], body.get("seed")], sort_keys=True)
    return json.dumps([f"please {_words(prompt, choice, i, k=2)} the {_words(prompt, i, k=1)}"
                       for i in range(3)])


def test_endpoint_run_matches_the_golden_file(recipe_dict: dict, tmp_path: Path) -> None:
    """The openai backend against a loopback server (the driver's path: request bodies,
    keys, the store, MinHash with exhaustive queries, the export) gives the same rows."""
    from textsynth.testing import FaultServer

    spec = recipe_dict
    spec["labels"]["dim"] = "Dim the lights"
    spec.update(per_label=40, generation={"examples_per_request": 3, "avoid": 3})
    spec["quality"]["near_duplicates"] = {"threshold": 0.7}
    spec["export"]["formats"] = ["jsonl"]
    with FaultServer(reply=_endpoint_answer) as server:
        spec["backend"] = {"type": "openai", "options": {
            "base_url": server.url, "model": "m", "api_key": "k", "concurrency": 8}}
        outcome = run_recipe(load_recipe(spec))
    produced = _produced(outcome.out_dir)
    golden = GOLDEN / "endpoint.jsonl"
    if os.environ.get("TEXTSYNTH_REGENERATE_GOLDEN"):
        golden.write_text("".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n"
                                  for r in produced))
    expected = [json.loads(line) for line in golden.read_text().splitlines()]
    for i, (got, want) in enumerate(itertools.zip_longest(produced, expected)):
        assert got == want, f"endpoint: record {i} differs from {golden.name}"
    reasons = {r["reason"] for r in produced if r["from"] == "store:rejected"}
    assert {"duplicate", "near_duplicate"} <= reasons


@pytest.mark.parametrize("case", sorted(CASES))
def test_dataset_matches_the_golden_file(case: str, recipe_dict: dict,
                                         tmp_path: Path) -> None:
    shape, handler = CASES[case]
    spec = shape(recipe_dict)
    spec.setdefault("backend", {"type": "fake"})
    spec["export"]["formats"] = ["jsonl"]
    recipe = load_recipe(spec)
    options = dict(spec["backend"].get("options", {}))
    outcome = run_recipe(recipe, backend=FakeBackend(options, handler=handler))
    produced = _produced(outcome.out_dir)
    golden = GOLDEN / f"{case}.jsonl"
    if os.environ.get("TEXTSYNTH_REGENERATE_GOLDEN"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text("".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n"
                                  for r in produced))
    expected = [json.loads(line) for line in golden.read_text().splitlines()]
    # compared record by record, so a failure names the first row that differs
    for i, (got, want) in enumerate(itertools.zip_longest(produced, expected)):
        assert got == want, f"{case}: record {i} differs from {golden.name}"
    accepted = [r for r in produced if r["from"] == "store:accepted"]
    assert accepted, "a golden case must accept rows"
    if case == "budget_n2":
        assert outcome.stats.stopped and not outcome.stats.complete
    else:
        assert outcome.stats.complete
