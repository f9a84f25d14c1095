"""The sender: batches within the budget, every answer stored before it is handed on."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from textsynth._budget import Budget
from textsynth._sender import Batch, InFlight, Sender, State
from textsynth.backends.base import Completion, Request, Usage
from textsynth.backends.fake import FakeBackend
from textsynth.errors import BackendUnavailable, BudgetExceeded, StoreError
from textsynth.plan import Job, Quota
from textsynth.recipe import BudgetSpec
from textsynth.store import Store

QUOTA = Quota("turn_on", "en")


class Events:
    """The request window's side: what the sender told it."""

    def __init__(self) -> None:
        self.sender: Sender | None = None
        self.ended: list[int] = []
        self.arrivals = 0
        self.failures: list[StoreError] = []

    def call_ended(self, batch: Batch) -> None:
        self.ended.append(len(batch))

    def arrived(self) -> None:
        self.arrivals += 1
        if self.sender is not None:  # as the window does: room freed, more may start
            self.sender.start_pending()

    def failed(self, exc: StoreError) -> None:
        self.failures.append(exc)


def record(index: int, words: int = 4) -> InFlight:
    request = Request(({"role": "user", "content": " ".join(["word"] * words)},),
                      max_tokens=10, seed=index)
    future: asyncio.Future[Completion] = asyncio.get_running_loop().create_future()
    return InFlight(Job(QUOTA, index, index), request, f"key{index}", future)


async def outcomes(records: Sequence[InFlight]) -> list[Any]:
    return list(await asyncio.gather(*(r.future for r in records), return_exceptions=True))


def sender(backend: Any, store: Store, budget: Budget | None = None, batch_size: int = 1,
           concurrency: int = 1, events: Events | None = None) -> Sender:
    events = events or Events()
    events.sender = Sender(backend, store, budget or Budget(BudgetSpec()), batch_size,
                           concurrency, events)
    return events.sender


def test_answers_are_stored_before_they_are_handed_on() -> None:
    store = Store(":memory:")
    seen: list[int] = []

    async def go() -> list[Any]:
        s = sender(FakeBackend(responses=['["hello there"]'], batch_size=2), store, batch_size=2)
        records = [record(i) for i in range(3)]
        for r in records:
            r.future.add_done_callback(lambda _: seen.append(store.completion_count()))
            s.add(r)
        s.flush()  # the third one alone
        got = await outcomes(records)
        assert s.sent == 3 and all(r.state is State.ANSWERED for r in records)
        return got

    got = asyncio.run(go())
    assert [c.texts for c in got] == [['["hello there"]']] * 3
    assert min(seen) >= 2 and store.completion_count() == 3  # stored first, then answered
    assert store.get_completion("key0") is not None


def test_the_budget_stops_sending_and_the_rest_is_told_why() -> None:
    store = Store(":memory:")
    # an answer uses 5 tokens (4 prompt words, 1 answer word); a request reserves 17
    budget = Budget(BudgetSpec(max_tokens=30))
    fake = FakeBackend(responses=["a"])

    async def go() -> tuple[list[Any], Sender]:
        s = sender(fake, store, budget)
        records = [record(i) for i in range(20)]
        for r in records:
            s.add(r)
        return await outcomes(records), s

    got, s = asyncio.run(go())
    answered = [g for g in got if isinstance(g, Completion)]
    stopped = [g for g in got if isinstance(g, BudgetExceeded)]
    assert len(answered) + len(stopped) == 20 and stopped  # nothing left waiting
    assert "budget.max_tokens" in str(stopped[0])
    assert budget.used.total_tokens >= 30  # sent until the budget was reached ...
    # ... and by at most one request past it (each is reserved at its worst case)
    assert budget.used.total_tokens - answered[-1].usage.total_tokens < 30
    assert budget.reserved == Usage() and s.sent == len(answered) == len(fake.requests)


def test_a_failed_call_hands_its_error_to_its_jobs_and_frees_the_budget() -> None:
    class Down(FakeBackend):
        async def generate(self, requests: Sequence[Request]) -> list[Completion]:
            raise BackendUnavailable("cannot connect")

    store = Store(":memory:")
    budget = Budget(BudgetSpec(max_tokens=1000))
    events = Events()

    async def go() -> list[Any]:
        s = sender(Down(), store, budget, batch_size=2, events=events)
        records = [record(0), record(1)]
        for r in records:
            s.add(r)
        return await outcomes(records)

    got = asyncio.run(go())
    assert all(isinstance(g, BackendUnavailable) for g in got)
    assert budget.reserved == Usage() and store.completion_count() == 0
    assert events.ended == [2] and events.arrivals == 0


def test_a_store_that_cannot_be_written_ends_the_run_with_its_error() -> None:
    class Full(Store):
        def put_completion(self, *args: Any) -> None:
            raise StoreError("cannot write the run store: the disk is full")

    events = Events()

    async def go() -> tuple[list[Any], Sender]:
        s = sender(FakeBackend(responses=["a"]), Full(":memory:"), events=events)
        first = record(0)
        s.add(first)
        await asyncio.sleep(0)  # the call starts
        while not events.failures:
            await asyncio.sleep(0)
        return [first.future.done()], s

    done, s = asyncio.run(go())
    assert len(events.failures) == 1 and "disk is full" in str(s.failure)
    assert done == [False] and s.sent == 0  # never handed on as if it were stored


@pytest.mark.parametrize("batch_size", [1, 3])
def test_batches_are_the_backend_batch_size(batch_size: int) -> None:
    fake = FakeBackend(responses=["a"], batch_size=batch_size)

    async def go() -> None:
        s = sender(fake, Store(":memory:"), batch_size=batch_size)
        records = [record(i) for i in range(6)]
        for r in records:
            s.add(r)
        await outcomes(records)

    asyncio.run(go())
    assert fake.calls == 6 // batch_size and len(fake.requests) == 6


class _Staggered(FakeBackend):
    """Answers request ``seed`` after ``seed`` half-milliseconds: one arrival a loop turn."""

    async def generate(self, requests: Sequence[Request]) -> list[Completion]:
        (request,) = requests
        await asyncio.sleep(0.0005 * request.seed)
        return await super().generate(requests)


def test_answers_arriving_close_together_share_one_commit() -> None:
    """40 answers that arrive one by one within ~20 ms: the first of a burst is committed
    at once, the rest of it at most every ``store_every`` seconds (with every answer that
    arrived meanwhile), and each is still committed before it is handed on."""

    store = Store(":memory:")
    commits: list[int] = []
    store._db.set_trace_callback(lambda sql: commits.append(1) if sql == "COMMIT" else None)
    handed: list[bool] = []

    async def go() -> None:
        s = sender(_Staggered(responses=["a"]), store, concurrency=40)
        records = [record(i) for i in range(40)]
        for r in records:
            r.future.add_done_callback(
                lambda _, key=r.key: handed.append(store.get_completion(key) is not None
                                                   and not store.in_transaction))
            s.add(r)
        await outcomes(records)

    asyncio.run(go())
    assert store.completion_count() == 40 and handed == [True] * 40
    # ~20 ms of arrivals at one commit per 50 ms at most: the first answer at once, the
    # other 39 together (it was one commit per arrival, and a second for the acceptor's
    # rows)
    assert 1 <= len(commits) <= 3, len(commits)


def test_answers_waiting_for_their_commit_are_stored_once_store_max_wait() -> None:
    """However long ``store_every`` is, no more than ``store_max`` answers wait: the one
    that makes them that many has them committed (and handed on) at once; the last few
    wait for the timer, or for close(), which stores every answer."""

    store = Store(":memory:")
    commits: list[int] = []
    store._db.set_trace_callback(lambda sql: commits.append(1) if sql == "COMMIT" else None)

    async def go() -> tuple[int, int]:
        s = sender(_Staggered(responses=["a"]), store, concurrency=41)
        s.store_every, s.store_max = 30.0, 10
        records = [record(i) for i in range(41)]
        for r in records:
            s.add(r)
        done, _ = await asyncio.wait([r.future for r in records], timeout=10)
        early = len(done)
        await s.close()  # the rest: stored now, not 30 s later
        await asyncio.wait_for(outcomes(records), 10)
        return early, store.completion_count()

    early, stored = asyncio.run(go())
    assert stored == 41
    # the first answer at once, then every ten: at most ten waited for the 30 s timer
    assert early >= 41 - 10, early
    assert len(commits) >= 4, len(commits)


def test_an_answer_is_committed_with_the_rows_written_before_it() -> None:
    """The acceptor's open transaction (rows of answers handed on earlier) is joined by
    the next answers' write: one commit for both; a failed write rolls back both."""
    store = Store(":memory:")
    tx = store.transaction()  # what the acceptor holds open while it writes rows
    store.add_reject("turn_on", "en", "a row", "form")

    async def go() -> None:
        s = sender(FakeBackend(responses=["a"]), store)
        r = record(0)
        s.add(r)
        await asyncio.wait_for(outcomes([r]), 10)

    asyncio.run(go())
    assert not store.in_transaction  # one commit covered the row and the answer
    assert store.completion_count() == 1 and store.reject_counts() == {"form": 1}
    tx.commit()  # the acceptor's later flush: nothing left to commit, no error
