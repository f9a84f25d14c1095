"""Several OpenAI-compatible endpoints as one backend (``base_url`` as a list)."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from textsynth import load_recipe
from textsynth.backends.endpoints import EndpointPool
from textsynth.errors import RecipeError
from textsynth.executors import build_backend
from textsynth.pipeline import run_recipe
from textsynth.testing import FaultServer


def _recipe(tmp_path: Path, name: str, base_url: Any, **options: Any) -> Any:
    return load_recipe({
        "name": "fleet", "seed": 3, "per_label": 20,
        "labels": {"turn_on": "Switch something on", "turn_off": "Switch something off"},
        "backend": {"type": "openai", "options": {
            "base_url": base_url, "api_key": "test", "model": "test-model",
            "concurrency": 4, "max_retries": 1, "backoff": 0.01, **options}},
        "export": {"dir": str(tmp_path / name), "formats": ["jsonl"]},
        # fake texts differ only by numbers: the meaning-comparing rules stay off
        "quality": {"language_id": False, "near_duplicates": False, "novelty": False,
                    "semantic": False, "classifier": False},
    })


def _rows(outcome: Any) -> dict[str, list[dict[str, Any]]]:
    return {name: split.to_list() for name, split in outcome.dataset.items()}


def _served(servers: list[FaultServer]) -> Counter[str]:
    total: Counter[str] = Counter()
    for server in servers:
        total.update(server.served)
    return total


def test_a_list_of_urls_builds_one_backend_per_endpoint(tmp_path: Path) -> None:
    recipe = _recipe(tmp_path, "x", ["http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1"],
                     requests_per_minute=60)
    pool = build_backend(recipe)
    assert isinstance(pool, EndpointPool)
    assert [e.backend.base_url for e in pool.endpoints] == [  # type: ignore[attr-defined]
        "http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1"]
    # one rate limiter per endpoint, each with the recipe's limits
    limiters = {id(e.backend.limiter) for e in pool.endpoints}  # type: ignore[attr-defined]
    assert len(limiters) == 2
    assert pool.name == "openai" and pool.max_concurrency == 2 * 4 * 8


def test_a_bad_url_in_the_list_is_a_recipe_error(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="base_url"):
        _recipe(tmp_path, "x", ["http://127.0.0.1:1/v1", "ftp://nope"])
    with pytest.raises(RecipeError, match="at least one URL"):
        _recipe(tmp_path, "x", [])


def test_load_is_balanced_and_a_dying_endpoint_loses_nothing(tmp_path: Path) -> None:
    with FaultServer(latency=0.05, items=2) as single:
        reference = run_recipe(_recipe(tmp_path, "one", single.url))
    servers = [FaultServer(latency=0.05, items=2).start() for _ in range(3)]
    dying = servers[1]
    stopper = threading.Thread(target=lambda: (_wait_for(dying, 4), dying.stop()))
    stopper.start()
    try:
        outcome = run_recipe(_recipe(tmp_path, "fleet", [s.url for s in servers]))
    finally:
        stopper.join()
        for server in servers:
            server.stop()
    assert outcome.stats.complete
    assert _rows(outcome) == _rows(reference)  # the same answers, whichever endpoint
    served = _served(servers)
    assert all(n == 1 for n in served.values())  # nothing answered twice
    assert set(served) == set(single.served)
    live = [sum(s.served.values()) for s in (servers[0], servers[2])]
    assert min(live) >= 0.3 * max(live)  # the two live endpoints share the load
    assert sum(dying.served.values()) < min(live)


def _wait_for(server: FaultServer, requests: int) -> None:
    import time

    deadline = time.monotonic() + 30
    while server.stats["requests"] < requests and time.monotonic() < deadline:
        time.sleep(0.01)


def test_a_failing_endpoint_is_probed_back_into_rotation(tmp_path: Path) -> None:
    flaky = FaultServer(latency=0.02, items=2, script=["server_error"] * 4).start()
    steady = FaultServer(latency=0.02, items=2).start()
    try:
        recipe = _recipe(tmp_path, "probe", [flaky.url, steady.url], max_retries=0,
                         concurrency=2)
        pool = build_backend(recipe)
        assert isinstance(pool, EndpointPool)
        pool.base_cooldown = 0.05
        outcome = run_recipe(recipe, backend=pool)
    finally:
        flaky.stop()
        steady.stop()
    assert outcome.stats.complete
    assert flaky.stats["server_error"] == 4
    assert pool.stats["endpoint_failures"] >= 1 and pool.stats["endpoints_back"] >= 1
    assert sum(flaky.served.values()) > 0  # answered again after its failures
    assert all(n == 1 for n in _served([flaky, steady]).values())
