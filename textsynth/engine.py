"""The round loop: quotas, top-up, resume.

Completions are *processed* in a fixed order, round by round (job 0 of every quota,
then job 1 ...), whatever order they arrive in. The request window
(:mod:`textsynth._dispatch`) sends requests ahead of that order, up to the backend's
batch size times its concurrency, so the backend stays busy; because processing order
is fixed, the same recipe, seed and deterministic backend give the same dataset, and a
resumed run gives the same dataset as a clean one. Each completion goes through the
acceptor (:mod:`textsynth.accept`: parse, quality gate, store); a quota still short
gets its next job ("top-up") until it is full or out of attempts, the budget
(:mod:`textsynth._budget`) is spent, or the run is interrupted. The result says, per
quota, which of these stopped it.
"""

from __future__ import annotations

import asyncio
import gc
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from textsynth._budget import Budget
from textsynth._dispatch import SKIPPED, RequestWindow
from textsynth.accept import Acceptor
from textsynth.backends import Backend, get_backend
from textsynth.backends.base import Request, Usage
from textsynth.backends.repair import SchemaRepair
from textsynth.errors import (
    BudgetExceeded,
    GenerationError,
    RunInterrupted,
    StoreError,
    stop_signals,
    stopped_message,
)
from textsynth.jobs import JobSource, RecipeJobs
from textsynth.plan import Job, Quota
from textsynth.prompt import AcceptedTexts
from textsynth.quality import QualityGate
from textsynth.recipe import Recipe
from textsynth.result import QuotaStats, RunSnapshot, RunStats, StopReason
from textsynth.store import Store

__all__ = ["Engine", "ProgressHook", "RunInterrupted", "RunStats"]

#: called with a snapshot of the run and what just happened ("sent", "processed", "tick",
#: "interrupted", and "finished" last)
ProgressHook = Callable[[RunSnapshot, str], None]
_NOTIFY_EVERY = 0.05  # seconds: events of one kind closer than this are not shown


@contextmanager
def _fewer_collections(first_generation: int = 50_000) -> Iterator[None]:
    """Collect the youngest generation less often while a run lasts.

    A run makes and drops many small objects (futures, tasks, dicts) and few
    cycles; at the default threshold (700) the collector takes 10-20% of the
    client's CPU at hundreds of requests a second. Restored when the run ends.
    """
    old = gc.get_threshold()
    gc.set_threshold(max(old[0], first_generation), *old[1:])
    try:
        yield
    finally:
        gc.set_threshold(*old)


class Engine:
    """Fills every quota of a recipe (or another :class:`~textsynth.jobs.JobSource`),
    resuming from the store.

    >>> engine = Engine(recipe, backend=FakeBackend(responses=['["hi"]']))  # doctest: +SKIP
    >>> result = asyncio.run(engine.run())  # doctest: +SKIP

    Ctrl-C (SIGINT, in the main thread), or SIGTERM (what ``kill``, ``timeout``, Docker,
    Kubernetes and Slurm send to stop a process): the first one stops sending, stores
    the answers that arrive within :attr:`interrupt_grace` seconds and raises
    :class:`RunInterrupted`; a second one exits the process at once (status 128 + the
    signal's number: 130 for SIGINT, 143 for SIGTERM).
    """

    #: seconds the answers in flight get after the first Ctrl-C
    interrupt_grace: float = 5.0

    def __init__(self, recipe: Recipe | JobSource, backend: Backend | None = None,
                 store: Store | None = None, progress: ProgressHook | None = None,
                 gate: QualityGate | None = None):
        self.jobs = jobs = RecipeJobs(recipe) if isinstance(recipe, Recipe) else recipe
        self.quotas = jobs.quotas
        accepted = AcceptedTexts(self.quotas)
        self._owns_backend = backend is None
        self.backend = backend or jobs.build_backend()
        self.store = store or Store.in_dir(jobs.output_dir)
        self.gate = gate or jobs.build_gate(self.backend)
        self.progress = progress
        self.result = RunStats({q: QuotaStats(jobs.target(q)) for q in self.quotas})
        self.stats = self.result.quotas
        turns = jobs.recipe.generation.repair_turns
        if turns is None:  # the backend's default, by the recipe's type when built here
            turns = (get_backend(jobs.recipe.backend.type) if backend is None
                     else backend).default_repair_turns
        self.budget = Budget(jobs.budget, repair_turns=turns)  # worst cases count the turns
        self.acceptor = Acceptor(self.store, self.gate, jobs, self.backend.model_name,
                                 self.stats, accepted)
        # the window sends through correction turns; the gate and the summary name the backend
        generator = SchemaRepair(self.backend, jobs.schema, turns) if turns else self.backend
        self.window = RequestWindow(
            generator, self.store, self.budget, jobs,
            batch_size=jobs.batch_size or self.backend.batch_size,
            concurrency=jobs.concurrency or self.backend.max_concurrency,
            max_attempts=jobs.max_attempts, on_stored=lambda: self._notify("sent"))
        # rounds between a job and the accepted rows its prompt may show: those rounds
        # are processed before the job is sent, at any concurrency
        self.lag = max(1, math.ceil(self.window.size / max(1, len(self.quotas))))
        jobs.attach(accepted, self.lag)
        self._round = 0
        self._interrupted = False
        self.stopped_by = int(signal.SIGINT)  # the signal that stopped the run, if one did
        self._main: asyncio.Task[Any] | None = None  # cancelled by the first Ctrl-C
        self._notified: dict[str, float] = {}  # when each kind of event was last shown

    def request_for(self, job: Job) -> Request:
        return self.jobs.request(job)

    def check(self) -> None:
        """Render the first prompt of every quota, so template errors surface before any
        model is loaded or request sent."""
        for quota in self.quotas:
            self.jobs.request(self.jobs.job(quota, 0))

    def cost(self, usage: Usage) -> float:
        return self.budget.cost(usage)

    # -- the round loop ------------------------------------------------------------------
    def _open(self, quota: Quota) -> bool:
        """Whether the quota still takes jobs this round: short, and attempts left."""
        return not self.stats[quota].full and self._round < self.window.allowed(quota)

    async def _rounds(self) -> None:
        """Round by round, the next job of every open quota, processed in that order;
        when none is open, the gate's end-of-run audit may withdraw rows and reopen
        quotas (their jobs go on from the round the run has reached)."""
        while True:
            await self._fill_quotas()
            if not self.acceptor.audit():
                return
            for quota in self.quotas:
                if self._open(quota):
                    self.window.reopen(quota, self._round)
            self._notify("processed")

    async def _fill_quotas(self) -> None:
        while any(self._open(quota) for quota in self.quotas):
            for quota in self.quotas:
                if not self._open(quota):
                    continue
                self.window.fill(self._round, self.lag, self._wants)
                # let the calls just started reach the backend: an answer that is already
                # there is awaited without yielding, and the quality rules then hold the
                # loop, so a local engine would starve while answers are processed
                await asyncio.sleep(0)
                answer = await self.window.take(quota, self._round)
                if isinstance(answer.outcome, GenerationError):
                    self.acceptor.failed(answer.job, answer.outcome)
                    continue
                if answer.outcome is SKIPPED:  # replaced by a later job
                    continue
                await self.acceptor.accept(answer.job, answer.outcome, answer.key)
                if self.window.tracking:
                    self.window.cancel_unneeded(quota, self._round, self._still_needed(quota))
                self._notify("processed")
            self._round += 1

    def _expected_yield(self, quota: Quota) -> float:
        """Rows a job of the quota is expected to give (from those processed so far)."""
        return self.jobs.expected_yield(self.stats[quota])

    def _wants(self, quota: Quota, index: int) -> bool:
        """Whether job ``index`` of the quota should be sent now (ahead of processing)."""
        st = self.stats[quota]
        if st.full or index >= self.window.allowed(quota):
            return False
        expected = st.accepted + self.window.inflight[quota] * self._expected_yield(quota)
        return expected < st.target

    def _still_needed(self, quota: Quota) -> int:
        """Jobs the quota needs beyond those processed, at the yield seen so far."""
        st = self.stats[quota]
        return 0 if st.full else math.ceil(st.shortfall / self._expected_yield(quota))

    # -- progress and Ctrl-C --------------------------------------------------------------
    def snapshot(self) -> RunSnapshot:
        return RunSnapshot.of(self.stats, self.window.sent, self.window.cached,
                              self.budget.used.total_tokens, self.activity(),
                              multilingual=self.jobs.multilingual)

    def _notify(self, event: str) -> None:
        if self.progress is None:
            return
        now = time.monotonic()
        if now - self._notified.get(event, -1.0) < _NOTIFY_EVERY:
            return  # a snapshot is a pass over every quota (translate has one per row)
        self._notified[event] = now
        self.progress(self.snapshot(), event)

    def activity(self) -> str:
        """What the run waits for now, in a few words ("" when nothing is slow)."""
        if self._interrupted:
            if self.backend.calls_run_to_the_end:
                return ("stopping: the model finishes the batch it is on, and its answers "
                        "are stored (Ctrl-C again quits at once)")
            return (f"stopping: storing the answers in flight (at most "
                    f"{self.interrupt_grace:g} s; Ctrl-C again quits at once)")
        return self.backend.activity()

    def interrupt(self) -> None:
        """Stop sending, keep the answers in flight for a grace period, then raise
        :class:`RunInterrupted` from :meth:`run` (what the first Ctrl-C does)."""
        if self._interrupted:
            return
        self._interrupted = True
        self.window.halt()
        if self._main is not None:
            self._main.cancel()

    async def _tick(self) -> None:
        """Refresh the progress display while nothing else does (waits, retries)."""
        while True:
            await asyncio.sleep(1.0)
            self._notify("tick")

    # -- a run ---------------------------------------------------------------------------
    async def run(self) -> RunStats:
        """Generate until every quota is filled or the attempt limit or budget is reached."""
        loop = asyncio.get_running_loop()
        previous: dict[signal.Signals, Any] = {}
        if threading.current_thread() is threading.main_thread():
            def on_signal(signum: int, frame: Any) -> None:
                if self._interrupted:  # the second Ctrl-C or SIGTERM: no more waiting
                    message = stopped_message(self.stopped_by)
                    os.write(2, f"\n{message} (stopped at once)\n".encode())
                    os._exit(128 + signum)
                self.stopped_by = signum
                loop.call_soon_threadsafe(self.interrupt)

            for stop in stop_signals():
                previous[stop] = signal.signal(stop, on_signal)
        try:
            with _fewer_collections():
                return await self._run()
        finally:
            for stop, handler in previous.items():
                signal.signal(stop, handler)

    async def _run(self) -> RunStats:
        start = time.perf_counter()
        self.store.reset_results()
        self.store.set_meta("recipe", self.jobs.recipe.model_dump(mode="json", by_alias=True))
        self.window.skip_keys = self.store.skipped_keys()
        # one request per call, and the backend says which are sent and which wait
        self.window.tracking = self.window.batch_size == 1 and self.backend.reports_request_state
        if self.window.tracking:
            self.window.sender.on_state = self.window.on_request_state
        if self.gate.primes:  # e.g. MinHash signatures of a burst of answers in one batch
            self.window.sender.on_answers = self.acceptor.prime
        ticker = asyncio.create_task(self._tick()) if self.progress is not None else None
        self._main = asyncio.current_task()
        if self._interrupted and self._main is not None:  # Ctrl-C before the run began
            self._main.cancel()
        stop: StopReason | None = StopReason.FAILED
        try:
            await self._rounds()
            stop = None
        except BudgetExceeded as exc:
            self.result.stopped, stop = str(exc), StopReason.BUDGET
        except asyncio.CancelledError:
            if not self._interrupted:
                self.window.abort()
                raise
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()  # handled: later awaits here must not see it again
            self._main = None
            self._notify("interrupted")
            await self.window.stop(self.interrupt_grace)
            stop = StopReason.INTERRUPTED
        except BaseException:
            self.window.abort()
            raise
        finally:
            if ticker is not None:
                ticker.cancel()
            await self._finish(start, stop)
        if self.window.failure is not None:  # e.g. the last answers could not be stored
            raise self.window.failure
        if stop is StopReason.INTERRUPTED:
            raise RunInterrupted(self.store.completion_count(), self.stopped_by)
        return self.result

    async def _finish(self, start: float, stop: StopReason | None) -> None:
        """Store what is in flight, close what the engine opened, and sum up the run."""
        self._main = None
        self.window.sender.on_state = self.window.sender.on_answers = None
        window = self.window
        try:
            self.acceptor.flush()
        except StoreError as exc:
            window.record_failure(exc)
        await window.close()
        if self._owns_backend:
            await self.backend.aclose()
        result = self.result
        result.sent, result.cached = window.sent, window.cached
        result.replaced, result.cancelled = window.replaced, window.cancelled
        result.usage = self.budget.used
        result.seconds = time.perf_counter() - start
        result.rule_stats = self.gate.stats()
        for quota, st in self.stats.items():
            closed = self._round >= window.allowed(quota)  # out of attempts before the stop
            st.stop = StopReason.QUOTA_MET if st.full else \
                StopReason.ATTEMPT_LIMIT if closed or stop is None else stop
        self._notified.clear()
        self._notify("finished")
        if window.failure is None:
            self.store.set_meta("summary", {
                **result.summary(self.cost, self.store.usage()), **self.jobs.summary(),
                "model": self.backend.model_name, "backend": self.backend.name,
                "backend_stats": dict(getattr(window.backend, "stats", {})),
            })
