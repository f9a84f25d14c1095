"""Several models as one backend: ``model`` given as a list.

Two models repeat each other less than each repeats itself, so a quota filled by both
throws fewer candidates away (on the README example a quarter fewer tokens a row, with
rows as natural: ``docs/quality.md``, "Two models, each before its tail"). Each model
gets its own backend instance with the recipe's other options; a job goes to the model
its index names (job ``i`` of a label to model ``i mod n``), so which model answers a
job depends on the recipe and the seed alone, not on timing, and a run is as
deterministic as its models are. The request key names every model of the list (see
:attr:`ModelMix.model_name`), so a run never reads a completion stored by a run of one
model of the list, and a resumed run reads each of its jobs' own completions back:
nothing is paid for twice.

Each completion records the model that wrote it (the ``model`` column of the exported
rows and the dataset card's list of models).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from textsynth.backends.base import Backend, Completion, Request, RequestEvents

__all__ = ["ModelMix"]


class ModelMix(Backend):
    """Sends each job to one of several backends, by the job's index."""

    def __init__(self, backends: Sequence[Backend]) -> None:
        if len(backends) < 2:
            raise ValueError("a model mixture needs at least two backends")
        first = backends[0]
        super().__init__(first.options)
        self.name = first.name
        self.backends = list(backends)
        self.reports_request_state = all(b.reports_request_state for b in backends)
        self.calls_run_to_the_end = any(b.calls_run_to_the_end for b in backends)
        self._ready: asyncio.Future[list[None]] | None = None

    @property
    def model_name(self) -> str:
        return "+".join(b.model_name for b in self.backends)

    @property
    def batch_size(self) -> int:
        return max(b.batch_size for b in self.backends)

    @property
    def max_concurrency(self) -> int:
        return sum(b.max_concurrency for b in self.backends)

    def activity(self) -> str:
        return "; ".join(a for a in (b.activity() for b in self.backends) if a)

    def route(self, request: Request) -> int:
        """Which backend answers ``request``: its job's index modulo their number (a
        request with no job, such as a judge's, by its seed)."""
        index = request.metadata.get("index")
        return (index if isinstance(index, int) else request.seed) % len(self.backends)

    async def generate(self, requests: Sequence[Request]) -> list[Completion]:
        return await self._fan_out(requests, None)

    async def generate_reporting(self, requests: Sequence[Request],
                                 on_state: RequestEvents) -> list[Completion]:
        return await self._fan_out(requests, on_state)

    async def ready(self, request: Request) -> None:
        """Every model gets ready (local ones load) before any is sent a request: a model
        that cannot answer this recipe's requests (a base model given chat messages)
        stops the run before the others have answered (and been paid for) anything."""
        ready = self._ready
        if ready is None or (not ready.done() and ready.get_loop() is not
                             asyncio.get_running_loop()):  # begun in a loop now gone
            ready = self._ready = asyncio.ensure_future(
                asyncio.gather(*(b.ready(request) for b in self.backends)))
        await asyncio.shield(ready)

    async def _fan_out(self, requests: Sequence[Request], on_state: RequestEvents | None
                       ) -> list[Completion]:
        if requests:
            await self.ready(requests[0])
        groups: dict[int, list[int]] = {}
        for position, request in enumerate(requests):
            groups.setdefault(self.route(request), []).append(position)

        async def call(which: int, positions: list[int]) -> list[Completion]:
            backend = self.backends[which]
            batch = [requests[p] for p in positions]
            if on_state is None:
                out = await backend.generate(batch)
            else:
                out = await backend.generate_reporting(batch, on_state)
            for completion in out:
                if not completion.model:
                    completion.model = backend.model_name
            return out

        answers = await asyncio.gather(*(call(w, ps) for w, ps in groups.items()))
        placed = {position: completion
                  for positions, out in zip(groups.values(), answers, strict=True)
                  for position, completion in zip(positions, out, strict=True)}
        return [placed[position] for position in range(len(requests))]

    def cancel_queued(self) -> None:
        for backend in self.backends:
            backend.cancel_queued()

    async def aclose(self) -> None:
        await asyncio.gather(*(b.aclose() for b in self.backends))
