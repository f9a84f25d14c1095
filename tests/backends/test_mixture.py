"""Several models as one backend (``model`` as a list): routing, determinism, resume."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from textsynth import load_recipe
from textsynth.backends.base import Request
from textsynth.backends.endpoints import EndpointPool
from textsynth.backends.mixture import ModelMix
from textsynth.errors import RecipeError
from textsynth.executors import build_backend
from textsynth.pipeline import run_recipe
from textsynth.testing import FaultServer


def _recipe(tmp_path: Path, name: str, base_url: Any, model: Any) -> Any:
    return load_recipe({
        "name": "mix", "seed": 5, "per_label": 12,
        "labels": {"turn_on": "Switch something on", "turn_off": "Switch something off"},
        "backend": {"type": "openai", "options": {
            "base_url": base_url, "api_key": "test", "model": model, "concurrency": 4,
            "max_retries": 1, "backoff": 0.01}},
        "export": {"dir": str(tmp_path / name), "formats": ["jsonl"]},
        # fake texts differ only by numbers: the meaning-comparing rules stay off
        "quality": {"language_id": False, "near_duplicates": False, "novelty": False,
                    "semantic": False, "classifier": False},
    })


def _rows(outcome: Any) -> list[dict[str, Any]]:
    return [row for split in outcome.dataset.values() for row in split.to_list()]


def test_a_list_of_models_builds_one_backend_per_model(tmp_path: Path) -> None:
    mix = build_backend(_recipe(tmp_path, "x", "http://127.0.0.1:1/v1", ["small", "other"]))
    assert isinstance(mix, ModelMix)
    assert [b.model_name for b in mix.backends] == ["small", "other"]
    assert mix.model_name == "small+other"  # in every request key: no single model's cache
    assert mix.max_concurrency == sum(b.max_concurrency for b in mix.backends)
    # both lists: each model over the whole fleet
    both = build_backend(_recipe(tmp_path, "y", ["http://127.0.0.1:1/v1",
                                                 "http://127.0.0.1:2/v1"], ["a", "b"]))
    assert isinstance(both, ModelMix)
    assert all(isinstance(b, EndpointPool) and len(b.endpoints) == 2 for b in both.backends)
    # a list of one is that model alone
    one = build_backend(_recipe(tmp_path, "z", "http://127.0.0.1:1/v1", ["a"]))
    assert not isinstance(one, ModelMix) and one.model_name == "a"


def test_a_job_goes_to_the_model_its_index_names(tmp_path: Path) -> None:
    mix = build_backend(_recipe(tmp_path, "x", "http://127.0.0.1:1/v1", ["a", "b", "c"]))
    assert isinstance(mix, ModelMix)
    routes = [mix.route(Request(messages=(), seed=99, metadata={"index": i}))
              for i in range(6)]
    assert routes == [0, 1, 2, 0, 1, 2]
    # a request of no job (a judge's) goes by its seed
    assert mix.route(Request(messages=(), seed=7)) == 7 % 3


@pytest.mark.parametrize("models, message", [
    ([], "at least one model"),
    (["a", "a"], "named twice"),
    (["a", 3], "backend.options"),
])
def test_a_bad_list_of_models_is_a_recipe_error(tmp_path: Path, models: list[Any],
                                                message: str) -> None:
    with pytest.raises(RecipeError, match=message):
        _recipe(tmp_path, "x", "http://127.0.0.1:1/v1", models)


def test_both_models_write_rows_the_same_for_a_seed_and_resume_pays_nothing_twice(
        tmp_path: Path) -> None:
    with FaultServer(latency=0.01, items=2) as server:
        first = run_recipe(_recipe(tmp_path, "one", server.url, ["small", "other"]))
        asked = Counter(body["model"] for body in server.bodies)
        again = run_recipe(_recipe(tmp_path, "two", server.url, ["small", "other"]))
        sent_before = len(server.bodies)
        resumed = run_recipe(_recipe(tmp_path, "one", server.url, ["small", "other"]))
        assert len(server.bodies) == sent_before  # every answer read back from the store
    assert first.stats.complete and resumed.stats.complete
    rows = _rows(first)
    assert rows == _rows(again) == _rows(resumed)
    by_model = Counter(row["model"] for row in rows)
    assert set(by_model) == {"small", "other"}  # each row names the model that wrote it
    assert min(by_model.values()) >= 0.3 * max(by_model.values())
    assert set(asked) == {"small", "other"}
    assert abs(asked["small"] - asked["other"]) <= 2  # jobs alternate between the models


@pytest.mark.model
def test_a_base_model_in_the_list_stops_a_chat_recipe_before_any_model_answers(
        tmp_path: Path, base_model: tuple[Path, Path]) -> None:
    """Both models load before either is sent a request: the one without a chat
    template fails the run at once, and nothing was generated (the store is empty)."""
    pytest.importorskip("transformers")
    from textsynth.store import Store

    base = base_model[1]  # the embedded model, its chat template removed
    recipe = load_recipe({
        "name": "mix-base", "per_label": 3, "labels": {"turn_on": "Switch something on"},
        "backend": {"type": "transformers", "options": {
            "model": ["smollm2-135m-instruct", str(base)], "threads": 2}},
        "generation": {"max_tokens": 16, "batch_size": 1},
        "export": {"dir": str(tmp_path / "out"), "formats": ["jsonl"]},
        "quality": {"language_id": False, "near_duplicates": False, "novelty": False,
                    "semantic": False, "classifier": False},
    })
    with pytest.raises(RecipeError, match=r"base-model has no chat template"):
        run_recipe(recipe)
    store = Store.in_dir(tmp_path / "out")
    try:
        assert store.completion_count() == 0  # the instruct model answered nothing either
    finally:
        store.close()
