"""Sending: jobs in flight, batched to the backend while the budget has room, and every
answer written to the store (and committed) before anyone reads it.

Answers that arrive close together share one commit: the first one of a burst is stored
on the event loop's next turn, or :attr:`Sender.store_every` seconds (50 ms) after the
previous commit if that was more recent, together with every answer that arrived
meanwhile (and the acceptor's rows written since, in the same transaction); once
:attr:`Sender.store_max` answers (64) wait, they are stored at once. A crash in between
(the process killed: Ctrl-C and errors store every answer first) loses those answers,
none of which was handed on: no row was made from them, and the resumed run asks for
them again; what was committed is never asked for again. When an answer takes 50 ms
or more, as an LLM's does, that is no more than the requests in flight, which such a
crash loses too (up to ``concurrency``).

One commit (and one batch for :meth:`~textsynth.accept.Acceptor.prime`) for dozens of
answers instead of a few: the driver spends 2-5% less CPU a request than when it
committed every 5 ms at 1,000 answers a second, and 16-21% less with 4-16 requests in
flight (``benchmarks/driver.py``; README, "ninth round").
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from textsynth._budget import Budget
from textsynth._json import valid_text
from textsynth.backends import Backend
from textsynth.backends.base import Completion, Request, RequestEvents, Usage
from textsynth.errors import BudgetExceeded, StoreError
from textsynth.plan import Job
from textsynth.store import Store

__all__ = ["SKIPPED", "InFlight", "Listener", "Sender", "State"]

# what a skipped job's future holds (it was replaced by a later job)
SKIPPED = Completion(texts=[], finish_reason="skipped")
_BUDGET_SPENT = ("the run's budget is spent; raise budget.max_tokens or budget.max_cost "
                 "and run again to continue")


class State(Enum):
    QUEUED = "queued"  # rendered; its batch waits for more requests or for budget
    STARTED = "started"  # its batch was handed to the backend, not on the wire yet
    SENT = "sent"  # on the wire (no longer cancelled: it may be paid for)
    WAITING = "waiting"  # waits for a retry: nothing paid for it, so it may be replaced
    ANSWERED = "answered"  # its future holds the answer, an error, or SKIPPED
    REPLACED = "replaced"  # given up while it waited; another job took its place


@dataclass(eq=False)
class InFlight:
    """One job between rendering and processing."""

    job: Job
    request: Request
    key: str  # the request's content hash: its completion's key in the store
    future: asyncio.Future[Completion]
    state: State = State.QUEUED
    task: asyncio.Task[None] | None = None  # the backend call of its own (a batch of one)
    reserved: Usage = field(default_factory=Usage)  # budget held by that call
    waiting_since: int = 0  # answers arrived when it started waiting for a retry
    throttled: bool = False  # waited for a retry at least once
    was_sent: bool = False  # went on the wire at least once
    from_store: bool = False  # answered from the store

    def answer(self, outcome: Completion | BaseException) -> None:
        """Hand the job its completion, or the error that ends it (once)."""
        if self.future.done():
            return
        self.state = State.ANSWERED
        if isinstance(outcome, BaseException):
            self.future.set_exception(outcome)
        else:
            self.future.set_result(outcome)


Batch = list[InFlight]


class Listener(Protocol):
    """What the sender tells the request window."""

    def call_ended(self, batch: Batch) -> None:
        """A batch's call ended (answered or failed): it can no longer be cancelled."""

    def arrived(self) -> None:
        """Answers were stored and handed on (more calls may start after this)."""

    def failed(self, exc: StoreError) -> None:
        """The store cannot be written: the run ends with ``exc``."""


class Sender:
    """Batches of ``batch_size`` requests, at most ``concurrency`` calls at a time, started
    while the budget (less what is in flight) has room; answers stored before handed on."""

    #: seconds between commits of arriving answers at most (a burst shares one commit);
    #: a hard crash (the process killed) loses the answers of that long at most
    store_every: float = 0.05
    #: answers waiting for their commit at most: one more is committed with them at once
    store_max: int = 64

    def __init__(self, backend: Backend, store: Store, budget: Budget, batch_size: int,
                 concurrency: int, listener: Listener):
        self.backend = backend
        self.store = store
        self.budget = budget
        self.batch_size = batch_size
        self._listener = listener
        self._stored_at = -math.inf  # loop time of the last commit of answers
        self._sem = asyncio.Semaphore(concurrency)
        self.queue: Batch = []
        self._pending: deque[Batch] = deque()
        self._unstored: list[tuple[Batch, list[Completion], Usage]] = []
        self._unstored_count = 0  # their completions
        self._store_timer: asyncio.TimerHandle | asyncio.Handle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.failure: StoreError | None = None  # the store failed: the run ends
        self.stopping = False  # Ctrl-C: nothing more goes on the wire
        self.sent = 0
        # answers stored so far to requests that never waited for a retry: a clock for the
        # jobs waiting for one (a retried request of the same burst does not count)
        self.arrived = 0
        # given to a backend that reports where each request stands (one request a call)
        self.on_state: RequestEvents | None = None
        # told each burst of answers once they are stored and handed on (work that can be
        # done for many answers at once, ahead of processing: see Acceptor.prime)
        self.on_answers: Callable[[list[Completion]], None] | None = None

    def add(self, record: InFlight) -> None:
        self.queue.append(record)
        if len(self.queue) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        if self.queue:
            self._pending.append(self.queue)
            self.queue = []
        self.start_pending()

    def start_pending(self) -> None:
        """Send queued batches while the budget (less what is in flight) has room."""
        budget = self.budget
        while self._pending:
            batch = self._pending[0]
            need = Usage()
            if budget.limited:
                for record in batch:
                    need = need + budget.estimate(record.request)
                if not budget.fits():
                    if budget.reserved.total_tokens or self._unstored:
                        return  # what is in flight may use less than reserved: wait for it
                    stopped = BudgetExceeded(_BUDGET_SPENT)
                    for pending in self._pending:
                        for record in pending:
                            record.answer(stopped)
                    self._pending.clear()
                    return
            self._pending.popleft()
            budget.reserve(need)
            task = asyncio.create_task(self._send(batch, need))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            for record in batch:
                record.state = State.STARTED
            if len(batch) == 1:  # a call of its own: it may be cancelled while it waits
                batch[0].task, batch[0].reserved = task, need

    @property
    def has_pending(self) -> bool:
        return bool(self._pending)

    async def _send(self, batch: Batch, need: Usage) -> None:
        try:
            async with self._sem:
                if self.stopping:  # Ctrl-C: nothing more goes on the wire
                    return
                requests = [r.request for r in batch]
                completions = await (self.backend.generate(requests) if self.on_state is None
                                     else self.backend.generate_reporting(requests,
                                                                          self.on_state))
        except Exception as exc:  # handed to whoever waits on these jobs
            self._listener.call_ended(batch)
            for record in batch:
                record.answer(exc)
            self.budget.release(need)
            self.start_pending()
            return
        self._listener.call_ended(batch)
        for completion in completions:  # half an emoji from a server cannot be stored
            completion.texts = valid_text(completion.texts)
            completion.model = valid_text(completion.model)
        self._unstored.append((batch, completions, need))
        self._unstored_count += len(completions)
        loop = asyncio.get_running_loop()
        if self._unstored_count >= self.store_max:  # enough to wait for: at once
            wait = 0.0
        elif len(self._unstored) == 1:  # completions that arrive together share one commit
            wait = self._stored_at + self.store_every - loop.time()
        else:  # their commit is scheduled already
            return
        if self._store_timer is not None:
            self._store_timer.cancel()
        self._store_timer = (loop.call_later(wait, self.store_completions) if wait > 0
                             else loop.call_soon(self.store_completions))

    def store_completions(self) -> None:
        """Write (and commit) the completions that arrived, then hand them on."""
        done, self._unstored = self._unstored, []
        self._unstored_count = 0
        if self._store_timer is not None:
            self._store_timer.cancel()
            self._store_timer = None
        if not done:
            return
        self._stored_at = asyncio.get_running_loop().time()
        try:  # a callback of the event loop: an error raised here would be lost
            with self.store.transaction():  # joins the acceptor's rows: one commit
                for batch, completions, _ in done:
                    for record, completion in zip(batch, completions, strict=True):
                        job = record.job
                        self.store.put_completion(record.key, str(job.quota), job.index,
                                                  record.request, completion)
        except StoreError as exc:
            self.fail(exc)
            return
        for batch, completions, need in done:
            self.budget.release(need)
            for record, completion in zip(batch, completions, strict=True):
                self.sent += 1
                self.arrived += not record.throttled
                self.budget.spend(completion.usage)
                record.answer(completion)
        self._listener.arrived()
        if self.on_answers is not None:  # after: whatever it does, the answers are handed on
            self.on_answers([c for _, completions, _ in done for c in completions])

    def fail(self, exc: StoreError) -> None:
        """The store cannot be written: nothing more is sent, and whoever waits for an
        answer gets the error, so the run ends with it (the failed write was rolled back)."""
        self.failure = self.failure or exc
        self._pending.clear()
        self.queue.clear()
        self._listener.failed(self.failure)

    async def stop(self, grace: float) -> None:
        """After Ctrl-C: send nothing more, give the answers in flight ``grace`` seconds."""
        self.stopping = True
        self._pending.clear()
        self.backend.cancel_queued()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=grace)
        if self._tasks and self.backend.calls_run_to_the_end:
            # the batch runs on in its thread whatever is done here, and the process waits
            # for it before it exits: keep its answers rather than drop them
            await asyncio.wait(list(self._tasks))
        self.abort()

    def abort(self) -> None:
        """Cancel every call in flight (the run failed)."""
        for task in list(self._tasks):
            task.cancel()

    async def close(self) -> None:
        """Calls in flight are paid for: wait for them and store their answers; batches
        not started yet (waiting for budget) are dropped."""
        self._pending.clear()
        self.backend.cancel_queued()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self.store_completions()
