"""The sections of a recipe: split names that become file names, ratios, strict keys."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from textsynth.recipe_specs import ExportSpec, GenerationSpec, LabelSpec


@pytest.mark.parametrize("name", ["train", "validation_2", "test.clean", "A1"])
def test_split_names_that_are_safe_file_names_are_taken(name: str) -> None:
    assert ExportSpec(splits={name: 1.0}).splits == {name: 1.0}


@pytest.mark.parametrize(("splits", "why"), [
    ({"../train": 1.0}, "becomes a file name"),
    ({"trañ": 1.0}, "becomes a file name"),
    ({"a" * 65: 1.0}, "becomes a file name"),
    ({"x.": 1.0}, "becomes a file name"),
    ({"Rejected": 1.0}, "names the rejected rows"),
    ({"COM1": 1.0}, "names a device on Windows"),
    ({"nul.txt": 1.0}, "names a device on Windows"),
    ({"Train": 0.5, "train": 0.5}, "differ only by case"),
    ({}, "at least one split"),
    ({"train": 1.2, "test": -0.2}, "must be positive"),
    ({"train": 0.5, "test": 0.2}, "add up to 1 (they add up to 0.7)"),
])
def test_a_bad_split_says_what_is_wrong(splits: dict[str, float], why: str) -> None:
    with pytest.raises(ValidationError, match=why.replace("(", r"\(").replace(")", r"\)")):
        ExportSpec(splits=splits)


def test_sections_refuse_unknown_keys_and_out_of_range_values() -> None:
    with pytest.raises(ValidationError, match="extra"):
        GenerationSpec(temprature=0.5)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        GenerationSpec(repair_turns=6)
    assert GenerationSpec().repair_turns is None  # the backend's default
    assert LabelSpec().slots is None and LabelSpec(slots=[]).slots == []
