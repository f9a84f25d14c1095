from __future__ import annotations

from pathlib import Path

import pytest

from textsynth import Recipe, RecipeError, load_recipe


def test_minimal_recipe_defaults(recipe_dict: dict) -> None:
    recipe = load_recipe(recipe_dict)
    assert recipe.labels["turn_on"].description == "Switch something on"
    assert recipe.export.splits == {"train": 0.8, "validation": 0.1, "test": 0.1}
    assert recipe.output_schema == "utterances"
    assert recipe.max_attempts > recipe.per_label // recipe.generation.examples_per_request


def test_labels_as_list_and_mapping(recipe_dict: dict) -> None:
    recipe_dict["labels"] = ["a", "b"]
    assert list(load_recipe(recipe_dict).labels) == ["a", "b"]
    recipe_dict["labels"] = {"a": {"description": "x", "examples": ["hello there"]}}
    assert load_recipe(recipe_dict).labels["a"].examples == ["hello there"]


def test_unknown_key_names_file_and_path(write_recipe, recipe_dict: dict) -> None:
    recipe_dict["generation"] = {"temprature": 0.5}
    path = write_recipe(recipe_dict)
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    assert str(info.value) == f"{path}: generation.temprature: unknown key"
    assert info.value.field == "generation.temprature"


def test_wrong_type_says_what_was_expected(write_recipe, recipe_dict: dict) -> None:
    recipe_dict["per_label"] = "many"
    with pytest.raises(RecipeError, match=r"per_label: .*integer.*'many'"):
        load_recipe(write_recipe(recipe_dict))


def test_missing_required_field(recipe_dict: dict) -> None:
    del recipe_dict["per_label"]
    with pytest.raises(RecipeError, match="per_label: required field is missing"):
        load_recipe(recipe_dict)


def test_split_ratios_must_add_up(recipe_dict: dict) -> None:
    recipe_dict["export"]["splits"] = {"train": 0.5, "test": 0.2}
    with pytest.raises(RecipeError, match="add up to 1"):
        load_recipe(recipe_dict)


def test_unknown_backend_and_bad_backend_option(recipe_dict: dict) -> None:
    recipe_dict["backend"] = {"type": "nope"}
    with pytest.raises(RecipeError, match="unknown backend 'nope'"):
        load_recipe(recipe_dict)
    recipe_dict["backend"] = {"type": "fake", "options": {"bogus": 1}}
    with pytest.raises(RecipeError, match=r"backend\.options\.bogus"):
        load_recipe(recipe_dict)


def test_invalid_yaml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(bad)
    with pytest.raises(RecipeError, match="recipe file not found"):
        load_recipe(tmp_path / "missing.yaml")
    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n- b\n")
    with pytest.raises(RecipeError, match="must be a YAML mapping"):
        load_recipe(listy)


def test_yaml_is_loaded_safely(tmp_path: Path) -> None:
    evil = tmp_path / "evil.yaml"
    evil.write_text("name: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(evil)


def test_overrides(recipe_dict: dict, tmp_path: Path) -> None:
    recipe = load_recipe(recipe_dict)
    changed = recipe.with_overrides(out=tmp_path / "x", per_label=3, seed=7, model="m2")
    assert changed.per_label == 3 and changed.seed == 7
    assert changed.output_dir == tmp_path / "x"
    assert changed.backend.options["model"] == "m2"
    assert recipe.per_label == 6  # the original is untouched


def test_python_object_recipe() -> None:
    recipe = Recipe(name="py", labels={"a": "first"}, per_label=2, backend={"type": "fake"})
    assert recipe.labels["a"].description == "first"
