from __future__ import annotations

import pytest
from pydantic import BaseModel

from textsynth import RecipeError, load_schema
from textsynth.schemas import UtteranceList, extract_json

WANT = ["turn on the lights", "switch the lamp on please"]


@pytest.mark.parametrize(
    "completion",
    [
        '["turn on the lights", "switch the lamp on please"]',
        '{"utterances": ["turn on the lights", "switch the lamp on please"]}',
        '```json\n["turn on the lights", "switch the lamp on please"]\n```',
        'Sure! Here are some examples:\n```\n["turn on the lights", '
        '"switch the lamp on please"]\n```\nHope this helps.',
        "1. turn on the lights\n2. switch the lamp on please",
        "1) turn on the lights\n2) switch the lamp on please",
        "- turn on the lights\n- switch the lamp on please",
        "* \"turn on the lights\"\n* \"switch the lamp on please\"",
        '"turn on the lights"\n"switch the lamp on please"',
        "Sure! Here are 2 requests:\n1. turn on the lights\n2. switch the lamp on please",
        "Here are some examples:\n\n• “turn on the lights”\n• ‘switch the lamp on please’",
        '[{"text": "turn on the lights"}, {"text": "switch the lamp on please"}]',
    ],
)
def test_utterance_list_survives_small_model_output(completion: str) -> None:
    parsed = UtteranceList().parse(completion)
    assert [p.text for p in parsed if not p.error] == WANT


def test_unreadable_items_are_rejects_not_crashes() -> None:
    parsed = UtteranceList().parse('["ok then", 42, null]')
    assert [(p.text, p.error) for p in parsed] == [
        ("ok then", None), ("42", "not_a_string"), ("None", "not_a_string")]
    assert UtteranceList().parse("   ")[0].error == "empty_completion"


def test_extract_json_finds_embedded_value() -> None:
    assert extract_json('noise {"a": [1, 2]} more') == {"a": [1, 2]}
    assert extract_json("no json here") is None


class Review(BaseModel):
    text: str
    stars: int


def test_user_pydantic_schema() -> None:
    schema = load_schema(f"{__name__}:Review")
    parsed = schema.parse('[{"text": "great", "stars": 5}, {"text": "meh", "stars": "x"}]')
    assert parsed[0].text == "great" and parsed[0].fields == {"stars": 5}
    assert parsed[1].error and "stars" in parsed[1].error
    assert "items" in schema.json_schema()["properties"]


def test_labeled_text_schema_reads_label() -> None:
    parsed = load_schema("labeled_text").parse('{"text": "lights on", "label": "turn_on"}')
    assert (parsed[0].text, parsed[0].label) == ("lights on", "turn_on")


def test_schema_errors() -> None:
    with pytest.raises(RecipeError, match="unknown schema"):
        load_schema("nope")
    with pytest.raises(RecipeError, match="cannot import"):
        load_schema("no_such_module:Thing")
    with pytest.raises(RecipeError, match="needs a 'text' field"):
        load_schema("pydantic:BaseModel")
