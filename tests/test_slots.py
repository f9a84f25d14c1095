from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from textsynth import FakeBackend, RecipeError, load_recipe, load_schema
from textsynth.engine import Engine
from textsynth.plan import Planner
from textsynth.slots import SlotSchema
from textsynth.store import Store
from textsynth.templates import PromptTemplate

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("completion", [
    '{"text": "turn on the kitchen lights", "intent": "turn_on", "entities": {"room": "kitchen"}}'
    '\n{"text": "lights on in the garage", "intent": "turn on", "entities": {"room": "garage"}}',
    '[{"text": "turn on the kitchen lights", "entities": [{"entity": "room", "value": '
    '"kitchen"}]}, {"text": "lights on in the garage", "entities": [["room", "garage"]]}]',
    'Sure!\n```json\n{"items": [{"text": "turn on the kitchen lights", "intent": "turn_on", '
    '"entities": {"room": "kitchen"}}, {"text": "lights on in the garage", "entities": '
    '{"room": "garage"}}]}\n```',
])
def test_slot_schema_reads_small_model_output(completion: str) -> None:
    schema = SlotSchema(["room"], ["turn_on", "turn_off"])
    parsed = schema.parse(completion)
    assert [p.error for p in parsed] == [None, None]
    assert [p.text for p in parsed] == ["turn on the kitchen lights", "lights on in the garage"]
    assert parsed[0].fields["entities"] == [
        {"start": 12, "end": 19, "entity": "room", "value": "kitchen"}]
    assert all(p.label in (None, "turn_on") for p in parsed)


def test_slot_schema_rejects_bad_candidates_with_reasons() -> None:
    schema = SlotSchema(["room"], ["turn_on"])
    parsed = schema.parse(
        '{"text": "turn on the lights", "entities": {"room": "attic"}}\n'
        '{"text": "turn on the attic", "entities": {"floor": "attic"}}\n'
        '{"intent": "turn_on", "entities": {}}\n'
        '{"text": "switch it on", "entities": "room=attic"}\n'
        '["just a string"]')
    assert [p.error for p in parsed] == ["entity_not_in_text", "unknown_entity_type", "no_text",
                                         "bad_entities", "not_an_object"]
    assert schema.parse("no json at all")[0].error == "no_json"
    assert schema.parse("  ")[0].error == "empty_completion"


def test_intent_naming_another_label_is_kept_for_the_engine_to_reject() -> None:
    schema = SlotSchema([], ["turn_on", "turn_off"])
    texts = ['{"text": "lights off", "intent": "Turn Off"}',
             '{"text": "lights on", "intent": "something else"}']
    assert [schema.parse(t)[0].label for t in texts] == ["turn_off", None]


def test_slots_is_a_builtin_schema_bound_to_the_recipe(recipe_dict: dict) -> None:
    recipe_dict.update(schema="slots", template="slots", slots={"room": ["kitchen"]})
    recipe = load_recipe(recipe_dict)
    schema = load_schema("slots").for_recipe(recipe)
    assert isinstance(schema, SlotSchema) and schema.slot_types == ["room"]
    item = schema.json_schema()["properties"]["items"]["items"]
    assert item["properties"]["entities"]["items"]["properties"]["entity"]["enum"] == ["room"]


def test_label_slots_must_be_declared(recipe_dict: dict) -> None:
    recipe_dict["slots"] = {"room": ["kitchen"]}
    recipe_dict["labels"] = {"turn_on": {"description": "on", "slots": ["room", "floor"]}}
    with pytest.raises(RecipeError, match="floor not declared under slots"):
        load_recipe(recipe_dict)


def test_planner_samples_only_the_label_slot_types(recipe_dict: dict) -> None:
    recipe_dict["slots"] = {"room": ["kitchen", "garage"], "artist": ["Queen", "Adele"]}
    recipe_dict["labels"] = {"turn_on": {"slots": ["room"]}, "play": {}}
    planner = Planner(load_recipe(recipe_dict))
    on, play = planner.quotas
    values = [planner.job(on, i).slot_values for i in range(20)]
    assert all(set(v) == {"room"} for v in values)
    assert {v["room"] for v in values} == {"kitchen", "garage"}
    assert set(planner.job(play, 0).slot_values) == {"artist", "room"}


def test_slots_template_names_the_job_values_and_shows_examples() -> None:
    template = PromptTemplate.load("slots")
    base = {"task": "", "label": "set_alarm", "label_name": "set alarm",
            "label_description": "Set an alarm", "language": "en", "language_name": "English",
            "attributes": {}, "avoid": [], "n": 3,
            "slot_types": {"time": ["7 am", "noon"], "room": ["kitchen"]}}
    text = template.render(**base, slots={"time": "noon", "room": "kitchen"},
                           examples=["set an alarm for 7 am"])
    assert 'must mention the room "kitchen" and the time "noon".' in text
    assert "- set an alarm for noon" in text  # the example speaks of this job's values
    assert text.endswith("1.")
    bare = template.render(**base, slots={}, examples=[])
    assert "must mention" not in bare and "Examples" not in bare


def test_plain_list_answers_are_annotated_with_declared_values() -> None:
    schema = SlotSchema({"room": ["kitchen", "living room", "room"], "time": ["7 am"]})
    parsed = schema.parse('Here are some requests:\n1. "Lights on in the Living Room"\n'
                          "Example 2: wake me at 7 am in the kitchen\n3. turn it up\n"
                          "4. at 7 amish time")
    assert [p.text for p in parsed] == ["Lights on in the Living Room",
                                        "wake me at 7 am in the kitchen", "turn it up",
                                        "at 7 amish time"]
    assert parsed[0].fields["entities"] == [
        {"start": 17, "end": 28, "entity": "room", "value": "Living Room"}]
    assert [e["entity"] for e in parsed[1].fields["entities"]] == ["time", "room"]
    assert [p.error for p in parsed[2:]] == ["no_entity_found", "no_entity_found"]
    doubled = schema.parse('1. "2. set the kitchen lights"\n3. 3. kitchen lamp off please\n'
                           "**4. kitchen fan on**")
    assert [p.text for p in doubled] == ["set the kitchen lights", "kitchen lamp off please",
                                         "kitchen fan on"]
    # so are a JSON list of strings, and a list whose lines hold bracketed numbers
    assert schema.parse('["kitchen lights on"]')[0].fields["entities"][0]["value"] == "kitchen"
    assert schema.parse("[1] kitchen lights on\n[2] bedroom too")[1].text == "bedroom too"
    # an object without entities is annotated the same way
    obj = schema.parse('{"text": "kitchen lights please", "intent": "x"}')[0]
    assert obj.fields["entities"][0]["value"] == "kitchen"


def test_engine_stores_spans_and_counts_rejects_by_reason(recipe_dict: dict) -> None:
    recipe_dict.update(schema="slots", template="slots", per_label=3,
                       slots={"room": ["kitchen", "garage"]})
    recipe = load_recipe(recipe_dict)

    def answer(request: object) -> str:
        seed = request.seed  # type: ignore[attr-defined]
        return "\n".join([
            f'{{"text": "lights in the kitchen please {seed}", "entities": {{"room": "kitchen"}}}}',
            f'{{"text": "the garage lights {seed}", "entities": {{"room": "attic"}}}}',
        ])

    engine = Engine(recipe, backend=FakeBackend(handler=answer), store=Store(":memory:"))
    result = asyncio.run(engine.run())
    assert result.complete
    assert result.rejected["parse:entity_not_in_text"] >= 3
    rows = list(engine.store.examples())
    for row in rows:
        (span,) = row.fields["entities"]
        assert row.text[span["start"]:span["end"]] == span["value"] == "kitchen"


@pytest.mark.model
def test_smart_home_slots_example_on_the_embedded_model(tmp_path: Path) -> None:
    import yaml

    from textsynth.pipeline import run_recipe

    data = yaml.safe_load((ROOT / "examples" / "smart_home_slots.yaml").read_text())
    data.update(per_label=1)
    data["generation"].update(max_attempts=2, max_tokens=80)
    data["export"]["dir"] = str(tmp_path / "out")
    outcome = run_recipe(load_recipe(data))  # one batch of 12 requests at most
    rows = [r for split in outcome.dataset.values() for r in split]
    assert len(rows) >= 2, outcome.stats.rejected
    for row in rows:
        assert row["entities"]
        for span in row["entities"]:
            assert row["text"][span["start"]:span["end"]] == span["value"]
    assert (tmp_path / "out" / "rasa" / "nlu.yml").is_file()


def test_a_row_must_name_every_slot_its_label_uses(recipe_dict: dict) -> None:
    """set_heat uses a room and a temperature: a row that names the room and a
    temperature no slot declares ("19 degrees") would be exported with that temperature
    unannotated, so it is rejected (slot_missing); a row naming both is kept."""
    recipe_dict["labels"] = {"set_heat": {"description": "Set a room's heating",
                                          "slots": ["room", "temperature"]}}
    recipe_dict.update(schema="slots", template="slots", per_label=3,
                       slots={"room": ["kitchen", "garage"],
                              "temperature": ["20 degrees", "21 degrees"]})
    recipe = load_recipe(recipe_dict)

    def answer(request: object) -> str:
        seed = request.seed  # type: ignore[attr-defined]
        return (f"1. set the kitchen to 19 degrees {seed}\n"
                f"2. set the garage to 21 degrees {seed}")

    engine = Engine(recipe, backend=FakeBackend(handler=answer), store=Store(":memory:"))
    result = asyncio.run(engine.run())
    assert result.complete
    assert result.rejected["slot_missing"] >= 1
    rows = list(engine.store.examples())
    assert len(rows) == 3
    for row in rows:
        assert {span["entity"] for span in row.fields["entities"]} == {"room", "temperature"}
        assert "19 degrees" not in row.text
