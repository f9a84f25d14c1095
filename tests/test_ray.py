"""The Ray executor on a local Ray cluster started by the tests themselves."""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import textsynth
from textsynth import load_recipe
from textsynth.engine import Engine
from textsynth.errors import RecipeError
from textsynth.pipeline import run_recipe
from textsynth.store import Store
from textsynth.testing import FaultServer

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.ray

# the workers import the same textsynth as this process (a checkout may shadow an install)
PACKAGE_ROOT = str(Path(textsynth.__file__).resolve().parent.parent)
REPLY = ('1. please {label} the thing number {seed} now\n'
         '2. please {label} everything\n'  # the same in every answer: a duplicate
         '3. As an AI language model I cannot do that\n'
         '4. kindly {label} item {seed} at once')


@pytest.fixture(scope="module", autouse=True)
def cluster() -> Any:
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": PACKAGE_ROOT}})
    yield
    ray.shutdown()


def _rows(outcome: Any) -> dict[str, list[dict[str, Any]]]:
    """Every exported split, rows in order (request ids are content hashes: equal too)."""
    return {name: split.to_list() for name, split in outcome.dataset.items()}


def _recipe(tmp_path: Path, name: str, execution: dict[str, Any] | None,
            backend: dict[str, Any]) -> Any:
    data: dict[str, Any] = {
        "name": "ray-test", "seed": 7, "per_label": 12,
        "labels": {"turn_on": "Switch something on", "turn_off": "Switch something off",
                   "dim": "Dim the lights"},
        "backend": backend,
        "quality": {"min_words": 2, "language_id": False, "near_duplicates": False,
                    "novelty": False, "semantic": False, "classifier": False},
        "export": {"dir": str(tmp_path / name), "formats": ["jsonl"]},
    }
    if execution is not None:
        data["execution"] = execution
    return load_recipe(data)


def test_ray_run_gives_the_same_dataset_as_one_process(tmp_path: Path) -> None:
    backend = {"type": "fake", "options": {"responses": [REPLY], "batch_size": 2}}
    local = run_recipe(_recipe(tmp_path, "local", None, backend))
    pooled = run_recipe(_recipe(tmp_path, "ray", {"engine": "ray", "replicas": 2,
                                                  "num_cpus": 0.5}, backend))
    assert local.stats.complete and pooled.stats.complete
    assert _rows(pooled) == _rows(local)
    assert sum(len(rows) for rows in _rows(pooled).values()) == 36
    assert pooled.stats.rejected == local.stats.rejected
    assert pooled.stats.rejected["duplicate"] > 0  # the gate ran on the driver, over all


def test_killed_replica_is_replaced_and_nothing_is_lost_or_sent_twice(tmp_path: Path) -> None:
    with FaultServer(latency=0.3, items=2) as server:
        backend = {"type": "openai", "options": {
            "base_url": server.url, "api_key": "test", "model": "test-model",
            "concurrency": 2, "max_retries": 0}}
        local = run_recipe(_recipe(tmp_path, "local", None, backend))
        first_pass = Counter(key for _, key in server.arrivals)
        server.arrivals.clear()

        recipe = _recipe(tmp_path, "ray", {"engine": "ray", "replicas": 2, "num_cpus": 0.5,
                                           "max_restarts": 2}, backend)
        engine = Engine(recipe, store=Store.in_dir(recipe.output_dir))
        executor: Any = engine.backend

        async def kill_a_replica() -> int:
            while server.stats["requests"] - sum(first_pass.values()) < 6:
                await asyncio.sleep(0.05)
            pid, _ = await executor._actors[0].ready.remote()
            in_flight = server.inflight
            os.kill(pid, signal.SIGKILL)
            return int(in_flight)

        async def main() -> tuple[Any, int]:
            killer = asyncio.create_task(kill_a_replica())
            result = await engine.run()
            return result, await killer

        result, in_flight_at_kill = asyncio.run(main())
        engine.store.close()
        arrivals = Counter(key for _, key in server.arrivals)

    assert result.complete
    assert executor.stats["replica_restarts"] >= 1
    # the killed replica's calls (at most its concurrency) were re-sent once, no other
    resent = {key: n for key, n in arrivals.items() if n > 1}
    assert 1 <= len(resent) <= min(2, in_flight_at_kill)
    assert set(resent.values()) == {2}
    # every request was one the single-process run also sent: the same dataset
    assert set(arrivals) <= set(first_pass)
    rerun = run_recipe(recipe)  # resumes from the store: answers only from the cache
    assert _rows(rerun) == _rows(local)
    assert rerun.stats.cached == len(arrivals) and rerun.stats.sent == 0


def test_a_replica_that_cannot_start_reports_the_recipe_error(tmp_path: Path) -> None:
    backend = {"type": "transformers", "options": {"model": str(tmp_path / "no-such-model")}}
    recipe = _recipe(tmp_path, "bad", {"engine": "ray", "replicas": 1, "num_cpus": 0.5},
                     backend)
    with pytest.raises(textsynth.TextsynthError) as in_one_process:
        run_recipe(_recipe(tmp_path, "bad-local", None, backend))
    with pytest.raises(type(in_one_process.value)) as on_ray:
        run_recipe(recipe)
    assert str(on_ray.value) == str(in_one_process.value)


def test_more_replicas_than_the_cluster_holds_is_a_recipe_error(tmp_path: Path) -> None:
    backend = {"type": "fake", "options": {"responses": [REPLY]}}
    recipe = _recipe(tmp_path, "big", {"engine": "ray", "replicas": 3, "num_cpus": 1}, backend)
    with pytest.raises(RecipeError, match="3 replicas x 1 CPU need 3 CPU"):
        run_recipe(recipe)


def test_execution_section_is_validated() -> None:
    with pytest.raises(RecipeError, match=r"execution\.replicas"):
        load_recipe({"name": "x", "labels": ["a"], "per_label": 1, "backend": {"type": "fake"},
                     "execution": {"engine": "ray", "replicas": 0}})
    with pytest.raises(RecipeError, match=r"execution\.engine"):
        load_recipe({"name": "x", "labels": ["a"], "per_label": 1, "backend": {"type": "fake"},
                     "execution": {"engine": "dask"}})


def test_an_error_raised_inside_a_replica_is_named_in_the_message() -> None:
    from types import SimpleNamespace

    from ray.exceptions import RayTaskError

    from textsynth.errors import BackendUnavailable
    from textsynth.executors import build_backend

    recipe = load_recipe({"name": "t", "labels": {"a": "do a"}, "per_label": 1,
                          "backend": {"type": "fake"},
                          "execution": {"engine": "ray", "replicas": 1, "num_cpus": 0.5}})
    executor: Any = build_backend(recipe)

    async def raises(*_: Any) -> None:  # what the actor's call raises when the replica's
        raise RayTaskError("_Replica.generate", "Traceback (most recent call last):\n"
                           "  ...\nAssertionError", AssertionError("transport was None"),
                           pid=123, actor_repr="<_Replica object at 0x7f>")

    executor._actors = [SimpleNamespace(generate=SimpleNamespace(remote=raises))]
    with pytest.raises(BackendUnavailable) as caught:
        asyncio.run(executor._call(0, []))
    assert str(caught.value) == "Ray replica 0 failed: AssertionError: transport was None"


def test_an_interrupted_ray_run_sends_nothing_more_and_keeps_every_answer(
        tmp_path: Path, interrupted_run: Callable[..., BaseException]) -> None:
    """A replica takes more calls at once than its backend sends (the openai backend's
    concurrency, 2 here): the rest wait in the replica. The first Ctrl-C drops those
    there, so nothing more goes on the wire, and stores what is on it."""
    with FaultServer(latency=0.5, items=2) as server:
        backend = {"type": "openai", "options": {
            "base_url": server.url, "api_key": "test", "model": "test-model",
            "concurrency": 2}}
        recipe = _recipe(tmp_path, "ray", {"engine": "ray", "replicas": 2, "num_cpus": 0.5},
                         backend).with_overrides(per_label=100)
        engine = Engine(recipe, store=Store.in_dir(recipe.output_dir))
        executor: Any = engine.backend
        assert executor.max_concurrency > 2 * 2  # calls queue inside the replicas

        at_interrupt: list[int] = []
        interrupted_run(  # answered, and on the wire
            engine, lambda: server.stats["requests"] >= 8 and server.inflight >= 4,
            before=lambda: at_interrupt.append(server.stats["requests"]))
        served = server.stats["requests"]
    # nothing went on the wire after the interrupt (before, the calls queued in the
    # replicas kept going out for the whole grace period), and every answer was stored
    assert served == at_interrupt[0]
    assert engine.store.completion_count() == served
    assert executor.stats["dropped_unsent"] > 0


def test_sigterm_stops_a_ray_run_as_ctrl_c_does(tmp_path: Path) -> None:
    """ray.init puts in a SIGTERM handler that exits at once (after a native stack dump);
    the executor keeps the run's own, so SIGTERM stores the answers in flight and says how
    to resume. A real ``textsynth run`` process, with a local cluster of its own."""
    import json
    import subprocess
    import sys
    import time

    import yaml

    with FaultServer(latency=1.0, items=2) as server:
        backend = {"type": "openai", "options": {
            "base_url": server.url, "api_key": "test", "model": "test-model",
            "concurrency": 2}}
        data = _recipe(tmp_path, "cli", {"engine": "ray", "replicas": 2, "num_cpus": 0.5},
                       backend).with_overrides(per_label=100).model_dump(mode="json",
                                                                         by_alias=True)
        path = tmp_path / "recipe.yaml"
        path.write_text(yaml.safe_dump(json.loads(json.dumps(data))))
        env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_ADDRESS": "local",
               "PYTHONPATH": PACKAGE_ROOT}
        proc = subprocess.Popen([sys.executable, "-m", "textsynth", "run", str(path),
                                 "--quiet"], env=env, text=True, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while server.stats["requests"] < 8 or server.inflight < 4:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        served = server.stats["requests"]
    assert proc.returncode == 143, err[-2000:]
    assert "stopped by SIGTERM: run the same command again to resume" in err
    assert "SIGTERM received" not in err and "Traceback" not in err + out
    assert Store.in_dir(tmp_path / "cli").completion_count() == served  # none lost
