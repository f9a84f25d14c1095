"""`generation.style: continue`: the prompt is a list the model continues, no chat template."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

from textsynth import FakeBackend, load_recipe, run_recipe
from textsynth.backends.base import Completion, Request, Usage
from textsynth.engine import Engine
from textsynth.errors import RecipeError
from textsynth.prompt import ContinuedList
from textsynth.schemas import load_schema


def _recipe(recipe_dict: dict, **generation: object) -> dict:
    recipe_dict["description"] = "things people say to a smart speaker"
    recipe_dict["labels"]["turn_on"] = {"description": "Switch something on",
                                        "examples": ["Lights on please", "Turn the fan on"]}
    recipe_dict["generation"] = {"style": "continue", "examples_per_request": 3, **generation}
    return recipe_dict


def test_style_is_validated_and_picks_the_continued_template(recipe_dict: dict) -> None:
    assert load_recipe(recipe_dict).generation.style == "chat"
    assert load_recipe(recipe_dict).template == "utterances"
    with pytest.raises(RecipeError, match=r"generation\.style.*'chat' or 'continue'"):
        load_recipe(recipe_dict | {"generation": {"style": "complete"}})
    assert load_recipe(_recipe(recipe_dict)).template == "continue"
    own = load_recipe(_recipe(recipe_dict) | {"template": "mine.jinja"})
    assert own.template == "mine.jinja"  # a template of the recipe's own is kept


@pytest.mark.parametrize("name", ["slots", "paraphrase", "translate", "judge_label"])
def test_a_built_in_instruction_is_not_continued_as_a_document(recipe_dict: dict,
                                                               name: str) -> None:
    # rendered as a document, the model would continue "Write 5 different things ..."
    assert load_recipe(recipe_dict | {"template": name}).template == name  # chat: fine
    with pytest.raises(RecipeError, match=rf"template '{name}' is an instruction for chat "
                                          r"prompts; .*use template: continue"):
        load_recipe(_recipe(recipe_dict) | {"template": name})


def test_every_built_in_template_is_either_a_list_or_an_instruction() -> None:
    from textsynth.recipe import _INSTRUCTIONS
    from textsynth.templates import builtin_templates

    # a new built-in instruction must be named there, or continue would render it
    assert set(builtin_templates()) == _INSTRUCTIONS | {"continue", "utterances"}


def test_requests_carry_a_document_that_ends_in_a_list_marker(recipe_dict: dict) -> None:
    fake = FakeBackend(responses=["Lamp on {seed}\n- Switch the heater on {seed}"])
    engine = Engine(load_recipe(_recipe(recipe_dict)), backend=fake)
    asyncio.run(engine.run())
    first = next(r for r in fake.requests if r.metadata["slot"].startswith("turn_on"))
    assert first.messages == ()
    assert first.prompt is not None
    lines = first.prompt.splitlines()
    assert lines[0] == "Things people say to a smart speaker to switch something on:"
    assert sorted(lines[1:3]) == ["- Lights on please", "- Turn the fan on"]
    assert lines[3:] == ["-"]
    other = next(r for r in fake.requests if r.metadata["slot"].startswith("turn_off"))
    assert other.prompt is not None and "- Please switch something off\n-" in other.prompt
    texts = sorted(e.text for e in engine.store.examples() if e.label == "turn_on")
    assert len(texts) == 6 and all(t.startswith(("Lamp on", "Switch the heater on"))
                                   for t in texts)
    # the store records the document that was sent
    db = sqlite3.connect(Path(recipe_dict["export"]["dir"]) / "textsynth.db")
    shown = {row[0] for row in db.execute("SELECT messages FROM completions")}
    db.close()
    assert json.dumps([{"role": "continue", "content": first.prompt}]) in shown
    # a raw prompt is part of the request key: the same messages with another prompt
    # are another request, and a chat request's key does not change
    chat = Request(messages=({"role": "user", "content": "hi"},))
    assert Request(messages=chat.messages, prompt="hi").key("b", "m") != chat.key("b", "m")
    assert first.key("b", "m") != Request(messages=(), prompt=first.prompt + " ").key("b", "m")


def test_the_list_ends_at_prose_a_blank_line_or_the_limit() -> None:
    schema = ContinuedList(load_schema("utterances"), 3)

    def texts(completion: str) -> list[str]:
        return [p.text for p in schema.parse(completion)]

    assert texts("Lights on\n- Lamp on, please\n- Fan on\n- Heater on") == [
        "Lights on", "Lamp on, please", "Fan on"]
    assert texts("Lights on\n- Lamp on\n\n- Fan on") == ["Lights on", "Lamp on"]
    assert texts("Lights on\nHere are more ideas:\n- Fan on") == ["Lights on"]
    assert texts("Lights on\n1. Fan on") == ["Lights on"]
    assert [p.error for p in schema.parse("\n\nHowever, lights")] == ["empty_completion"]
    assert [p.error for p in schema.parse("")] == ["empty_completion"]
    assert schema.ends_list("a\n- b\n- c\n- d") and schema.ends_list("a\n\nprose")
    assert not schema.ends_list("a\n- b") and not schema.ends_list("a\n- b partly")


def test_a_cut_completion_loses_its_last_item_only_when_the_list_had_not_ended(
        recipe_dict: dict) -> None:
    answers = {"ended": "Lights on\n- Lamp on\nThe end of the", "open": "Lights on\n- Lamp on"}

    def handler(request: Request) -> Completion:
        kind = "ended" if request.seed % 2 else "open"
        return Completion([answers[kind].replace("on", f"on {request.seed}")], Usage(5, 5),
                          finish_reason="length")

    recipe_dict["per_label"] = 4
    engine = Engine(load_recipe(_recipe(recipe_dict, max_attempts=8)),
                    backend=FakeBackend(handler=handler))
    asyncio.run(engine.run())
    kept = [e for e in engine.store.examples()]
    rejects = [r for r in engine.store.rejects() if r["reason"] == "parse:truncated"]
    assert any(e.text.startswith("Lamp on") and e.seed % 2 for e in kept)
    assert rejects and all(r["text"].startswith("Lamp on") for r in rejects)
    assert not any(e.text.startswith("Lamp on") and not e.seed % 2 for e in kept)


def test_preview_shows_the_document(recipe_dict: dict) -> None:
    from textsynth.pipeline import preview_prompts

    (title, messages), = preview_prompts(load_recipe(_recipe(recipe_dict)), n=1)
    assert title == "turn_on/en #0" and messages[0]["role"] == "continue"
    assert messages[0]["content"].endswith("\n-")


def test_bootstrap_adds_accepted_rows_next_to_the_seed_examples(recipe_dict: dict) -> None:
    recipe_dict["per_label"] = 30
    fake = FakeBackend(responses=["{label} row {seed}\n- {label} other {seed}"])
    recipe = load_recipe(_recipe(recipe_dict, fewshot=2, avoid=0, bootstrap=True))
    engine = Engine(recipe, backend=fake)
    asyncio.run(engine.run())
    accepted = {e.text for e in engine.store.examples() if e.label == "turn_on"}
    prompts = [r.prompt or "" for r in fake.requests if r.metadata["slot"].startswith("turn_on")]
    shown = [line[2:] for line in prompts[-1].splitlines()[1:-1]]
    assert len(shown) == 4 and {"Lights on please", "Turn the fan on"} <= set(shown)
    assert len([t for t in shown if t in accepted]) == 2
    assert len(prompts[0].splitlines()) == 4  # nothing accepted yet: the two seeds only



def test_a_continued_list_of_slot_rows_exports_their_entities(recipe_dict: dict) -> None:
    """`schema: slots` read through a continued list: the export keeps the entity spans,
    the BIO tags and the Rasa markup (it dropped them: the export's columns were read from
    the list reader, which declares none)."""
    recipe_dict["labels"] = {"turn_on": {
        "description": "Switch the lights on in a room", "slots": ["room"],
        "examples": ["turn on the lights in the kitchen", "lights on in the office please"]}}
    recipe_dict.update(schema="slots", template="continue", per_label=4,
                       slots={"room": ["kitchen", "office", "garage"]})
    recipe_dict["generation"] = {"style": "continue", "examples_per_request": 2}
    recipe_dict["export"].update(formats=["jsonl", "rasa"], bio_tags=True)
    fake = FakeBackend(responses=[" switch on the garage light {seed}\n- office lights on {seed}"])
    result = run_recipe(load_recipe(recipe_dict), backend=fake)
    assert result.stats.stop_reasons == {}
    # the examples are shown with this job's room, whichever room they were written with
    prompt = fake.requests[0].prompt
    assert prompt is not None and prompt.endswith("\n-")
    shown = prompt.splitlines()[1:-1]
    assert len(shown) == 2
    assert sum(all(room in line for line in shown) for room in ("kitchen", "office", "garage")) == 1
    out = Path(recipe_dict["export"]["dir"])
    rows = [json.loads(line) for f in out.glob("*.jsonl") for line in f.read_text().splitlines()]
    assert len(rows) == 4
    for row in rows:
        [entity] = row["entities"]
        assert row["text"][entity["start"]:entity["end"]] == entity["value"]
        assert entity["entity"] == "room" and entity["value"] in ("garage", "office")
        assert "B-room" in row["tags"] and len(row["tags"]) == len(row["tokens"])
    nlu = (out / "rasa" / "nlu.yml").read_text()
    assert "[garage](room)" in nlu and "[office](room)" in nlu
