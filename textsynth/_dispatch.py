"""The request window: jobs rendered, sent ahead of processing, stored, handed back in order.

Each job in flight has one :class:`InFlight` record with an explicit :class:`State`.
Requests go to the backend in batches of ``batch_size``, at most ``concurrency`` calls at
a time, while the budget (less what is in flight) has room. Every answer is written to
the store (and committed) before anyone reads it.

With a backend that reports its requests' state (one request a call), two more things
keep paid work and waiting low:

* a request that is no longer needed (its label's quota will be met by the jobs in
  flight, at the yield seen so far) is cancelled while it still waits in the queue, and
  sent later only if it turns out to be needed after all (:meth:`RequestWindow.cancel_unneeded`);
* a job whose request waits for a retry (the server answered 429 or 5xx, or the
  connection dropped: nothing was paid for it) while answers to other requests keep
  arriving is replaced: recorded as skipped, so the label's next job takes its place
  and a resumed run skips it too.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from textsynth._budget import Budget
from textsynth.backends import Backend
from textsynth.backends.base import Completion, Request, Usage
from textsynth.errors import BudgetExceeded, GenerationError, StoreError
from textsynth.plan import Job, Planner, Quota
from textsynth.prompt import PromptBuilder
from textsynth.store import Store

__all__ = ["SKIPPED", "Answer", "InFlight", "RequestWindow", "State"]

# what a skipped job's future holds (it was replaced by a later job)
SKIPPED = Completion(texts=[], finish_reason="skipped")
_SKIP_REASON = "replaced while it waited for a retry"
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
    was_sent: bool = False  # went on the wire at least once


@dataclass
class Answer:
    """What processing gets for one job: its completion (or why there is none)."""

    job: Job
    outcome: Completion | GenerationError  # SKIPPED when the job was replaced
    key: str


Batch = list[InFlight]


class RequestWindow:
    """Sends jobs ahead of the processing order and hands their answers back in order."""

    def __init__(self, backend: Backend, store: Store, budget: Budget, planner: Planner,
                 prompts: PromptBuilder, batch_size: int, concurrency: int, max_attempts: int,
                 before_write: Callable[[], None], on_stored: Callable[[], None]):
        self.backend = backend
        self.store = store
        self.budget = budget
        self.planner = planner
        self.prompts = prompts
        self.batch_size = batch_size
        self.size = batch_size * (concurrency + 1)  # jobs in flight at most
        self.max_attempts = max_attempts
        self._before_write = before_write  # commits the acceptor's rows: one connection
        self._on_stored = on_stored
        self.quotas = planner.quotas
        self._sem = asyncio.Semaphore(concurrency)
        self._records: dict[tuple[Quota, int], InFlight] = {}
        self._by_request: dict[int, InFlight] = {}  # calls of their own, by id(request)
        self._waiting: dict[tuple[Quota, int], InFlight] = {}  # in the order they parked
        self._queue: Batch = []
        self._pending: deque[Batch] = deque()
        self._unstored: list[tuple[Batch, list[Completion], Usage]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.inflight: Counter[Quota] = Counter()
        self.dispatched: dict[Quota, int] = dict.fromkeys(self.quotas, 0)
        self.skipped: Counter[Quota] = Counter()  # per quota: do not count as attempts
        self._hungry: set[Quota] = set(self.quotas)  # quotas that may need more requests
        self.skip_keys: set[str] = set()  # jobs skipped in an earlier run
        self.failure: StoreError | None = None  # the store failed: the run ends
        self.tracking = False  # the backend reports its requests' state
        self.stopping = False  # Ctrl-C: nothing more goes on the wire
        self.sent = self.cached = self.replaced = self.cancelled = 0
        self._arrived = 0

    def allowed(self, quota: Quota) -> int:
        """Rounds a quota may use: skipped jobs do not count as attempts."""
        return self.max_attempts + self.skipped[quota]

    # -- dispatching -------------------------------------------------------------------
    def fill(self, round_: int, lag: int, wants: Callable[[Quota, int], bool]) -> None:
        """Send jobs ahead of the processing order while the window has room.

        Round by round, quota by quota, from the lowest round a quota still needs, up
        to ``lag`` rounds ahead ("avoid" lists need rounds up to index - lag processed).
        A quota that ``wants`` no job now wants none until one of its jobs is processed,
        so it leaves the hungry set until then (this keeps the scan short).
        """
        inflight = sum(self.inflight.values())
        hungry = self._hungry
        if inflight >= self.size or not hungry:
            self.flush()
            return
        rnd = max(round_, min(self.dispatched[q] for q in hungry))
        while inflight < self.size and rnd <= round_ + lag and hungry:
            for quota in self.quotas:
                if inflight >= self.size:
                    break
                if quota not in hungry or rnd < self.dispatched[quota] or \
                        (quota, rnd) in self._records:
                    continue
                if not wants(quota, rnd):
                    hungry.discard(quota)
                    continue
                self.dispatch(self.planner.job(quota, rnd))
                inflight += 1
            rnd += 1
        self.flush()

    def dispatch(self, job: Job) -> None:
        request = self.prompts.request(job)
        key = request.key(self.backend.name, self.backend.model_name)
        future: asyncio.Future[Completion] = asyncio.get_running_loop().create_future()
        record = InFlight(job, request, key, future)
        self._records[(job.quota, job.index)] = record
        self.inflight[job.quota] += 1
        self.dispatched[job.quota] = max(self.dispatched[job.quota], job.index + 1)
        if self.failure is not None:  # the store failed: nothing more is sent
            self._answer(record, self.failure)
        elif key in self.skip_keys:
            self.skipped[job.quota] += 1
            self._answer(record, SKIPPED)
        elif (cached := self.store.get_completion(key)) is not None:
            self.cached += 1
            self.budget.spend(cached.usage)
            self._answer(record, cached)
        else:
            self._queue.append(record)
            if len(self._queue) >= self.batch_size:
                self.flush()

    @staticmethod
    def _answer(record: InFlight, outcome: Completion | BaseException) -> None:
        if record.future.done():
            return
        record.state = State.ANSWERED
        if isinstance(outcome, BaseException):
            record.future.set_exception(outcome)
        else:
            record.future.set_result(outcome)

    def flush(self) -> None:
        if self._queue:
            self._pending.append(self._queue)
            self._queue = []
        self._start_pending()

    def _start_pending(self) -> None:
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
                            self._answer(record, stopped)
                    self._pending.clear()
                    return
            self._pending.popleft()
            budget.reserve(need)
            task = asyncio.create_task(self._send(batch, need))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            for record in batch:
                record.state = State.STARTED
            if len(batch) == 1:  # a call of its own: it may be replaced while it waits
                record = batch[0]
                record.task, record.reserved = task, need
                self._by_request[id(record.request)] = record

    async def _send(self, batch: Batch, need: Usage) -> None:
        try:
            async with self._sem:
                if self.stopping:  # Ctrl-C: nothing more goes on the wire
                    return
                completions = await self.backend.generate([r.request for r in batch])
        except Exception as exc:  # handed to whoever waits on these jobs
            self._forget(batch)
            for record in batch:
                self._answer(record, exc)
            self.budget.release(need)
            self._start_pending()
            return
        self._forget(batch)
        self._unstored.append((batch, completions, need))
        if len(self._unstored) == 1:  # completions that arrive together share one commit
            asyncio.get_running_loop().call_soon(self.store_completions)

    def _forget(self, batch: Batch) -> None:
        """The call of a batch of one ended: it can no longer be cancelled or replaced."""
        if len(batch) == 1:
            record = batch[0]
            record.task = None
            self._by_request.pop(id(record.request), None)
            self._waiting.pop((record.job.quota, record.job.index), None)
            record.was_sent = False

    # -- storing answers -----------------------------------------------------------------
    def store_completions(self) -> None:
        """Write (and commit) the completions that arrived, then hand them on."""
        done, self._unstored = self._unstored, []
        if not done:
            return
        try:  # a callback of the event loop: an error raised here would be lost
            self._before_write()
            with self.store.transaction():
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
                self._arrived += 1
                self.budget.spend(completion.usage)
                self._answer(record, completion)
        if self._waiting:
            self._replace_waiting()
        self._start_pending()
        self._on_stored()

    def fail(self, exc: StoreError) -> None:
        """The store cannot be written: nothing more is sent, and whoever waits for an
        answer gets the error, so the run ends with it (the failed write was rolled back)."""
        self.failure = self.failure or exc
        self._pending.clear()
        self._queue.clear()
        for record in self._records.values():
            self._answer(record, exc)

    # -- processing order -------------------------------------------------------------
    async def take(self, quota: Quota, index: int) -> Answer:
        """The answer to job ``index`` of ``quota`` (sent now if it was not yet)."""
        jk = (quota, index)
        if jk not in self._records:
            self.dispatch(self.planner.job(quota, index))
        record = self._records[jk]  # kept while awaited: it may be replaced
        if self._queue and not record.future.done():
            self.flush()
        if not record.future.done():
            self._before_write()  # before others run: they write to the store too
        try:
            outcome: Completion | GenerationError = await record.future
        except GenerationError as exc:
            outcome = exc
        finally:
            del self._records[jk]
            if record.state is not State.REPLACED:
                self.inflight[quota] -= 1
            self._hungry.add(quota)
        return Answer(record.job, outcome, record.key)

    # -- requests the run no longer needs ----------------------------------------------
    def on_request_state(self, request: Request, state: str) -> None:
        """The backend's report that a request went on the wire, or waits for a retry."""
        record = self._by_request.get(id(request))
        if record is None:
            return
        jk = (record.job.quota, record.job.index)
        if state == "waiting":
            record.state, record.waiting_since = State.WAITING, self._arrived
            self._waiting[jk] = record
        else:
            record.state, record.was_sent = State.SENT, True
            self._waiting.pop(jk, None)

    def cancel_unneeded(self, quota: Quota, round_: int, need: int) -> None:
        """Cancel the quota's newest requests not sent yet beyond the ``need`` jobs it
        still needs. They become undispatched again: if they turn out to be needed,
        :meth:`fill` sends them, so processing order is kept."""
        excess = self.inflight[quota] - need
        index = top = self.dispatched[quota] - 1
        while excess > 0 and index > round_:
            record = self._records.get((quota, index))
            if record is None or record.task is None or record.was_sent:
                break  # not started, or already on the wire once
            record.task.cancel()
            self.budget.release(record.reserved)
            del self._by_request[id(record.request)], self._records[(quota, index)]
            self._waiting.pop((quota, index), None)
            self.inflight[quota] -= 1
            self.dispatched[quota] = index
            self.cancelled += 1
            excess -= 1
            index -= 1
        if self._pending and index < top:
            self._start_pending()  # budget held by the cancelled requests is free again

    def _replace_waiting(self) -> None:
        """Skip the jobs that wait for a retry while answers to others keep arriving
        (the server is not turning everyone away), so that later jobs of the same
        labels are sent now. Nothing is in flight for a waiting job, so cancelling it
        loses nothing paid for; it is never sent again."""
        for jk, record in list(self._waiting.items()):
            quota = jk[0]
            if self._arrived <= record.waiting_since or self.skipped[quota] >= self.max_attempts:
                continue  # nothing answered since; or the label fails every time: retry it
            assert record.task is not None
            del self._waiting[jk], self._by_request[id(record.request)]
            record.task.cancel()
            record.task = None
            self.budget.release(record.reserved)
            self.store.skip_job(record.key, str(quota), jk[1], _SKIP_REASON)
            self.replaced += 1
            self._answer(record, SKIPPED)
            record.state = State.REPLACED
            self.skipped[quota] += 1
            self.inflight[quota] -= 1  # so that fill() sends another job now
            self._hungry.add(quota)

    # -- the end of a run -----------------------------------------------------------------
    def _cancel_waiting(self) -> None:
        for record in list(self._waiting.values()):  # nothing paid, nothing lost
            if record.task is not None:
                record.task.cancel()

    async def stop(self, grace: float) -> None:
        """After Ctrl-C: send nothing more, give the answers in flight ``grace`` seconds."""
        self.stopping = True
        self._pending.clear()
        self.backend.cancel_queued()
        self._cancel_waiting()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=grace)
        self.abort()

    def abort(self) -> None:
        """Cancel every call in flight (the run failed)."""
        for task in list(self._tasks):
            task.cancel()

    async def close(self) -> None:
        """Requests sent ahead and still in flight are paid for: wait and store them
        (after an error they were cancelled already); those not sent yet are dropped."""
        self._pending.clear()  # waiting for budget: never sent
        self.backend.cancel_queued()
        self._cancel_waiting()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self.store_completions()
        for record in self._records.values():
            future = record.future
            if not future.done():
                future.cancel()
            elif not future.cancelled():
                future.exception()  # retrieved: no "never retrieved" warnings
