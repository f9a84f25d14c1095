"""The transformers backend on the real embedded model (SmolLM2-135M-Instruct)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from textsynth import Request, load_recipe
from textsynth.backends.transformers import TransformersBackend, embedded_model_path
from textsynth.errors import RecipeError
from textsynth.pipeline import run_recipe

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def backend() -> TransformersBackend:
    b = TransformersBackend({"batch_size": 4, "threads": 2})
    b.load()
    return b


def _request(seed: int, temperature: float = 0.9) -> Request:
    prompt = "Write 3 short things a user might say to a voice assistant to play music.\n1."
    return Request(messages=({"role": "user", "content": prompt},), seed=seed, max_tokens=40,
                   temperature=temperature)


def test_embedded_model_ships_in_package() -> None:
    assert embedded_model_path().stat().st_size > 50_000_000


def test_sampling_is_seeded_per_request_not_per_batch(backend: TransformersBackend) -> None:
    batch = asyncio.run(backend.generate([_request(1), _request(2), _request(3)]))
    alone = asyncio.run(backend.generate([_request(2)]))
    assert batch[1].text == alone[0].text
    assert batch[0].text != batch[1].text  # different seeds differ
    assert all(c.usage.prompt_tokens > 10 and c.usage.completion_tokens > 0 for c in batch)
    assert batch[0].finish_reason in ("stop", "length")


def test_greedy_decoding_is_deterministic(backend: TransformersBackend) -> None:
    a = asyncio.run(backend.generate([_request(5, 0.0)]))
    b = asyncio.run(backend.generate([_request(6, 0.0), _request(5, 0.0)]))
    assert a[0].text == b[1].text == b[0].text


def test_small_run_on_embedded_model(tmp_path: Path, backend: TransformersBackend) -> None:
    recipe = load_recipe({
        "name": "tiny", "per_label": 3,
        "labels": {"play_music": "Start playing a song", "set_alarm": "Set a wake-up alarm"},
        "generation": {"max_tokens": 80, "examples_per_request": 5},
        "quality": {"min_words": 2, "max_words": 25},
        "export": {"dir": str(tmp_path / "out")},
    })
    outcome = run_recipe(recipe, backend=backend)
    assert outcome.result.complete, outcome.result.shortfalls
    from datasets import load_from_disk

    ds = load_from_disk(str(tmp_path / "out" / "dataset"))
    rows = [r for split in ds.values() for r in split]
    assert len(rows) == 6 and len({r["text"] for r in rows}) == 6
    assert {r["model"] for r in rows} == {backend.model_name}


def test_missing_local_model_is_a_recipe_error(tmp_path: Path) -> None:
    b = TransformersBackend({"model": str(tmp_path / "nope")})
    with pytest.raises(RecipeError, match="not found"):
        b.load()
