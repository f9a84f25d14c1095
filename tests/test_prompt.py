from __future__ import annotations

from pathlib import Path

import pytest

from textsynth import load_recipe
from textsynth.plan import Planner, Quota
from textsynth.prompt import AcceptedTexts, PromptBuilder, label_context


def test_prompts_show_only_rows_accepted_lag_rounds_before_the_job(recipe_dict: dict) -> None:
    recipe_dict["generation"] = {"avoid": 5, "fewshot": 0}
    recipe = load_recipe(recipe_dict)
    quota = Quota("turn_on", "en")
    accepted = AcceptedTexts(Planner(recipe).quotas)
    for index, text in enumerate(["lights on", "fan on", "heater on"]):
        accepted.add(quota, index, text)
    builder = PromptBuilder(recipe, accepted, lag=2)
    job = Planner(recipe).job(quota, 3)
    assert sorted(builder.job_context(job)["avoid"]) == ["lights on"]  # round 0 < 3 - 2
    assert accepted.count_before(quota, 2) == 2 and accepted.texts(quota, [2]) == ["heater on"]
    assert accepted.remove(quota, "lights on") and not accepted.remove(quota, "lights on")
    assert builder.job_context(job)["avoid"] == []
    # another quota's rows are never shown
    other = Planner(recipe).job(Quota("turn_off", "en"), 3)
    assert builder.job_context(other)["avoid"] == []


def test_every_command_names_labels_and_languages_alike(recipe_dict: dict) -> None:
    recipe_dict.update(language="de")
    recipe_dict["labels"]["set_timer"] = "Set a timer"
    recipe = load_recipe(recipe_dict)
    builder = PromptBuilder(recipe)
    context = builder.job_context(Planner(recipe).job(Quota("set_timer", "de"), 0))
    shared = label_context("set_timer", "de")
    assert shared == {"label": "set_timer", "label_name": "set timer", "language": "de",
                      "language_name": "German"}
    assert {k: context[k] for k in shared} == shared
    assert context["label_description"] == "Set a timer"


def test_preview_builds_no_backend_store_or_quality_gate(
        recipe_dict: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import textsynth.backends
    import textsynth.quality
    import textsynth.store
    from textsynth.pipeline import preview_prompts

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("preview must only render prompts")

    monkeypatch.setattr(textsynth.quality, "build_gate", refuse)
    monkeypatch.setattr(textsynth.store.Store, "__init__", refuse)
    monkeypatch.setattr(textsynth.backends, "create_backend", refuse)
    recipe_dict["backend"] = {"type": "openai", "options": {"model": "m"}}
    prompts = preview_prompts(load_recipe(recipe_dict), n=3)
    assert [name for name, _ in prompts] == ["turn_on/en #0", "turn_off/en #0", "turn_on/en #1"]
    assert "switch something off" in prompts[1][1][-1]["content"]
    assert not (tmp_path / "out").exists()


def test_a_label_reads_as_words_in_prompts() -> None:
    from textsynth.prompt import label_context

    assert label_context("AddToPlaylist", "en")["label_name"] == "add to playlist"
    assert label_context("set_alarm", "de")["label_name"] == "set alarm"
