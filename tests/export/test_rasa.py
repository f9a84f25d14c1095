from __future__ import annotations

import pytest
import yaml
from slots_fixtures import run_slots

from textsynth.export.rasa import annotate, rasa_nlu_yaml, read_rasa_nlu
from textsynth.result import RunResult

# Rasa's NLU file shape (its pykwalify schema, intent part): a mapping with an optional
# string `version` and an `nlu` list of {intent: non-empty str, examples: str}
NLU_SCHEMA = {
    "type": "map",
    "mapping": {
        "version": {"type": "str", "required": False},
        "nlu": {"type": "seq", "sequence": [{"type": "map", "mapping": {
            "intent": {"type": "str", "required": True},
            "examples": {"type": "str", "required": True}}}]},
    },
}


def _validate(text: str) -> None:
    core_module = pytest.importorskip("pykwalify.core")
    core = core_module.Core(source_data=yaml.safe_load(text), schema_data=NLU_SCHEMA)
    core.validate(raise_exception=True)


def test_rasa_file_parses_back_into_the_same_intents_and_spans(slots_run: RunResult) -> None:
    text = (slots_run.out_dir / "rasa" / "nlu.yml").read_text()
    _validate(text)
    data = yaml.safe_load(text)
    assert data["version"] == "3.1"
    assert [item["intent"] for item in data["nlu"]] == ["turn_on", "play_music"]
    names = slots_run.dataset["train"].features["label"].names
    want = sorted((names[r["label"]], r["text"], tuple((e["start"], e["end"], e["entity"],
                                                        e["value"]) for e in r["entities"]))
                  for split in slots_run.dataset.values() for r in split)
    got = sorted((ex.intent, ex.text, tuple((e["start"], e["end"], e["entity"], e["value"])
                                            for e in ex.entities))
                 for ex in read_rasa_nlu(slots_run.out_dir / "rasa" / "nlu.yml"))
    assert got == want and len(got) == 16


def test_texts_rasa_would_misread_are_left_out_and_counted() -> None:
    rows = [
        {"text": "play [live](version) at 6:30", "label": "play",
         "entities": [{"start": 25, "end": 29, "entity": "time", "value": "6:30"}]},
        {"text": "set an alarm: 6:30 # early", "label": "alarm",
         "entities": [{"start": 14, "end": 18, "entity": "time", "value": "6:30"}]},
        {"text": "play 'Queen' - \"yes\"", "label": "play", "entities": []},
    ]
    text, skipped = rasa_nlu_yaml(rows, ["play", "alarm", "unused"])
    _validate(text)
    assert skipped == 1
    back = read_rasa_nlu(text)
    assert [(ex.intent, ex.text) for ex in back] == [("play", "play 'Queen' - \"yes\""),
                                                     ("alarm", "set an alarm: 6:30 # early")]
    assert back[1].entities == [{"start": 14, "end": 18, "entity": "time", "value": "6:30"}]
    assert "unused" not in text


def test_yaml_special_intent_names_are_quoted() -> None:
    text, _ = rasa_nlu_yaml([{"text": "yes please", "label": "yes", "entities": []}], ["yes"])
    assert yaml.safe_load(text)["nlu"][0]["intent"] == "yes"  # not the boolean True


def test_intent_names_in_other_scripts_are_written_as_they_read() -> None:
    rows = [{"text": "開燈", "label": "開燈", "entities": []},
            {"text": "Licht an", "label": "Straße_Licht", "entities": []}]
    text, _ = rasa_nlu_yaml(rows, ["開燈", "Straße_Licht"])
    assert "- intent: 開燈\n" in text and "- intent: Straße_Licht\n" in text  # not \u958B
    assert [i["intent"] for i in yaml.safe_load(text)["nlu"]] == ["開燈", "Straße_Licht"]


@pytest.mark.parametrize(("text", "entities", "want"), [
    ("lights in the kitchen", [{"start": 14, "end": 21, "entity": "room"}],
     "lights in the [kitchen](room)"),
    ("a [b](c) text", [], None),
    ("a [b] (c) text", [], "a [b] (c) text"),
    ("see [x]{y} now", [], None),
    ("two\nlines", [], None),
])
def test_annotate(text: str, entities: list, want: str | None) -> None:
    assert annotate(text, entities) == want


def test_rasa_only_when_asked(slots_recipe_dict: dict) -> None:
    slots_recipe_dict["export"]["formats"] = ["parquet"]
    outcome = run_slots(slots_recipe_dict)
    assert not (outcome.out_dir / "rasa").exists()
