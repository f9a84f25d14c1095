"""The request window: jobs rendered, sent ahead of processing, handed back in order.

Each job in flight has one :class:`~textsynth._sender.InFlight` record with an explicit
:class:`~textsynth._sender.State`; :class:`~textsynth._sender.Sender` batches them to the
backend within the budget and stores every answer before anyone reads it.

With a backend that reports its requests' state (one request a call), two more things
keep paid work and waiting low:

* a request that is no longer needed (its label's quota will be met by the jobs in
  flight, at the yield seen so far) is cancelled while it still waits in the queue, and
  sent later only if it turns out to be needed after all (:meth:`RequestWindow.cancel_unneeded`);
* a job whose request waits for a retry (the server answered 429 or 5xx, or the
  connection dropped: nothing was paid for it) while answers to other requests keep
  arriving (requests the server took at the first try: the retries of one burst of 429s
  do not count) is replaced: recorded as skipped, so the label's next job takes its place
  and a resumed run skips it too.
"""

from __future__ import annotations

import asyncio
import heapq
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from textsynth._budget import Budget
from textsynth._sender import SKIPPED, Batch, InFlight, Sender, State
from textsynth.backends import Backend
from textsynth.backends.base import Completion, Request
from textsynth.errors import GenerationError, StoreError
from textsynth.jobs import JobSource
from textsynth.plan import Job, Quota
from textsynth.store import Store

__all__ = ["SKIPPED", "Answer", "InFlight", "RequestWindow", "State"]

_SKIP_REASON = "replaced while it waited for a retry"


@dataclass
class Answer:
    """What processing gets for one job: its completion (or why there is none)."""

    job: Job
    outcome: Completion | GenerationError  # SKIPPED when the job was replaced
    key: str


class RequestWindow:
    """Sends jobs ahead of the processing order and hands their answers back in order."""

    def __init__(self, backend: Backend, store: Store, budget: Budget, jobs: JobSource,
                 batch_size: int, concurrency: int, max_attempts: int,
                 on_stored: Callable[[], None]):
        self.backend = backend
        self.store = store
        self.budget = budget
        self.jobs = jobs
        self.batch_size = batch_size
        self.size = batch_size * (concurrency + 1)  # jobs in flight at most
        self.max_attempts = max_attempts
        self.sender = Sender(backend, store, budget, batch_size, concurrency, self)
        self._on_stored = on_stored
        self.quotas = jobs.quotas
        self._records: dict[tuple[Quota, int], InFlight] = {}
        self._by_request: dict[int, InFlight] = {}  # jobs sent, by id(request)
        self._waiting: dict[tuple[Quota, int], InFlight] = {}  # in the order they parked
        self.inflight: Counter[Quota] = Counter()
        self.dispatched: dict[Quota, int] = dict.fromkeys(self.quotas, 0)
        self.skipped: Counter[Quota] = Counter()  # per quota: do not count as attempts
        # quotas that may need more requests, in a heap by (next round, quota order): fill()
        # visits them without scanning every quota (translate has one per source row)
        self._index = {quota: i for i, quota in enumerate(self.quotas)}
        self._hungry: list[tuple[int, int]] = [(0, i) for i in range(len(self.quotas))]
        self._queued: dict[int, int] = dict.fromkeys(range(len(self.quotas)), 0)
        self._inflight_total = 0
        self.skip_keys: set[str] = set()  # jobs skipped in an earlier run
        # per quota: jobs answered from the store and not processed yet, and the jobs the
        # store did not have that wait for them (see dispatch)
        self._replaying: Counter[Quota] = Counter()
        self._held: dict[Quota, list[InFlight]] = {}
        self.tracking = False  # the backend reports its requests' state
        self.cached = self.replaced = self.cancelled = 0

    @property
    def sent(self) -> int:
        return self.sender.sent

    @property
    def failure(self) -> StoreError | None:
        return self.sender.failure

    def record_failure(self, exc: StoreError) -> None:
        self.sender.failure = self.sender.failure or exc

    def allowed(self, quota: Quota) -> int:
        """Rounds a quota may use: skipped jobs do not count as attempts."""
        return self.max_attempts + self.skipped[quota]

    # -- dispatching -------------------------------------------------------------------
    def fill(self, round_: int, lag: int, wants: Callable[[Quota, int], bool]) -> None:
        """Send jobs ahead of the processing order while the window has room.

        Round by round, quota by quota, from the lowest round a quota still needs, up
        to ``lag`` rounds ahead ("avoid" lists need rounds up to index - lag processed).
        A quota that ``wants`` no job now wants none until one of its jobs is processed,
        so it leaves the hungry heap until then (this keeps the visits few).
        """
        hungry, queued = self._hungry, self._queued
        while hungry and self._inflight_total < self.size:
            rnd, i = heapq.heappop(hungry)
            if queued.get(i) != rnd:
                continue  # stale: the quota was queued again, at an earlier round
            quota = self.quotas[i]
            first = max(self.dispatched[quota], round_)  # rounds before were sent or done
            if first > rnd or (quota, rnd) in self._records:
                self._queue(i, max(first, rnd + 1))
            elif rnd > round_ + lag:
                heapq.heappush(hungry, (rnd, i))
                break
            elif not wants(quota, rnd):
                del queued[i]
            else:
                self.dispatch(self.jobs.job(quota, rnd))
                self._queue(i, rnd + 1)
        self.flush()

    def _queue(self, i: int, rnd: int) -> None:
        self._queued[i] = rnd
        heapq.heappush(self._hungry, (rnd, i))

    def _hunger(self, quota: Quota) -> None:
        """The quota may need more requests again: queue it at the next round it may use."""
        i, rnd = self._index[quota], self.dispatched[quota]
        if rnd < self._queued.get(i, rnd + 1):
            self._queue(i, rnd)

    def reopen(self, quota: Quota, round_: int) -> None:
        """A full quota is short again (rows withdrawn): it takes jobs again from
        ``round_`` on. Its jobs sent ahead for earlier rounds are never processed now: they
        no longer count as in flight (what arrives of them is still stored)."""
        for jk, record in list(self._records.items()):
            if jk[0] == quota and jk[1] < round_:
                del self._records[jk]
                self._waiting.pop(jk, None)
                self._count(quota, -1)
                record.future.add_done_callback(_retrieve)
        self._hunger(quota)

    def _count(self, quota: Quota, change: int) -> None:
        self.inflight[quota] += change
        self._inflight_total += change

    def dispatch(self, job: Job) -> None:
        request = self.jobs.request(job)
        key = request.key(self.backend.name, self.backend.model_name)
        future: asyncio.Future[Completion] = asyncio.get_running_loop().create_future()
        record = InFlight(job, request, key, future)
        self._records[(job.quota, job.index)] = record
        self._count(job.quota, 1)
        self.dispatched[job.quota] = max(self.dispatched[job.quota], job.index + 1)
        if self.failure is not None:  # the store failed: nothing more is sent
            record.answer(self.failure)
        elif key in self.skip_keys:
            self.skipped[job.quota] += 1
            record.answer(SKIPPED)
        elif (cached := self.store.get_completion(key)) is not None:
            self.cached += 1
            self.budget.spend(cached.usage)
            record.from_store = True
            self._replaying[job.quota] += 1
            record.answer(cached)
        elif self._replaying[job.quota]:
            # stored answers of this quota are not processed yet: they may fill it, as they
            # did in the run that stored them (whose requests sent ahead were cancelled
            # unsent), so this request waits for them instead of going out at once (a
            # finished run run again sent a few such requests for nothing)
            self._held.setdefault(job.quota, []).append(record)
        else:
            self._send(record)

    def _send(self, record: InFlight) -> None:
        self._by_request[id(record.request)] = record  # while its record lives
        self.sender.add(record)

    def _release_held(self, quota: Quota) -> None:
        """The quota's stored answers are processed: the jobs that waited for them are
        undispatched, so :meth:`fill` sends those still wanted (the next ``wants`` sees
        what the stored answers gave)."""
        held = self._held.pop(quota, [])
        for record in held:
            del self._records[(quota, record.job.index)]
            self._count(quota, -1)
            record.future.cancel()
        if held:
            first = min(record.job.index for record in held)
            self.dispatched[quota] = first
            i = self._index[quota]
            if first < self._queued.get(i, first + 1):
                self._queue(i, first)

    def flush(self) -> None:
        self.sender.flush()

    # -- what the sender reports ------------------------------------------------------
    def call_ended(self, batch: Batch) -> None:
        """A call of its own ended: its job can no longer be cancelled or replaced."""
        if len(batch) == 1:
            record = batch[0]
            record.task = None
            self._by_request.pop(id(record.request), None)
            self._waiting.pop((record.job.quota, record.job.index), None)
            record.was_sent = False

    def arrived(self) -> None:
        if self._waiting:
            self._replace_waiting()
        self.sender.start_pending()
        self._on_stored()

    def failed(self, exc: StoreError) -> None:
        for record in self._records.values():
            record.answer(exc)

    # -- processing order -------------------------------------------------------------
    async def take(self, quota: Quota, index: int) -> Answer:
        """The answer to job ``index`` of ``quota`` (sent now if it was not yet)."""
        jk = (quota, index)
        if jk not in self._records:
            self.dispatch(self.jobs.job(quota, index))
        record = self._records[jk]  # kept while awaited: it may be replaced
        held = self._held.get(quota)
        if held is not None and record in held:  # its turn: a later job was in the store
            held.remove(record)
            self._send(record)
        if self.sender.queue and not record.future.done():
            self.flush()
        try:
            outcome: Completion | GenerationError = await record.future
        except GenerationError as exc:
            outcome = exc
        finally:
            del self._records[jk]
            self._by_request.pop(id(record.request), None)
            if record.state is not State.REPLACED:
                self._count(quota, -1)
            if record.from_store:
                self._replaying[quota] -= 1
                if not self._replaying[quota] and quota in self._held:
                    self._release_held(quota)
            self._hunger(quota)
        return Answer(record.job, outcome, record.key)

    # -- requests the run no longer needs ----------------------------------------------
    def on_request_state(self, request: Request, state: str) -> None:
        """The backend's report that a request went on the wire, or waits for a retry."""
        record = self._by_request.get(id(request))
        if record is None:
            return
        jk = (record.job.quota, record.job.index)
        if state == "waiting":
            record.state, record.throttled, record.waiting_since = \
                State.WAITING, True, self.sender.arrived
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
            self._count(quota, -1)
            self.dispatched[quota] = index
            self.cancelled += 1
            excess -= 1
            index -= 1
        i = self._index[quota]
        if index < self._queued.get(i, index):  # queued beyond what is undispatched now
            self._queue(i, index)
        if self.sender.has_pending and index < top:
            self.sender.start_pending()  # budget held by the cancelled requests is free again

    def _replace_waiting(self) -> None:
        """Skip the jobs that wait for a retry while answers to others keep arriving
        (the server is not turning everyone away), so that later jobs of the same
        labels are sent now. Nothing is in flight for a waiting job, so cancelling it
        loses nothing paid for; it is never sent again."""
        for jk, record in list(self._waiting.items()):
            quota = jk[0]
            if self.sender.arrived <= record.waiting_since or \
                    self.skipped[quota] >= self.max_attempts:
                continue  # nothing answered since; or the label fails every time: retry it
            assert record.task is not None
            del self._waiting[jk], self._by_request[id(record.request)]
            record.task.cancel()
            record.task = None
            self.budget.release(record.reserved)
            self.store.skip_job(record.key, str(quota), jk[1], _SKIP_REASON)
            self.replaced += 1
            record.answer(SKIPPED)
            record.state = State.REPLACED
            self.skipped[quota] += 1
            self._count(quota, -1)  # so that fill() sends another job now
            self._hunger(quota)

    # -- the end of a run -----------------------------------------------------------------
    def _cancel_waiting(self) -> None:
        for record in list(self._waiting.values()):  # nothing paid, nothing lost
            if record.task is not None:
                record.task.cancel()

    def halt(self) -> None:
        """Ctrl-C: nothing more goes on the wire (calls waiting for their turn return)."""
        self.sender.stopping = True

    async def stop(self, grace: float) -> None:
        """After Ctrl-C: send nothing more, give the answers in flight ``grace`` seconds."""
        self._cancel_waiting()
        await self.sender.stop(grace)

    def abort(self) -> None:
        """Cancel every call in flight (the run failed)."""
        self.sender.abort()

    async def close(self) -> None:
        """Requests sent ahead and still in flight are paid for: wait and store them
        (after an error they were cancelled already); those not sent yet are dropped."""
        self._cancel_waiting()
        await self.sender.close()
        for record in self._records.values():
            future = record.future
            if not future.done():
                future.cancel()
            else:
                _retrieve(future)


def _retrieve(future: asyncio.Future[Completion]) -> None:
    """Mark a job's outcome as seen (no "exception never retrieved" warning)."""
    if not future.cancelled():
        future.exception()
