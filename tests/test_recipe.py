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


# -- bad input: one clear RecipeError, never a traceback or a silent guess ------------------

@pytest.mark.parametrize(("value", "expected"), [
    (True, "expected a whole number, got true"),
    (10**21, "less than or equal to 10000000"),
    (0, "greater than or equal to 1"),
])
def test_per_label_must_be_a_sensible_whole_number(recipe_dict: dict, value: object,
                                                   expected: str) -> None:
    recipe_dict["per_label"] = value
    with pytest.raises(RecipeError, match=expected) as info:
        load_recipe(recipe_dict)
    assert info.value.field == "per_label"


def test_per_label_true_in_a_yaml_file(write_recipe, recipe_dict: dict) -> None:
    path = write_recipe(recipe_dict)
    path.write_text(path.read_text().replace("per_label: 6", "per_label: yes"))
    with pytest.raises(RecipeError, match="per_label: expected a whole number"):
        load_recipe(path)


@pytest.mark.parametrize("labels", [
    ["turn_on", "Turn-On"], ["turn on", "TURN_ON"], {"playMusic": "a", "play_music": "b"},
])
def test_labels_that_differ_only_by_case_or_separators(recipe_dict: dict, labels) -> None:
    recipe_dict["labels"] = labels
    with pytest.raises(RecipeError, match="differ only by case or separators"):
        load_recipe(recipe_dict)


@pytest.mark.parametrize("labels", [["a", ""], {"": "x"}, {"a": "x", "  ": "y"}])
def test_empty_label_names(recipe_dict: dict, labels) -> None:
    recipe_dict["labels"] = labels
    with pytest.raises(RecipeError, match="labels: a label name is empty"):
        load_recipe(recipe_dict)


@pytest.mark.parametrize(("ref", "expected"), [
    (":", "expected 'module:Class', got ':'"),
    (".foo:Bar", "relative module name"),
    ("textsynth.schemas:OutputSchema", "abstract class"),
    ("textsynth.schemas:nothing_here", "cannot import"),
    ("no_such_module_xyz:Thing", "cannot import"),
    ("textsynth.schemas:load_schema", "not a pydantic model"),
])
def test_bad_schema_references(ref: str, expected: str) -> None:
    from textsynth.schemas import load_schema

    with pytest.raises(RecipeError, match=expected) as info:
        load_schema(ref)
    assert info.value.field == "schema"


def test_schema_module_that_fails_on_import(tmp_path: Path, monkeypatch) -> None:
    from textsynth.schemas import load_schema

    (tmp_path / "broken_schema_mod.py").write_text("raise ZeroDivisionError('oops')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(RecipeError, match="raised ZeroDivisionError: oops"):
        load_schema("broken_schema_mod:Thing")


@pytest.mark.parametrize("ref", [":", ".foo:check", "textsynth:", ":check"])
def test_bad_custom_check_references(recipe_dict: dict, ref: str) -> None:
    from textsynth.quality import build_gate

    recipe_dict["quality"] = {"custom": ["textsynth.quality.pii:find_pii", ref]}
    with pytest.raises(RecipeError) as info:
        build_gate(load_recipe(recipe_dict))
    assert info.value.field == "quality.custom.1"


def test_vary_with_too_many_combinations(recipe_dict: dict) -> None:
    recipe_dict["vary"] = {f"k{i}": [f"v{j}" for j in range(10)] for i in range(9)}
    with pytest.raises(RecipeError, match="1,000,000,000 combinations of attributes") as info:
        load_recipe(recipe_dict)
    assert info.value.field == "vary"


@pytest.mark.parametrize("labels", [["a", "b", "a"], {1: "x", "1": "y"}])
def test_a_label_given_twice(recipe_dict: dict, labels) -> None:
    recipe_dict["labels"] = labels
    with pytest.raises(RecipeError, match="is given twice"):
        load_recipe(recipe_dict)


@pytest.mark.parametrize(("labels", "why"), [
    ([["a", "b"], "c"], r"label 1 is a list, not a name"),
    (["c", {"greet": "Say hello"}], r"label 2 is a mapping, not a name"),
    ([None, "c"], r"label 1 is empty \(null\)"),
    ({None: "x", "c": "y"}, r"a label name is empty \(null\)"),
    ([True, False], r"label 1 is true, not a name: YAML reads an unquoted yes, no, on, off"),
    ({True: "x", "b": "y"}, r"a label name is true"),
    ([1.5, "c"], r"label 1 is the number 1\.5: quote it \('1\.5'\)"),
    (["c", "a" * 100_000], r"label 2 is 100,000 characters long \('a{24}'\.\.\.\); a label "
                           r"name is at most 200"),
    ({"x" * 201: "a description"}, r"a label name is 201 characters long"),
])
def test_a_label_name_that_is_not_text_is_refused(recipe_dict: dict, labels, why: str) -> None:
    # before: written into every prompt as "['a', 'b']", "None" or "True"
    recipe_dict["labels"] = labels
    with pytest.raises(RecipeError, match=why):
        load_recipe(recipe_dict)


@pytest.mark.parametrize(("yaml_text", "field"), [
    ("language: no\n", "language"), ("languages: [en, no]\n", "languages")])
def test_an_unquoted_no_is_told_apart_from_norwegian(tmp_path: Path, yaml_text: str,
                                                     field: str) -> None:
    # YAML 1.1 reads no as false; it used to say "Input should be a valid string (got False)"
    path = tmp_path / "r.yaml"
    path.write_text("name: r\nper_label: 2\nlabels: [a, b]\n" + yaml_text, encoding="utf-8")
    with pytest.raises(RecipeError, match=rf"{field}: false is not a language code: YAML "
                                          r"reads an unquoted no.*quote it \('no' for"):
        load_recipe(path)
    path.write_text(path.read_text().replace("no", "'no'"), encoding="utf-8")
    assert "no" in load_recipe(path).all_languages


def test_whole_numbers_are_label_names(recipe_dict: dict) -> None:
    recipe_dict["labels"] = [0, 1]
    assert list(load_recipe(recipe_dict).labels) == ["0", "1"]


def test_yes_and_no_from_a_yaml_file_say_to_quote_them(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("name: t\nper_label: 2\nlabels: [yes, no]\n")
    with pytest.raises(RecipeError, match=r"quote it"):
        load_recipe(path)
    path.write_text("name: t\nper_label: 2\nlabels: ['yes', 'no']\n")
    assert list(load_recipe(path).labels) == ["yes", "no"]


def test_advice_names_the_labels_with_only_a_name() -> None:
    names = load_recipe({"name": "t", "per_label": 1, "labels": ["a", "b", "c", "d", "e"]})
    (note,) = names.advice()
    assert note.startswith("5 of 5 labels have neither a description nor examples "
                           "(a, b, c and 2 more)")
    described = load_recipe({"name": "t", "per_label": 1, "labels": {
        "a": "switch a light on", "b": {"examples": ["Lock the door"]},
        "c": {"description": "  "}}})
    (note,) = described.advice()  # "c" has a blank description
    assert note.startswith("1 of 3 labels have neither a description nor examples (c)")
    described = load_recipe({"name": "t", "per_label": 1, "labels": {"a": "switch a light on"}})
    assert described.advice() == []


@pytest.mark.parametrize(("extra", "named"), [
    ({"languages": ["de", "it", "sw"]}, "its German, Italian and Swahili will be poor"),
    ({"language": "fr"}, "its French will be poor"),
    ({"languages": ["en", "en-GB"]}, None),
    ({"language": "de", "backend": {"type": "openai",
                                    "options": {"base_url": "http://127.0.0.1:9/v1"}}}, None),
    ({"language": "de", "backend": {"type": "openvino",
                                    "options": {"model": "gemma3-270m"}}}, None),
])
def test_advice_warns_that_the_embedded_model_writes_english(extra: dict,
                                                            named: str | None) -> None:
    recipe = load_recipe({"name": "t", "per_label": 1, "labels": {"a": "switch a light on"},
                          "backend": {"type": "openvino"}, **extra})
    notes = [n for n in recipe.advice() if "SmolLM2" in n]
    assert (notes[0].split(", and ", 1)[1].split(" (")[0] if notes else None) == named
    assert notes == ([recipe.language_advice()] if named else [])


@pytest.mark.parametrize(("field", "value", "why"), [
    ("license", "CC BY 4.0", r"license: a license identifier such as cc-by-4.0, mit or other, "
                             r"not 'CC BY 4.0'"),
    ("license", "cc-by-4.0\nextra: 1", r"license: a license identifier"),
    ("name", "evil\nlicense: mit", r"name: a recipe's name is one line"),
])
def test_what_the_card_shows_is_one_clean_line(recipe_dict: dict, field: str, value: str,
                                               why: str) -> None:
    # before: the card read "license: 'cc-by-4.0\n extra: 1'" and "# evil\nlicense: mit"
    with pytest.raises(RecipeError, match=why):
        load_recipe({**recipe_dict, field: value})
    for good in ("cc-by-4.0", "apache-2.0", "cc0-1.0", "other", "openrail++"):
        assert load_recipe({**recipe_dict, "license": good}).license == good



@pytest.mark.parametrize(("field", "value", "why"), [
    ("slots", {"room": []}, r"slots: 'room' needs at least one value"),
    ("slots", {"room": ["kitchen", " "]}, r"slots: 'room' has a blank value"),
    ("vary", {"mood": [""]}, r"vary: 'mood' has a blank value"),
])
def test_slot_and_vary_values_are_words(recipe_dict: dict, field: str, value: dict,
                                        why: str) -> None:
    # before: a blank slot value went into prompts as 'must mention the room ""'
    with pytest.raises(RecipeError, match=why):
        load_recipe({**recipe_dict, field: value})


def test_seed_examples_are_not_blank_and_a_continued_list_shows_one_a_line(
        recipe_dict: dict) -> None:
    # before: a blank example was shown as an empty item "- " of the list the model
    # continues (where an empty line ends a list), and a line break split one example in two
    for key in ("examples", "counter_examples"):
        labels = {"turn_on": {"description": "on", key: ["Lights on", "  "]}, "turn_off": "off"}
        with pytest.raises(RecipeError, match=rf"labels\.turn_on\.{key}: example 2 is blank"):
            load_recipe({**recipe_dict, "labels": labels})
    labels = {"turn_on": {"examples": ["Lights on\nplease", "Lamp on"]}, "turn_off": "off"}
    assert load_recipe({**recipe_dict, "labels": labels}).labels["turn_on"].examples[0]
    with pytest.raises(RecipeError, match=r"labels\.turn_on\.examples: example 1 holds a line "
                                          r"break; a continued list shows one example a line"):
        load_recipe({**recipe_dict, "labels": labels, "generation": {"style": "continue"}})


@pytest.mark.parametrize(("quality", "why"), [
    ({"min_words": 5, "max_words": 3}, r"quality: min_words \(5\) is above max_words \(3\)"),
    ({"max_words": 1}, r"quality: min_words \(2\) is above max_words \(1\)"),  # the default 2
    ({"min_chars": 100, "max_chars": 50}, r"min_chars \(100\) is above max_chars \(50\)"),
])
def test_crossed_length_bounds_are_refused(recipe_dict: dict, quality: dict, why: str) -> None:
    # before: accepted, and every candidate was rejected until the attempts ran out
    with pytest.raises(RecipeError, match=why):
        load_recipe({**recipe_dict, "quality": {**recipe_dict["quality"], **quality}})
    assert load_recipe({**recipe_dict, "quality": {"min_words": 3, "max_words": 3}})
