"""The generation loop: jobs -> requests -> completions -> quality gate -> store.

Completions are *processed* in a fixed order, round by round (job 0 of every
label, then job 1 ...), whatever order they arrive in. Requests are sent ahead of
that order, up to the backend's batch size times its concurrency, so the
backend stays busy; because processing order is fixed, the same recipe, seed and
deterministic backend give the same dataset, and a resumed run gives the same
dataset as a clean one.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from textsynth.backends import Backend, create_backend
from textsynth.backends.base import Completion, Request, Usage
from textsynth.errors import BudgetExceeded, GenerationError
from textsynth.languages import language_name
from textsynth.plan import Job, Planner, Slot
from textsynth.quality import QualityGate, build_gate
from textsynth.recipe import Recipe
from textsynth.schemas import Example, OutputSchema, Parsed, load_schema
from textsynth.store import Store
from textsynth.templates import PromptTemplate

__all__ = ["Engine", "RunResult", "SlotStats", "language_name"]

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


class Engine:
    """Fills every label's quota from a recipe, resuming from the store.

    >>> engine = Engine(recipe, backend=FakeBackend(responses=['["hi"]']))  # doctest: +SKIP
    >>> result = asyncio.run(engine.run())  # doctest: +SKIP
    """

    def __init__(self, recipe: Recipe, backend: Backend | None = None,
                 store: Store | None = None, progress: ProgressHook | None = None,
                 gate: QualityGate | None = None):
        self.recipe = recipe
        self.template = PromptTemplate.load(recipe.template, recipe.base_dir)
        self.schema: OutputSchema = load_schema(recipe.output_schema)
        self.planner = Planner(recipe)
        self.backend = backend or create_backend(recipe.backend.type, recipe.backend.options)
        self.store = store or Store.in_dir(recipe.output_dir)
        self.gate = gate or build_gate(recipe, self.backend)
        self.progress = progress
        gen = recipe.generation
        self.batch_size = gen.batch_size or self.backend.batch_size
        self.concurrency = gen.concurrency or self.backend.max_concurrency
        self.window = self.batch_size * (self.concurrency + 1)
        self.slots = self.planner.slots
        self.stats = {s: SlotStats(recipe.per_label) for s in self.slots}
        self.result = RunResult(self.stats)
        # per slot: accepted texts with the round they came from ("do not repeat" lists)
        self._accepted: dict[Slot, list[tuple[int, str]]] = {s: [] for s in self.slots}
        self._lag = max(1, math.ceil(self.window / max(1, len(self.slots))))
        self._futures: dict[tuple[Slot, int], asyncio.Future[Completion]] = {}
        self._keys: dict[tuple[Slot, int], str] = {}
        self._queue: list[tuple[Job, Request, str, asyncio.Future[Completion]]] = []
        self._sem = asyncio.Semaphore(self.concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._round = 0
        self._seq = 0
        self._inflight: Counter[Slot] = Counter()
        self._dispatched: dict[Slot, int] = dict.fromkeys(self.slots, 0)

    # -- rendering -----------------------------------------------------------------
    def context(self, job: Job) -> dict[str, Any]:
        """Everything a template can use for one job."""
        recipe = self.recipe
        spec = recipe.labels[job.label]
        pool = [text for rnd, text in self._accepted[job.slot] if rnd < job.index - self._lag]
        rng = random.Random(job.seed)
        avoid = rng.sample(pool, min(len(pool), recipe.generation.avoid))
        return {
            "task": recipe.description,
            "label": job.label,
            "label_name": job.label.replace("_", " "),
            "label_description": spec.description,
            "labels": {name: s.description for name, s in recipe.labels.items()},
            "language": job.language,
            "language_name": language_name(job.language),
            "attributes": job.attributes,
            "examples": job.fewshot,
            "avoid": avoid,
            "n": recipe.generation.examples_per_request,
            "slots": job.slot_values,
            "slot_types": recipe.slots,
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
            metadata={"slot": str(job.slot), "index": job.index},
        )

    def check(self) -> None:
        """Render the first prompt of every label, so template errors surface before any
        model is loaded or request sent."""
        for slot in self.slots:
            self.request_for(self.planner.job(slot, 0))

    # -- sending -------------------------------------------------------------------
    def _budget_left(self) -> bool:
        budget = self.recipe.budget
        used = self.result.usage
        if budget.max_tokens is not None and used.total_tokens >= budget.max_tokens:
            return False
        return budget.max_cost is None or self.cost(used) < budget.max_cost

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
        self._inflight[job.slot] += 1
        self._dispatched[job.slot] = max(self._dispatched[job.slot], job.index + 1)
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
        if not self._queue:
            return
        if not self._budget_left():
            stopped = BudgetExceeded("the run's budget is spent; raise budget.max_tokens or "
                                     "budget.max_cost and run again to continue")
            for _, _, _, fut in self._queue:
                fut.set_exception(stopped)
            self._queue = []
            return
        batch, self._queue = self._queue, []
        task = asyncio.create_task(self._send(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(
        self, batch: list[tuple[Job, Request, str, asyncio.Future[Completion]]]
    ) -> None:
        async with self._sem:
            try:
                completions = await self.backend.generate([r for _, r, _, _ in batch])
            except Exception as exc:  # handed to whoever waits on these jobs
                for *_, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                return
        for (job, request, key, fut), completion in zip(batch, completions, strict=True):
            self.store.put_completion(key, str(job.slot), job.index, request, completion)
            self.result.sent += 1
            self.result.usage = self.result.usage + completion.usage
            if not fut.done():
                fut.set_result(completion)
        self._notify("sent")

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
        """Send jobs ahead of the processing order while the window has room."""
        inflight = sum(self._inflight.values())
        rnd = self._round
        limit = self._round + self._lag  # "avoid" lists need rounds up to index - lag processed
        while inflight < self.window and rnd <= limit:
            progressed = False
            for slot in self.slots:
                if inflight >= self.window:
                    break
                st = self.stats[slot]
                if rnd >= self.recipe.max_attempts or st.full or (slot, rnd) in self._futures:
                    continue
                if rnd < self._dispatched[slot] or not self._needs_more(slot):
                    continue
                self._dispatch(self.planner.job(slot, rnd))
                inflight += 1
                progressed = True
            if not progressed:
                rnd += 1
        self._flush()

    # -- processing ----------------------------------------------------------------
    async def _completion(self, slot: Slot, index: int) -> tuple[Completion, str]:
        if (slot, index) not in self._futures:
            self._dispatch(self.planner.job(slot, index))
        if self._queue and not self._futures[(slot, index)].done():
            self._flush()
        future = self._futures.pop((slot, index))
        key = self._keys.pop((slot, index))
        try:
            return await future, key
        finally:
            self._inflight[slot] -= 1

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
                    self.store.withdraw_example(
                        label, slot.language, text, "cross_label_conflict",
                        f"also generated under '{newcomer.label}'")
                    return

    def _reject(self, job: Job, text: str, reason: str, detail: str, key: str) -> None:
        self.stats[job.slot].rejected[reason] += 1
        self.store.add_reject(job.label, job.language, text, reason, detail, key)

    def _notify(self, event: str) -> None:
        if self.progress is not None:
            self.progress(self, event)

    async def run(self) -> RunResult:
        """Generate until every quota is filled or the attempt limit or budget is reached."""
        start = time.perf_counter()
        self.store.reset_results()
        self.store.set_meta("recipe", self.recipe.model_dump(mode="json", by_alias=True))
        self.result.usage = Usage()
        try:
            while True:
                active = [s for s in self.slots
                          if not self.stats[s].full and self._round < self.recipe.max_attempts]
                if not active:
                    break
                for slot in self.slots:
                    st = self.stats[slot]
                    if st.full or self._round >= self.recipe.max_attempts:
                        continue
                    self._lookahead()
                    job = self.planner.job(slot, self._round)
                    try:
                        completion, key = await self._completion(slot, self._round)
                    except GenerationError as exc:
                        st.jobs += 1
                        self._reject(job, exc.last_output or "", "generation_failed", str(exc), "")
                        continue
                    await self._process(job, completion, key)
                    self._notify("processed")
                self._round += 1
        except BudgetExceeded as exc:
            self.result.stopped = str(exc)
        except BaseException:
            for task in list(self._tasks):
                task.cancel()
            raise
        finally:
            # requests sent ahead and still in flight are paid for: wait and store them
            # (after an error they were cancelled above)
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            for fut in self._futures.values():
                if not fut.done():
                    fut.cancel()
                elif not fut.cancelled():
                    fut.exception()  # retrieved: no "never retrieved" warnings
            self.result.seconds = time.perf_counter() - start
            self.result.rule_stats = self.gate.stats()
            self._save_summary()
        return self.result

    def _save_summary(self) -> None:
        self.store.set_meta("summary", {
            "slots": {str(k): {"target": v.target, "accepted": v.accepted,
                               "candidates": v.candidates, "jobs": v.jobs,
                               "rejected": dict(v.rejected),
                               "prompt_tokens": v.usage.prompt_tokens,
                               "completion_tokens": v.usage.completion_tokens}
                      for k, v in self.stats.items()},
            "sent": self.result.sent, "cached": self.result.cached,
            "prompt_tokens": self.store.usage().prompt_tokens,
            "completion_tokens": self.store.usage().completion_tokens,
            "cost": self.cost(self.store.usage()),
            "stopped": self.result.stopped, "rules": self.result.rule_stats,
            "model": self.backend.model_name, "backend": self.backend.name,
        })
