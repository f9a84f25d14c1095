"""The request window with a backend that reports its requests' state (no network)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence

from textsynth import Completion, FakeBackend, Request, load_recipe
from textsynth.backends.base import RequestEvents
from textsynth.engine import Engine
from textsynth.store import Store
from textsynth.testing import letters

_count = itertools.count()


def _unique(request: Request) -> str:
    return "\n".join(f"{i + 1}. please do thing {letters(next(_count))}" for i in range(3))



class Reporting(FakeBackend):
    """Says when a request goes on the wire; one chosen job waits for a retry forever."""

    reports_request_state = True

    def __init__(self, stuck: tuple[str, int] | None = None, queued: float = 0.0,
                 **options: object):
        super().__init__({"batch_size": 1, **options}, handler=_unique)
        self.stuck = stuck
        self.queued = queued  # seconds a request waits in the client before the wire
        self.on_wire: list[tuple[str, int]] = []

    async def generate(self, requests: Sequence[Request]) -> list[Completion]:
        raise AssertionError("the engine passes the request events: generate_reporting")

    async def generate_reporting(self, requests: Sequence[Request],
                                 on_state: RequestEvents) -> list[Completion]:
        (request,) = requests
        job = (str(request.metadata["slot"]), int(request.metadata["index"]))
        await asyncio.sleep(self.queued)  # may be cancelled here at no cost
        on_state(request, "sent")
        self.on_wire.append(job)
        if job == self.stuck:  # a 429 with a long Retry-After: nothing paid for yet
            on_state(request, "waiting")
            await asyncio.Event().wait()  # until the engine cancels it
        await asyncio.sleep(0.01)
        return await FakeBackend.generate(self, requests)


def _run(recipe_dict: dict, backend: Reporting) -> Engine:
    engine = Engine(load_recipe(recipe_dict), backend=backend, store=Store(":memory:"))
    asyncio.run(engine.run())
    return engine


def test_requests_not_needed_are_cancelled_before_they_go_on_the_wire(
        recipe_dict: dict) -> None:
    recipe_dict.update(labels={"turn_on": "Switch something on"}, per_label=9)
    recipe_dict["generation"] = {"examples_per_request": 3}
    # five jobs go out at the first guess of the yield (half of 3 rows): four calls at a
    # time, so the fifth is still in the client when the first answer shows 3 rows each
    backend = Reporting(queued=0.2, concurrency=4)
    engine = _run(recipe_dict, backend)
    result = engine.result
    assert result.complete and result.cancelled == 1
    assert len(backend.on_wire) == len(backend.requests) == result.sent == 4


def test_a_job_waiting_for_a_retry_is_replaced_while_others_are_answered(
        recipe_dict: dict) -> None:
    recipe_dict["per_label"] = 9
    recipe_dict["generation"] = {"examples_per_request": 3}
    backend = Reporting(stuck=("turn_on/en", 1), concurrency=4)
    engine = _run(recipe_dict, backend)
    result = engine.result
    assert result.complete and result.replaced == 1
    assert len(engine.store.skipped_keys()) == 1
    assert ("turn_on/en", 1) not in {(str(r.metadata["slot"]), r.metadata["index"])
                                     for r in backend.requests}  # never answered
    on = next(st for quota, st in result.quotas.items() if quota.label == "turn_on")
    assert on.jobs == 3  # the replaced job is not an attempt


class Burst(Reporting):
    """Every request is first turned away (a burst of 429s); each is retried after its own
    Retry-After, job i after 0.05 * (i + 1) seconds, so the first retries are answered
    while the later ones still wait."""

    async def generate_reporting(self, requests: Sequence[Request],
                                 on_state: RequestEvents) -> list[Completion]:
        (request,) = requests
        index = int(request.metadata["index"])
        on_state(request, "sent")
        on_state(request, "waiting")
        await asyncio.sleep(0.05 * (index + 1))
        on_state(request, "sent")
        return await FakeBackend.generate(self, requests)


def test_the_retries_of_one_burst_do_not_replace_each_other(recipe_dict: dict) -> None:
    recipe_dict.update(labels={"turn_on": "Switch something on"}, per_label=6)
    recipe_dict["generation"] = {"examples_per_request": 3}
    backend = Burst(concurrency=8)
    engine = _run(recipe_dict, backend)
    result = engine.result
    assert result.complete and result.replaced == 0  # the server turned everyone away
    assert engine.store.skipped_keys() == set()
