from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


@pytest.fixture
def recipe_dict(tmp_path: Path) -> dict:
    """A small valid recipe on the fake backend, writing under tmp_path."""
    return {
        "name": "test",
        "labels": {"turn_on": "Switch something on", "turn_off": "Switch something off"},
        "per_label": 6,
        "backend": {"type": "fake"},
        "export": {"dir": str(tmp_path / "out")},
        # the rules that need embeddings or lingua, and the ones that judge fake texts
        # as too alike, are on by default; tests of other things turn them off
        "quality": {"min_words": 2, "language_id": False, "near_duplicates": False,
                    "novelty": False, "semantic": False, "request": False,
                    "classifier": False},
    }


@pytest.fixture
def write_recipe(tmp_path: Path):
    import yaml

    def write(data: dict, name: str = "recipe.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    return write


@pytest.fixture
def interrupted_run() -> Callable[..., BaseException]:
    """``interrupted_run(engine, ready, before=None, after=None)`` runs ``engine`` and
    interrupts it (as the first Ctrl-C does) once ``ready()`` holds, calling ``before()``
    just before and ``after()`` just after; it returns the :class:`RunInterrupted` the run
    raised."""
    import asyncio

    from textsynth.errors import RunInterrupted

    def run(engine: Any, ready: Callable[[], bool], before: Callable[[], Any] | None = None,
            after: Callable[[], Any] | None = None) -> BaseException:
        async def stop_soon() -> None:
            while not ready():
                await asyncio.sleep(0.01)
            if before is not None:
                before()
            engine.interrupt()
            if after is not None:
                after()

        async def main() -> None:
            stopper = asyncio.create_task(stop_soon())
            try:
                await engine.run()
            finally:
                await stopper

        with pytest.raises(RunInterrupted) as info:
            asyncio.run(main())
        return info.value

    return run


@pytest.fixture
def base_model(tmp_path: Path) -> tuple[Path, Path]:
    """The embedded model as a plain model folder, and a copy of it without its chat
    template: a base model (weights linked, not copied)."""
    import json

    from textsynth.backends.transformers import embedded_model_path
    from textsynth.backends.vllm import plain_model_dir

    plain = plain_model_dir(embedded_model_path(), tmp_path / "models")
    base = tmp_path / "base-model"
    base.mkdir()
    for item in plain.iterdir():
        if item.name == "tokenizer_config.json":
            config = json.loads(item.read_text())
            config.pop("chat_template", None)
            (base / item.name).write_text(json.dumps(config))
        elif item.name != "chat_template.jinja":
            (base / item.name).symlink_to(item)
    return plain, base
