"""Reading a recipe file: YAML errors, duplicate keys, alias bombs, size and encoding."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from textsynth import RecipeError, load_recipe


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


@pytest.mark.parametrize("text", [
    "name: a\nper_label: 2\nname: b\nlabels: [x]\n",
    "name: a\nper_label: 2\nlabels:\n  x: one\n  y: two\n  x: three\n",
    "name: a\nper_label: 2\nlabels: [x]\ngeneration:\n  n: 1\n  n: 2\n",
])
def test_duplicate_yaml_keys_anywhere(tmp_path: Path, text: str) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text(text)
    with pytest.raises(RecipeError, match="duplicate key") as info:
        load_recipe(path)
    assert info.value.field is not None and info.value.field.startswith("line ")


def test_yaml_merge_keys_are_not_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "merge.yaml"
    path.write_text("name: a\nper_label: 2\nbackend: {type: fake}\nlabels:\n"
                    "  x: &base {description: one}\n  y:\n    <<: *base\n    description: two\n")
    assert load_recipe(path).labels["y"].description == "two"


def test_recipe_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\u00e9\nper_label: 2\nlabels: [x]\n".encode("latin-1"))
    with pytest.raises(RecipeError, match=r"line 1: not UTF-8 text \(byte 0xe9\)"):
        load_recipe(path)


def test_yaml_alias_bomb_is_refused_without_expanding_it(tmp_path: Path) -> None:
    import tracemalloc

    lines = ["name: bomb", "per_label: 1", 'a0: &a0 ["lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    lines.append("labels: {x: {examples: *a9}}")
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    tracemalloc.start()
    try:
        with pytest.raises(RecipeError, match="aliases expand to"):
            load_recipe(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 256 * 2**20  # expanded, its 2.3 billion items would not fit in memory


def test_recipe_file_size_is_bounded(tmp_path: Path, monkeypatch) -> None:
    from textsynth import recipe_file as recipe_module

    monkeypatch.setattr(recipe_module, "MAX_RECIPE_BYTES", 1000)
    path = tmp_path / "big.yaml"
    path.write_text("name: a\nper_label: 2\nlabels: [x]\ndescription: " + "y" * 2000 + "\n")
    with pytest.raises(RecipeError, match="larger than"):
        load_recipe(path)


def test_unreadable_recipe_is_a_recipe_error(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("name: a\n")
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):
            pytest.skip("running as root: every file is readable")
        with pytest.raises(RecipeError, match="cannot read the recipe"):
            load_recipe(path)
    finally:
        path.chmod(0o644)


def test_every_example_recipe_loads() -> None:
    """The recipes a user copies from examples/ are valid as shipped."""
    folder = Path(__file__).resolve().parent.parent / "examples"
    paths = sorted(folder.glob("*.yaml"))
    assert len(paths) >= 8
    for path in paths:
        recipe = load_recipe(path)
        assert recipe.labels and all(label.description for label in recipe.labels.values()), path
