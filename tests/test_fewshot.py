"""Bootstrapped few-shot: without seed examples, prompts show the label's own accepted rows."""

from __future__ import annotations

import asyncio

from textsynth import FakeBackend, load_recipe
from textsynth.engine import Engine


def _run(recipe_dict: dict) -> tuple[Engine, FakeBackend]:
    fake = FakeBackend(responses=["1. {label} row {seed}\n2. {label} other {seed}"])
    engine = Engine(load_recipe(recipe_dict), backend=fake)
    asyncio.run(engine.run())
    return engine, fake


def _prompts(fake: FakeBackend, label: str) -> list[str]:
    return [r.messages[-1]["content"] for r in fake.requests
            if r.metadata["slot"].startswith(label)]


def test_prompts_show_accepted_rows_of_their_own_label(recipe_dict: dict) -> None:
    recipe_dict["per_label"] = 30
    recipe_dict["generation"] = {"fewshot": 2, "avoid": 0, "examples_per_request": 2,
                                 "bootstrap": True}
    engine, fake = _run(recipe_dict)
    accepted = {(e.label, e.text) for e in engine.store.examples()}
    prompts = _prompts(fake, "turn_on")
    assert "Please switch something on." in prompts[0]  # nothing accepted yet
    later = prompts[-1]
    shown = [line.split(". ", 1)[1] for line in later.splitlines() if line[:1].isdigit()]
    assert len(shown) == 2 and all(("turn_on", t) in accepted for t in shown)
    assert "turn_off" not in later
    # the same seed gives the same prompts
    _, again = _run(recipe_dict | {"export": {"dir": recipe_dict["export"]["dir"] + "2"}})
    assert [r.messages for r in again.requests] == [r.messages for r in fake.requests]


def test_seed_examples_are_never_replaced_and_it_is_off_by_default(
        recipe_dict: dict) -> None:
    recipe_dict["per_label"] = 30
    recipe_dict["labels"]["turn_on"] = {"description": "Switch something on",
                                        "examples": ["flip the fan on", "lights on please"]}
    recipe_dict["generation"] = {"fewshot": 2, "avoid": 0, "examples_per_request": 2,
                                 "bootstrap": True}
    _, fake = _run(recipe_dict)
    for prompt in _prompts(fake, "turn_on"):
        assert "flip the fan on" in prompt and "turn_on row" not in prompt
    del recipe_dict["generation"]["bootstrap"]
    recipe_dict["export"] = {"dir": recipe_dict["export"]["dir"] + "3"}
    _, fake = _run(recipe_dict)
    assert all("turn_off row" not in p for p in _prompts(fake, "turn_off"))
