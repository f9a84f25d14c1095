"""The README's "test a recipe offline" lines, run as they are written there."""

from __future__ import annotations

import re
from pathlib import Path

from textsynth import FakeBackend, load_recipe, run_recipe

ROOT = Path(__file__).resolve().parent.parent


def _offline_lines() -> str:
    """The lines of the README's Python block from "# test a recipe offline" to the run."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("## From Python", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    match = re.search(r"^# test a recipe offline.*?^run_recipe\(offline.*?$", block, re.M | re.S)
    assert match, "the README's offline example is gone"
    return match.group(0)


def test_the_readme_offline_example_fills_every_quota(tmp_path: Path) -> None:
    code = _offline_lines().replace('"/tmp/fake"', repr(str(tmp_path / "fake")))
    recipe = load_recipe(ROOT / "examples" / "smart_home_intents.yaml").with_overrides(
        per_label=5)
    scope = {"FakeBackend": FakeBackend, "run_recipe": run_recipe, "recipe": recipe}
    exec(code.replace("run_recipe(offline", "result = run_recipe(offline"), scope)
    result = scope["result"]
    assert result.stats.stop_reasons == {}  # no label fell short
    accepted = {q.label: s.accepted for q, s in result.stats.quotas.items()}
    assert accepted == {label: 5 for label in recipe.labels}
    assert result.stats.sent <= 60  # the fake rows pass: no label spends its attempts
    assert len(result.dataset["train"]) + len(result.dataset["validation"]) \
        + len(result.dataset["test"]) == 30


def test_run_recipe_takes_a_path_or_a_mapping_as_load_recipe_does(tmp_path: Path) -> None:
    """``run_recipe("recipe.yaml")`` used to fail deep in the engine with AttributeError
    ('str' object has no attribute 'recipe')."""
    fake = FakeBackend(responses=["Turn it on in room {seed}"])
    spec = {"name": "lamp", "per_label": 2,
            "labels": {"lamp_on": "switch on", "lamp_off": "switch off"},
            "quality": {"classifier": False, "semantic": False, "novelty": False,
                        "near_duplicates": False}}
    path = tmp_path / "lamp.yaml"
    path.write_text("name: lamp\nper_label: 2\nlabels: {lamp_on: switch on, lamp_off: switch off}\n"
                    "quality: {classifier: false, semantic: false, novelty: false,\n"
                    "          near_duplicates: false}\n", encoding="utf-8")
    by_path = run_recipe(str(path), backend=fake, out_dir=str(tmp_path / "a"))
    by_mapping = run_recipe(spec, backend=FakeBackend(responses=["Turn it on in room {seed}"]),
                            out_dir=tmp_path / "b")
    assert by_path.accepted == by_mapping.accepted == 4
    assert (tmp_path / "a" / "README.md").is_file() and (tmp_path / "b" / "README.md").is_file()
