"""Overrides live in the library: the CLI's options and --option/--set items."""

from __future__ import annotations

import pytest

from textsynth import RecipeError, load_recipe
from textsynth.overrides import apply_overrides, backend_options, parse_assignments


def test_assignments_are_read_as_yaml() -> None:
    assert parse_assignments(["a=0.5", "b=[x, y]", "c=true", "d=", " e =text"], "set") == {
        "a": 0.5, "b": ["x", "y"], "c": True, "d": None, "e": "text"}
    assert backend_options("m", ["temperature=0"]) == {"model": "m", "temperature": 0}
    assert backend_options(None) == {}


@pytest.mark.parametrize(("item", "match"), [
    ("novalue", "is not KEY=VALUE"), ("=1", "is not KEY=VALUE"),
    ("a=[unclosed", "the value is not YAML"),
])
def test_a_bad_assignment_is_a_recipe_error(item: str, match: str) -> None:
    with pytest.raises(RecipeError, match=match):
        parse_assignments([item], "set")


def test_a_base_url_alone_means_the_openai_backend(recipe_dict: dict) -> None:
    recipe = load_recipe(recipe_dict)
    changed = recipe.with_overrides(base_url="http://127.0.0.1:9/v1", model="m")
    assert changed.backend.type == "openai"
    assert changed.backend.options == {"base_url": "http://127.0.0.1:9/v1", "model": "m"}
    # a backend named with it wins, and keeps options when it is the same type
    same = changed.with_overrides(backend="openai", base_url="http://127.0.0.1:8/v1")
    assert same.backend.options["model"] == "m"


def test_set_changes_any_field_by_path_and_is_validated(recipe_dict: dict) -> None:
    recipe = load_recipe(recipe_dict)
    changed = recipe.with_overrides(set={"generation.temperature": 0.3, "quality.pii": "mask",
                                         "budget.max_tokens": 1000}, seed=0)
    assert changed.generation.temperature == 0.3 and changed.quality.pii == "mask"
    assert changed.budget.max_tokens == 1000 and changed.seed == 0
    with pytest.raises(RecipeError, match=r"generation\.temprature: unknown key"):
        recipe.with_overrides(set={"generation.temprature": 0.3})
    with pytest.raises(RecipeError, match=r"name is not a mapping"):
        recipe.with_overrides(set={"name.x": 1})
    assert recipe.generation.temperature != 0.3  # the original is untouched


def test_apply_overrides_never_changes_its_input() -> None:
    data = {"backend": {"type": "fake", "options": {"model": "a"}}, "export": {}}
    out = apply_overrides(data, {"model": "b", "out": "x", "per_label": None})
    assert out["backend"]["options"]["model"] == "b" and out["export"]["dir"] == "x"
    assert data == {"backend": {"type": "fake", "options": {"model": "a"}}, "export": {}}
    assert "per_label" not in out
