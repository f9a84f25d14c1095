"""Label maps and readable label names shared by evaluation and the real-data judge."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from textsynth.classifiers import _map_labels, load_label_names, parse_label_map
from textsynth.errors import DataError
from textsynth.sources import LabeledSet


def test_a_label_map_from_text_a_mapping_or_a_json_file(tmp_path: Path) -> None:
    assert parse_label_map(None) == {}
    assert parse_label_map("turn_on=TurnOn, ,turn_off = TurnOff") == {
        "turn_on": "TurnOn", "turn_off": "TurnOff"}
    assert parse_label_map({"a": 1}) == {"a": "1"}  # type: ignore[dict-item]
    path = tmp_path / "map.json"
    path.write_text(json.dumps({"on": "TurnOn"}))
    assert parse_label_map(path) == {"on": "TurnOn"}


@pytest.mark.parametrize(("content", "why"), [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
])
def test_a_bad_label_map_file_is_a_data_error(tmp_path: Path, content: str, why: str) -> None:
    path = tmp_path / "map.json"
    path.write_text(content)
    with pytest.raises(DataError, match=why):
        parse_label_map(path)


@pytest.mark.parametrize("spec", ["a", "=B", "a="])
def test_a_bad_label_map_entry_is_a_data_error(spec: str) -> None:
    with pytest.raises(DataError, match="is not synthetic=test"):
        parse_label_map(spec)


def test_label_names_default_to_words_and_take_given_names(tmp_path: Path) -> None:
    labels = ["AddToPlaylist", "set_alarm"]
    assert load_label_names(None, labels) == {"AddToPlaylist": "add to playlist",
                                              "set_alarm": "set alarm"}
    path = tmp_path / "names.json"
    path.write_text(json.dumps({"labels": [{"label": "set_alarm", "name": "wake me up"},
                                           {"label": "unknown", "name": "ignored"}]}))
    assert load_label_names(path, labels)["set_alarm"] == "wake me up"
    assert "unknown" not in load_label_names(path, labels)
    with pytest.raises(DataError, match="cannot read label names"):
        load_label_names(tmp_path / "missing.json", labels)


def test_synthetic_labels_meet_test_labels_by_name_case_and_separators() -> None:
    data = LabeledSet.from_pairs([("a", "add_to_playlist"), ("b", "GetWeather"),
                                  ("c", "GetWeather"), ("d", "other")])
    texts, labels, mapping, unmapped = _map_labels(
        data, ["AddToPlaylist", "GetWeather"], {}, "synthetic")
    assert mapping == {"add_to_playlist": "AddToPlaylist", "GetWeather": "GetWeather"}
    assert labels == ["AddToPlaylist", "GetWeather", "GetWeather"] and texts == ["a", "b", "c"]
    assert unmapped == {"other": 1}
    with pytest.raises(DataError, match="not a test label"):
        _map_labels(data, ["GetWeather"], {"other": "Nope"}, "synthetic")
    with pytest.raises(DataError, match="pass --label-map"):
        _map_labels(LabeledSet.from_pairs([("x", "zzz")]), ["GetWeather"], {}, "synthetic")
