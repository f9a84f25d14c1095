"""The generation loop: jobs -> requests -> completions -> quality gate -> store.

Completions are *processed* in a fixed order, round by round (job 0 of every
label, then job 1 ...), whatever order they arrive in. Requests are sent ahead of
that order, up to the backend's batch size times its concurrency, so the
backend stays busy; because processing order is fixed, the same recipe, seed and
deterministic backend give the same dataset, and a resumed run gives the same
dataset as a clean one.

With a backend that reports its requests' state (``reports_request_state``,
e.g. ``openai``), two more things keep paid work and waiting low:

* a request that is no longer needed (its label's quota will be met by the jobs
  in flight, at the yield seen so far) is withdrawn while it still waits in the
  queue, and sent later only if it turns out to be needed after all;
* a job whose request waits for a retry (the server answered 429 or 5xx, or the
  connection dropped: nothing was paid for it) while answers to other requests
  keep arriving is cancelled and recorded as skipped, and the label's next job
  takes its place, so one unlucky request does not hold up the end of a run.
  Every quota is the same, no request is sent again after it succeeded, and a
  resumed run skips the same jobs; only which jobs fill a quota depends on the
  faults.
"""

from __future__ import annotations

import asyncio
import bisect
import gc
import math
import os
import random
import signal
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from textsynth.backends import Backend
from textsynth.backends.base import Completion, Request, Usage
from textsynth.errors import (
    INTERRUPTED,
    BudgetExceeded,
    GenerationError,
    RunInterrupted,
    StoreError,
)
from textsynth.executors import build_backend
from textsynth.languages import language_name
from textsynth.plan import Job, Planner, Slot
from textsynth.quality import QualityGate, build_gate
from textsynth.recipe import Recipe
from textsynth.schemas import Example, OutputSchema, Parsed, load_schema
from textsynth.store import Store, Transaction
from textsynth.templates import PromptTemplate

__all__ = ["Engine", "RunInterrupted", "RunResult", "SlotStats", "language_name"]


@dataclass
class SlotStats:
    """What happened for one label (in one language)."""

    target: int
    accepted: int = 0
    candidates: int = 0
    jobs: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    usage: Usage = field(default_factory=Usage)

    @property
    def shortfall(self) -> int:
        return max(0, self.target - self.accepted)

    @property
    def full(self) -> bool:
        return self.accepted >= self.target


@dataclass
class RunResult:
    """The outcome of :meth:`Engine.run`."""

    slots: dict[Slot, SlotStats]
    sent: int = 0
    cached: int = 0
    usage: Usage = field(default_factory=Usage)
    seconds: float = 0.0
    stopped: str | None = None
    replaced: int = 0  # jobs that waited for a retry and were replaced by later ones
    withdrawn: int = 0  # requests taken back before they were sent: no longer needed
    rule_stats: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return all(s.full for s in self.slots.values())

    @property
    def shortfalls(self) -> dict[str, int]:
        return {str(k): v.shortfall for k, v in self.slots.items() if v.shortfall}

    @property
    def rejected(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for s in self.slots.values():
            total.update(s.rejected)
        return total


ProgressHook = Callable[["Engine", str], None]


def _complete(parsed: list[Parsed], cut: bool) -> list[Parsed]:
    """When the completion hit max_tokens, its last item may be cut off mid-way."""
    last = parsed[-1] if parsed else None
    if cut and last is not None and not last.error and not last.text.endswith(_ENDINGS):
        parsed[-1] = Parsed(last.text, error="truncated")
    return parsed


_ENDINGS = tuple(".!?。！？…\"'”’)")
# what a skipped job's future holds (it was replaced by a later job)
_SKIPPED = Completion(texts=[], finish_reason="skipped")
_SKIP_REASON = "replaced while it waited for a retry"

JobKey = tuple[Slot, int]


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
    """Fills every label's quota from a recipe, resuming from the store.

    >>> engine = Engine(recipe, backend=FakeBackend(responses=['["hi"]']))  # doctest: +SKIP
    >>> result = asyncio.run(engine.run())  # doctest: +SKIP

    Ctrl-C (SIGINT, in the main thread): the first one stops sending, stores the
    answers that arrive within :attr:`interrupt_grace` seconds and raises
    :class:`RunInterrupted`; a second one exits the process at once (status 130).
    """

    #: seconds the answers in flight get after the first Ctrl-C
    interrupt_grace: float = 5.0

    def __init__(self, recipe: Recipe, backend: Backend | None = None,
                 store: Store | None = None, progress: ProgressHook | None = None,
                 gate: QualityGate | None = None):
        self.recipe = recipe
        self.template = PromptTemplate.load(recipe.template, recipe.base_dir)
        self.schema: OutputSchema = load_schema(recipe.output_schema).for_recipe(recipe)
        self.planner = Planner(recipe)
        self._owns_backend = backend is None
        self.backend = backend or build_backend(recipe)
        self.store = store or Store.in_dir(recipe.output_dir)
        self.gate = gate or build_gate(recipe, self.backend)
        self.progress = progress
        gen = recipe.generation
        self.batch_size = gen.batch_size or self.backend.batch_size
        self.concurrency = gen.concurrency or self.backend.max_concurrency
        self.window = self.batch_size * (self.concurrency + 1)
        self.slots = self.planner.slots
        self._labels = {name: s.description for name, s in recipe.labels.items()}
        self._static_context = {  # the parts of every job's context that never change
            "task": recipe.description,
            "n": recipe.generation.examples_per_request,
            "slot_types": recipe.slots,
        }
        self._max_attempts = recipe.max_attempts
        self.stats = {s: SlotStats(recipe.per_label) for s in self.slots}
        self.result = RunResult(self.stats)
        # per slot: accepted texts with the round they came from ("do not repeat" lists)
        self._accepted: dict[Slot, list[tuple[int, str]]] = {s: [] for s in self.slots}
        self._lag = max(1, math.ceil(self.window / max(1, len(self.slots))))
        self._futures: dict[tuple[Slot, int], asyncio.Future[Completion]] = {}
        self._keys: dict[tuple[Slot, int], str] = {}
        self._jobs: dict[tuple[Slot, int], Job] = {}
        self._queue: list[tuple[Job, Request, str, asyncio.Future[Completion]]] = []
        self._pending: deque[list[tuple[Job, Request, str, asyncio.Future[Completion]]]] = deque()
        self._reserved = Usage()  # budget held by requests in flight
        self._budgeted = recipe.budget.max_tokens is not None or recipe.budget.max_cost is not None
        self._unstored: list[tuple[list[Any], list[Completion], Usage]] = []
        self._tx: Transaction | None = None
        self._failure: StoreError | None = None  # the store failed: the run ends
        self._sem = asyncio.Semaphore(self.concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._round = 0
        self._seq = 0
        self._inflight: Counter[Slot] = Counter()
        self._dispatched: dict[Slot, int] = dict.fromkeys(self.slots, 0)
        self._hungry: set[Slot] = set(self.slots)  # slots that may need more requests
        # jobs whose request waits for a retry, and what they need to be replaced
        self._skip_keys: set[str] = set()  # skipped in an earlier run
        self._skipped: Counter[Slot] = Counter()  # per slot: do not count as attempts
        self._sending: dict[JobKey, tuple[asyncio.Task[None], Usage, Request]] = {}
        self._by_request: dict[int, JobKey] = {}
        self._parked: dict[JobKey, int] = {}  # job -> answers arrived when it started waiting
        self._wire: set[JobKey] = set()  # sent at least once (may not be withdrawn)
        self._tracking = False  # the backend reports its requests' state
        self._arrived = 0
        self._gone: set[JobKey] = set()  # replaced before processing reached them
        self._interrupted = False
        self._main: asyncio.Task[Any] | None = None  # cancelled by the first Ctrl-C

    # -- rendering -----------------------------------------------------------------
    def context(self, job: Job) -> dict[str, Any]:
        """Everything a template can use for one job."""
        recipe = self.recipe
        accepted = self._accepted[job.slot]  # in round order: the pool is a prefix
        cut = bisect.bisect_left(accepted, job.index - self._lag, key=itemgetter(0))
        gen = recipe.generation
        examples = list(job.fewshot)
        avoid: list[str] = []
        bootstrap = gen.bootstrap and not examples
        if cut and (gen.avoid or (gen.fewshot and bootstrap)):
            # one draw from the pool (a prefix, so the same at any concurrency): without
            # seed examples its first rows are this label's own accepted rows shown as
            # examples (bootstrapped few-shot), the rest are "do not repeat"
            shots = gen.fewshot if bootstrap else 0
            picks = random.Random(job.seed).sample(range(cut), min(cut, shots + gen.avoid))
            if shots:
                examples = [accepted[i][1] for i in picks[:shots]]
            avoid = [accepted[i][1] for i in picks[shots:]]
        return {
            **self._static_context,
            "labels": self._labels,  # shared, not copied: the sandbox keeps it unchanged
            "label": job.label,
            "label_name": job.label.replace("_", " "),
            "label_description": recipe.labels[job.label].description,
            "language": job.language,
            "language_name": language_name(job.language),
            "attributes": job.attributes,
            "examples": examples,
            "avoid": avoid,
            "slots": job.slot_values,
        }

    def request_for(self, job: Job) -> Request:
        gen = self.recipe.generation
        return Request(
            messages=self.template.render_messages(**self.context(job)),
            temperature=gen.temperature,
            top_p=gen.top_p,
            max_tokens=gen.max_tokens,
            n=gen.n,
            seed=job.seed,
            json_schema=self.schema.json_schema(),
            metadata={"slot": str(job.slot), "index": job.index, "schema": self.schema},
        )

    def check(self) -> None:
        """Render the first prompt of every label, so template errors surface before any
        model is loaded or request sent."""
        for slot in self.slots:
            self.request_for(self.planner.job(slot, 0))

    # -- sending -------------------------------------------------------------------
    def _estimate(self, request: Request) -> Usage:
        """An upper bound of one request's usage, reserved from the budget while in flight."""
        prompt = sum(len(m["content"]) for m in request.messages) // 3 + 1
        return Usage(prompt, request.max_tokens * request.n)

    def _fits(self) -> bool:
        """Whether another request may start: the budget is not reached even if every
        request in flight uses its worst case. The run stops once the budget is reached
        and overshoots it by at most one request."""
        budget = self.recipe.budget
        planned = self.result.usage + self._reserved
        if budget.max_tokens is not None and planned.total_tokens >= budget.max_tokens:
            return False
        return budget.max_cost is None or self.cost(planned) < budget.max_cost

    def cost(self, usage: Usage) -> float:
        b = self.recipe.budget
        spent = usage.prompt_tokens * b.input_price + usage.completion_tokens * b.output_price
        return spent / 1e6

    def _dispatch(self, job: Job) -> None:
        key_parts = (self.backend.name, self.backend.model_name)
        request = self.request_for(job)
        key = request.key(*key_parts)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Completion] = loop.create_future()
        self._futures[(job.slot, job.index)] = future
        self._keys[(job.slot, job.index)] = key
        self._jobs[(job.slot, job.index)] = job
        self._inflight[job.slot] += 1
        self._dispatched[job.slot] = max(self._dispatched[job.slot], job.index + 1)
        if self._failure is not None:  # the store failed: nothing more is sent
            future.set_exception(self._failure)
            return
        if key in self._skip_keys:
            self._skipped[job.slot] += 1
            future.set_result(_SKIPPED)
            return
        cached = self.store.get_completion(key)
        if cached is not None:
            self.result.cached += 1
            self.result.usage = self.result.usage + cached.usage
            future.set_result(cached)
            return
        self._queue.append((job, request, key, future))
        if len(self._queue) >= self.batch_size:
            self._flush()

    def _flush(self) -> None:
        if self._queue:
            self._pending.append(self._queue)
            self._queue = []
        self._start_pending()

    def _start_pending(self) -> None:
        """Send queued batches while the budget (less what is in flight) has room."""
        while self._pending:
            batch = self._pending[0]
            need = Usage()
            if self._budgeted:
                for _, request, _, _ in batch:
                    need = need + self._estimate(request)
            if self._budgeted and not self._fits():
                if self._reserved.total_tokens or self._unstored:
                    return  # what is in flight may use less than reserved: wait for it
                stopped = BudgetExceeded("the run's budget is spent; raise budget.max_tokens "
                                         "or budget.max_cost and run again to continue")
                for pending in self._pending:
                    for *_, fut in pending:
                        if not fut.done():
                            fut.set_exception(stopped)
                self._pending.clear()
                return
            self._pending.popleft()
            self._reserved = self._reserved + need
            task = asyncio.create_task(self._send(batch, need))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            if len(batch) == 1:  # a call of its own: it may be replaced while it waits
                job, request, _, _ = batch[0]
                self._sending[(job.slot, job.index)] = (task, need, request)
                self._by_request[id(request)] = (job.slot, job.index)

    async def _send(
        self, batch: list[tuple[Job, Request, str, asyncio.Future[Completion]]], need: Usage
    ) -> None:
        try:
            async with self._sem:
                if self._interrupted:  # Ctrl-C: nothing more goes on the wire
                    return
                completions = await self.backend.generate([r for _, r, _, _ in batch])
        except Exception as exc:  # handed to whoever waits on these jobs
            self._forget(batch)
            for *_, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            self._release(need)
            self._start_pending()
            return
        self._forget(batch)
        self._unstored.append((batch, completions, need))
        if len(self._unstored) == 1:  # completions that arrive together share one commit
            asyncio.get_running_loop().call_soon(self._store_completions)

    def _forget(self, batch: list[tuple[Job, Request, str, asyncio.Future[Completion]]]) -> None:
        if len(batch) == 1:
            job, request, _, _ = batch[0]
            jk = (job.slot, job.index)
            self._sending.pop(jk, None)
            self._by_request.pop(id(request), None)
            self._parked.pop(jk, None)
            self._wire.discard(jk)

    # -- replacing jobs that wait for a retry ------------------------------------------
    def _on_request_state(self, request: Request, state: str) -> None:
        """The backend's report that a request went on the wire, or waits for a retry."""
        jk = self._by_request.get(id(request))
        if jk is None:
            return
        if state == "waiting":
            self._parked[jk] = self._arrived
        else:
            self._wire.add(jk)
            self._parked.pop(jk, None)

    def _withdraw_unneeded(self, slot: Slot) -> None:
        """Take back the slot's newest requests not sent yet that the quota no longer
        needs (at the yield seen so far). They become undispatched again: if they turn
        out to be needed, the look-ahead sends them, so processing order is kept."""
        st = self.stats[slot]
        need = 0 if st.full else math.ceil(st.shortfall / self._expected_yield(slot))
        excess = self._inflight[slot] - need
        index = top = self._dispatched[slot] - 1
        while excess > 0 and index > self._round:
            jk = (slot, index)
            entry = self._sending.get(jk)
            if entry is None or jk in self._wire:  # a waiting job was on the wire before
                break
            task, usage, request = entry
            task.cancel()
            self._release(usage)
            del self._sending[jk], self._by_request[id(request)]
            del self._futures[jk], self._keys[jk], self._jobs[jk]
            self._inflight[slot] -= 1
            self._dispatched[slot] = index
            self.result.withdrawn += 1
            excess -= 1
            index -= 1
        if self._pending and index < top:
            self._start_pending()  # budget held by the withdrawn requests is free again

    def _replace_waiting(self) -> None:
        """Skip the jobs that wait for a retry while answers to others keep arriving
        (the server is not turning everyone away), so that later jobs of the same
        labels are sent now. Nothing is in flight for a waiting job, so cancelling it
        loses nothing paid for; it is never sent again."""
        for jk, since in list(self._parked.items()):
            if self._arrived <= since or self._skipped[jk[0]] >= self._max_attempts:
                continue  # nothing answered since; or the label fails every time: retry it
            task, need, request = self._sending.pop(jk)
            self._by_request.pop(id(request), None)
            del self._parked[jk]
            task.cancel()
            self._release(need)
            self.store.skip_job(self._keys[jk], str(jk[0]), jk[1], _SKIP_REASON)
            self.result.replaced += 1
            self._futures[jk].set_result(_SKIPPED)
            self._skipped[jk[0]] += 1
            self._inflight[jk[0]] -= 1  # so that the look-ahead sends another job now
            self._hungry.add(jk[0])
            self._gone.add(jk)

    def _allowed(self, slot: Slot) -> int:
        """Rounds a slot may use: skipped jobs do not count as attempts."""
        return self._max_attempts + self._skipped[slot]

    def _release(self, need: Usage) -> None:
        self._reserved = Usage(self._reserved.prompt_tokens - need.prompt_tokens,
                               self._reserved.completion_tokens - need.completion_tokens)

    def _store_completions(self) -> None:
        """Write (and commit) the completions that arrived, then hand them on to parsing."""
        done, self._unstored = self._unstored, []
        if not done:
            return
        try:  # a callback of the event loop: an error raised here would be lost
            self._commit_results()
            with self.store.transaction():
                for batch, completions, _ in done:
                    for (job, request, key, _), completion in zip(batch, completions,
                                                                  strict=True):
                        self.store.put_completion(key, str(job.slot), job.index, request,
                                                  completion)
        except StoreError as exc:
            self._fail(exc)
            return
        for batch, completions, need in done:
            self._release(need)
            for (*_, fut), completion in zip(batch, completions, strict=True):
                self.result.sent += 1
                self._arrived += 1
                self.result.usage = self.result.usage + completion.usage
                if not fut.done():
                    fut.set_result(completion)
        if self._parked:
            self._replace_waiting()
        self._start_pending()
        self._notify("sent")

    def _fail(self, exc: StoreError) -> None:
        """The store cannot be written: nothing more is sent, and whoever waits for an
        answer gets the error, so the run ends with it (the failed write was rolled back)."""
        self._failure = self._failure or exc
        self._pending.clear()
        self._queue.clear()
        for fut in self._futures.values():
            if not fut.done():
                fut.set_exception(exc)

    def _results_tx(self) -> None:
        """Accepted and rejected rows are written in one transaction per burst of processing.

        They are re-derived from the stored completions on every run, so a crash that
        loses the open transaction loses nothing.
        """
        if self._tx is None:
            self._tx = self.store.transaction()

    def _commit_results(self) -> None:
        if self._tx is not None:
            tx, self._tx = self._tx, None
            tx.commit()

    def _expected_yield(self, slot: Slot) -> float:
        st = self.stats[slot]
        per_job = self.recipe.generation.examples_per_request * self.recipe.generation.n
        if st.jobs == 0:
            return per_job * 0.5
        return max(0.1, st.accepted / st.jobs)

    def _needs_more(self, slot: Slot) -> bool:
        st = self.stats[slot]
        expected = st.accepted + self._inflight[slot] * self._expected_yield(slot)
        return expected < st.target

    def _lookahead(self) -> None:
        """Send jobs ahead of the processing order while the window has room.

        Round by round, slot by slot, from the lowest round a slot still needs. A
        slot that needs no more requests now needs none until one of its jobs is
        processed, so it leaves ``_hungry`` until then (this keeps the scan short).
        """
        inflight = sum(self._inflight.values())
        hungry = self._hungry
        if inflight >= self.window or not hungry:
            self._flush()
            return
        # "avoid" lists need rounds up to index - lag processed
        limit = self._round + self._lag
        rnd = max(self._round, min(self._dispatched[s] for s in hungry))
        while inflight < self.window and rnd <= limit and hungry:
            for slot in self.slots:
                if inflight >= self.window:
                    break
                if slot not in hungry or rnd < self._dispatched[slot] or \
                        (slot, rnd) in self._futures:
                    continue
                if self.stats[slot].full or rnd >= self._allowed(slot) or \
                        not self._needs_more(slot):
                    hungry.discard(slot)
                    continue
                self._dispatch(self.planner.job(slot, rnd))
                inflight += 1
            rnd += 1
        self._flush()

    # -- processing ----------------------------------------------------------------
    async def _completion(self, slot: Slot, index: int) -> tuple[Completion, str]:
        if (slot, index) not in self._futures:
            self._dispatch(self.planner.job(slot, index))
        if self._queue and not self._futures[(slot, index)].done():
            self._flush()
        jk = (slot, index)
        future, key = self._futures[jk], self._keys[jk]  # kept while awaited: it may be replaced
        if not future.done():
            self._commit_results()  # before others run: they write to the store too
        try:
            return await future, key
        finally:
            del self._futures[jk], self._keys[jk]
            if jk in self._gone:
                self._gone.discard(jk)
            else:
                self._inflight[slot] -= 1
            self._hungry.add(slot)

    def _example(self, job: Job, completion: Completion, key: str, parsed: Parsed) -> Example:
        return Example(
            text=parsed.text, label=job.label, language=job.language,
            fields=parsed.fields, template=self.template.name,
            template_sha=self.template.sha, model=completion.model or
            self.backend.model_name, attributes=job.attributes, seed=job.seed,
            request_id=key,
        )

    async def _process(self, job: Job, completion: Completion, key: str) -> None:
        st = self.stats[job.slot]
        st.jobs += 1
        st.usage = st.usage + completion.usage
        parsed_all = [p for text in completion.texts for p in _complete(
            self.schema.parse(text), completion.finish_reason == "length")]
        if self.gate.needs_prepare:  # model-backed rules judge the whole batch at once
            await self.gate.prepare([self._example(job, completion, key, p) for p in parsed_all
                                     if not p.error and p.label in (None, job.label)])
        for parsed in parsed_all:
            if st.full:
                return
            st.candidates += 1
            if parsed.error:
                self._reject(job, parsed.text, f"parse:{parsed.error}", "", key)
                continue
            if parsed.label is not None and parsed.label != job.label:
                self._reject(job, parsed.text, "label_mismatch", parsed.label, key)
                continue
            example = self._example(job, completion, key, parsed)
            verdict = self.gate.check(example)
            for label, text in self.gate.withdrawals():
                self._withdraw(label, text, example)
            if not verdict.keep:
                detail = f"[{verdict.rule}] {verdict.detail}".strip()
                self._reject(job, example.text, verdict.reason, detail, key)
                continue
            self.gate.accept(example)
            self._results_tx()
            st.accepted += 1
            self._accepted[job.slot].append((job.index, example.text))
            self.store.add_example(self._seq, example)
            self._seq += 1

    def _withdraw(self, label: str, text: str, newcomer: Example) -> None:
        """Take back an accepted example whose text turned up under another label."""
        for slot in self.slots:
            if slot.label != label:
                continue
            accepted = self._accepted[slot]
            for i, (_, seen) in enumerate(accepted):
                if seen == text:
                    del accepted[i]
                    st = self.stats[slot]
                    st.accepted -= 1
                    st.rejected["cross_label_conflict"] += 1
                    self._results_tx()
                    self.store.withdraw_example(
                        label, slot.language, text, "cross_label_conflict",
                        f"also generated under '{newcomer.label}'")
                    return

    def _reject(self, job: Job, text: str, reason: str, detail: str, key: str) -> None:
        self.stats[job.slot].rejected[reason] += 1
        self._results_tx()
        self.store.add_reject(job.label, job.language, text, reason, detail, key)

    def _notify(self, event: str) -> None:
        if self.progress is not None:
            self.progress(self, event)

    def activity(self) -> str:
        """What the run waits for now, in a few words ("" when nothing is slow)."""
        if self._interrupted:
            return (f"stopping: storing the answers in flight (at most "
                    f"{self.interrupt_grace:g} s; Ctrl-C again quits at once)")
        activity = getattr(self.backend, "activity", None)
        return str(activity()) if callable(activity) else ""

    def interrupt(self) -> None:
        """Stop sending, keep the answers in flight for a grace period, then raise
        :class:`RunInterrupted` from :meth:`run` (what the first Ctrl-C does)."""
        if self._interrupted:
            return
        self._interrupted = True
        if self._main is not None:
            self._main.cancel()

    async def run(self) -> RunResult:
        """Generate until every quota is filled or the attempt limit or budget is reached."""
        loop = asyncio.get_running_loop()
        previous = None
        if threading.current_thread() is threading.main_thread():
            def on_sigint(signum: int, frame: Any) -> None:
                if self._interrupted:  # the second Ctrl-C: no more waiting
                    os.write(2, f"\n{INTERRUPTED} (stopped at once)\n".encode())
                    os._exit(130)
                loop.call_soon_threadsafe(self.interrupt)

            previous = signal.signal(signal.SIGINT, on_sigint)
        try:
            with _fewer_collections():
                return await self._run()
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)

    async def _tick(self) -> None:
        """Refresh the progress display while nothing else does (waits, retries)."""
        while True:
            await asyncio.sleep(1.0)
            self._notify("tick")

    async def _stop_sending(self) -> None:
        """After Ctrl-C: send nothing more, give the answers in flight a grace period."""
        self._pending.clear()
        self.backend.cancel_queued()
        for jk in list(self._parked):  # waiting for a retry: nothing paid, nothing lost
            self._sending[jk][0].cancel()
        self._notify("interrupted")
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=self.interrupt_grace)
        for task in list(self._tasks):
            task.cancel()

    async def _run(self) -> RunResult:
        start = time.perf_counter()
        self.store.reset_results()
        self.store.set_meta("recipe", self.recipe.model_dump(mode="json", by_alias=True))
        self.result.usage = Usage()
        self._skip_keys = self.store.skipped_keys()
        # one request per call, and the backend says which are sent and which wait
        self._tracking = self.batch_size == 1 and self.backend.reports_request_state
        if self._tracking:
            self.backend.on_request_state = self._on_request_state
        ticker = asyncio.create_task(self._tick()) if self.progress is not None else None
        self._main = asyncio.current_task()
        interrupted = False
        if self._interrupted and self._main is not None:  # Ctrl-C before the run began
            self._main.cancel()
        try:
            while True:
                active = [s for s in self.slots
                          if not self.stats[s].full and self._round < self._allowed(s)]
                if not active:
                    break
                for slot in self.slots:
                    st = self.stats[slot]
                    if st.full or self._round >= self._allowed(slot):
                        continue
                    self._lookahead()
                    if (slot, self._round) not in self._futures:
                        self._dispatch(self.planner.job(slot, self._round))
                    job = self._jobs.pop((slot, self._round))
                    try:
                        completion, key = await self._completion(slot, self._round)
                    except GenerationError as exc:
                        st.jobs += 1
                        self._reject(job, exc.last_output or "", "generation_failed", str(exc), "")
                        continue
                    if completion is _SKIPPED:
                        continue
                    await self._process(job, completion, key)
                    if self._tracking:
                        self._withdraw_unneeded(slot)
                    self._notify("processed")
                self._round += 1
        except BudgetExceeded as exc:
            self.result.stopped = str(exc)
        except asyncio.CancelledError:
            if not self._interrupted:
                for task in list(self._tasks):
                    task.cancel()
                raise
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()  # handled: later awaits here must not see it again
            self._main = None
            await self._stop_sending()
            interrupted = True
        except BaseException:
            for task in list(self._tasks):
                task.cancel()
            raise
        finally:
            self._main = None
            if ticker is not None:
                ticker.cancel()
            self.backend.on_request_state = None
            try:
                self._commit_results()
            except StoreError as exc:
                self._failure = self._failure or exc
            self._pending.clear()  # waiting for budget: never sent
            # requests sent ahead and still in flight are paid for: wait and store them
            # (after an error they were cancelled above); those not sent yet are dropped
            self.backend.cancel_queued()
            for jk in list(self._parked):  # waiting for a retry: nothing paid, nothing needed
                self._sending[jk][0].cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            self._store_completions()
            for fut in self._futures.values():
                if not fut.done():
                    fut.cancel()
                elif not fut.cancelled():
                    fut.exception()  # retrieved: no "never retrieved" warnings
            if self._owns_backend:
                await self.backend.aclose()
            self.result.seconds = time.perf_counter() - start
            self.result.rule_stats = self.gate.stats()
            if self._failure is None:
                self._save_summary()
        if self._failure is not None:  # e.g. the last answers could not be stored
            raise self._failure
        if interrupted:
            raise RunInterrupted(self.store.completion_count())
        return self.result

    def _save_summary(self) -> None:
        self.store.set_meta("summary", {
            "slots": {str(k): {"target": v.target, "accepted": v.accepted,
                               "candidates": v.candidates, "jobs": v.jobs,
                               "rejected": dict(v.rejected),
                               "prompt_tokens": v.usage.prompt_tokens,
                               "completion_tokens": v.usage.completion_tokens,
                               "cost": self.cost(v.usage)}
                      for k, v in self.stats.items()},
            "sent": self.result.sent, "cached": self.result.cached,
            "replaced": self.result.replaced, "withdrawn": self.result.withdrawn,
            "prompt_tokens": self.store.usage().prompt_tokens,
            "completion_tokens": self.store.usage().completion_tokens,
            "cost": self.cost(self.store.usage()),
            "stopped": self.result.stopped, "rules": self.result.rule_stats,
            "model": self.backend.model_name, "backend": self.backend.name,
            "backend_stats": dict(getattr(self.backend, "stats", {})),
        })
