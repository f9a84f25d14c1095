"""The hot path's JSON encoder writes what ``json.JSONEncoder`` writes."""

from __future__ import annotations

import json
import math
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
