from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from slots_fixtures import run_slots, slots_recipe

from textsynth.result import RunResult


@pytest.fixture
def slots_recipe_dict(tmp_path: Path) -> dict[str, Any]:
    return slots_recipe(tmp_path)


@pytest.fixture
def slots_run(slots_recipe_dict: dict[str, Any]) -> RunResult:
    return run_slots(slots_recipe_dict)
