"""The hot path's JSON encoder writes what ``json.JSONEncoder`` writes."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from textsynth._json import json_encoder

VALUES: list[Any] = [
    "x", 'é\n"\x00', 1, -0.0, 0.9, 1e300, 10**30, math.nan, math.inf, None, True, [], {},
    ({"role": "user", "content": "東京 «hi»"},), {"b": 1, "a": [1, 2.0, "ü", None]},
    {1: "int", False: "bool", None: "none", 2.5: "float"}, [{"z": {"y": 1, "x": [{}]}}],
]


@pytest.mark.parametrize("sort_keys", [False, True])
def test_the_same_text_as_the_standard_encoder(sort_keys: bool) -> None:
    reference = json.JSONEncoder(ensure_ascii=False, sort_keys=sort_keys).encode
    encode = json_encoder(sort_keys=sort_keys)
    for value in VALUES:
        assert _outcome(encode, value) == _outcome(reference, value)
        assert _outcome(encode, value) == _outcome(encode, value)  # nothing left over


def _outcome(encode: Any, value: Any) -> str:
    """The text, or the error (keys of mixed types cannot be sorted, in either)."""
    try:
        return str(encode(value))
    except TypeError as exc:
        return f"TypeError: {exc}"


@pytest.mark.parametrize("value", [{"a": object()}, {"a": [1, {2, 3}]}])
def test_what_json_cannot_hold_is_the_same_error(value: Any) -> None:
    encode = json_encoder()
    with pytest.raises(TypeError, match="is not JSON serializable"):
        encode(value)
    assert encode({"a": 1}) == '{"a": 1}'  # and the encoder still works


@pytest.mark.parametrize("accelerator", ["missing", "other arguments"])
def test_without_the_c_encoder_the_standard_one_writes(accelerator: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import types
    from json import encoder as standard

    import textsynth._json

    def other(*args: Any) -> Any:
        raise TypeError("make_encoder() takes 10 arguments")

    # what this module sees of json.encoder; the standard encoder keeps the real one
    seen = types.SimpleNamespace(encode_basestring=standard.encode_basestring,
                                 c_make_encoder=None if accelerator == "missing" else other)
    monkeypatch.setattr(textsynth._json, "_encoder", seen)
    encode = json_encoder(sort_keys=True)
    assert encode({"b": "é", "a": [1, None]}) == '{"a": [1, null], "b": "é"}'


def test_lone_surrogates_become_the_replacement_character() -> None:
    from textsynth._json import valid_text

    half = json.loads('["a \\ud83d b", {"k\\udc00": "\\ude00"}, "whole \\ud83d\\ude00", 3]')
    assert valid_text(half) == ["a \ufffd b", {"k\ufffd": "\ufffd"}, "whole \U0001f600", 3]
    assert valid_text("plain") == "plain"


def test_an_answer_with_half_an_emoji_is_stored(tmp_path: Path) -> None:
    """A server or model that writes a lone surrogate (raw, or as a JSON escape) used to
    crash the store's write, or leave the run waiting for a commit that never came."""
    import asyncio

    from textsynth import FakeBackend, load_recipe
    from textsynth.engine import Engine

    answers = ['["please turn on the kitchen lights \ud83d now", "switch the lamp on"]',
               '["please dim the hall lights \\ud83d now", "lights off in the attic"]']
    recipe = load_recipe({
        "name": "half", "labels": {"lights": "switch lights"}, "per_label": 4,
        "backend": {"type": "fake"}, "generation": {"examples_per_request": 2},
        "quality": {"near_duplicates": False, "novelty": False, "semantic": False,
                    "classifier": False, "language_id": False, "min_words": 2},
        "export": {"dir": str(tmp_path / "out")}})
    engine = Engine(recipe, backend=FakeBackend(responses=answers))
    assert asyncio.run(engine.run()).complete
    texts = {example.text for example in engine.store.examples()}
    assert len(texts) == 4 and {"please turn on the kitchen lights \ufffd now",
                                "please dim the hall lights \ufffd now"} <= texts


def test_a_file_with_half_an_emoji_is_read(tmp_path: Path) -> None:
    from textsynth.sources import load_labeled

    path = tmp_path / "seeds.jsonl"
    path.write_text('{"text": "turn on the light \\ud83d now", "label": "on"}\n'
                    '{"text": "lights off", "label": "off"}\n', encoding="utf-8")
    assert "turn on the light \ufffd now" in load_labeled(path).texts
