"""End to end: the embedded model behind ``transformers serve``, driven by the openai backend."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from textsynth.loopback import free_port, server_process
from textsynth.pipeline import run_recipe
from textsynth.recipe import load_recipe

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def served_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    from transformers.utils.import_utils import is_serve_available

    if not is_serve_available():
        pytest.skip("transformers serve needs fastapi and uvicorn: pip install 'textsynth[local]'")
    from textsynth.backends.transformers import embedded_model_path
    from textsynth.backends.vllm import plain_model_dir

    model_dir = plain_model_dir(embedded_model_path(), tmp_path_factory.mktemp("smollm2"))
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error",
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    cmd = [sys.executable, "-m", "transformers.cli.transformers", "serve", str(model_dir),
           "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"]
    url = f"http://127.0.0.1:{port}"
    with server_process(cmd, f"{url}/health", timeout=180, name="transformers serve",
                        env=env):
        yield f"{url}/v1", str(model_dir)


def test_recipe_runs_through_transformers_serve_to_a_dataset(
        served_model: tuple[str, str], tmp_path: Path) -> None:
    url, model = served_model
    recipe = load_recipe({
        "name": "serve-e2e",
        "labels": {"turn_on_lights": "Ask to switch the lights on"},
        "per_label": 2,
        "generation": {"examples_per_request": 3, "max_tokens": 48, "max_attempts": 2},
        "backend": {"type": "openai", "options": {
            "base_url": url, "model": model, "concurrency": 1, "lookahead": 1,
            "timeout": 600, "max_retries": 1}},
        "export": {"dir": str(tmp_path / "out"), "splits": {"train": 1.0}},
        # the served path is under test here, not the meaning-comparing rules
        "quality": {"near_duplicates": False, "novelty": False, "semantic": False,
                    "classifier": False},
    })
    outcome = run_recipe(recipe)
    result = outcome.stats
    assert result.sent >= 1 and result.usage.prompt_tokens > 0  # real usage from the server
    assert result.usage.completion_tokens > 0
    rows = outcome.dataset["train"]
    assert len(rows) >= 1 and all(isinstance(t, str) and t.strip() for t in rows["text"])
    assert set(rows["label"]) == {0}
    assert (tmp_path / "out" / "README.md").is_file()
