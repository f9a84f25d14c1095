"""A fleet of endpoints as one backend: ``base_url`` given as a list.

Each endpoint gets its own backend instance (its own connections, retries and rate
limiter: ``requests_per_minute`` and ``tokens_per_minute`` apply per endpoint). A call
goes to the endpoint in rotation with the fewest requests in flight. An endpoint that
fails a call (unreachable after its own retries, or a 5xx) leaves the rotation for
``cooldown`` seconds and the call goes to another endpoint: nothing was paid for it.
After the cooldown one call probes it; a success puts it back in rotation, a failure
doubles its cooldown (up to ``max_cooldown``). When every endpoint is out, the call
waits for the first cooldown to end and probes that one; after ``len(endpoints)``
failures in a row for one call its last error ends the run, as with one endpoint.

The request key does not name the endpoint, so any endpoint's answer serves the
cache, and resume works across a changed fleet.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from textsynth.backends.base import Backend, Completion, Request
from textsynth.errors import BackendError, BackendResponseError, BackendUnavailable

__all__ = ["EndpointPool"]


@dataclass
class _Endpoint:
    backend: Backend
    inflight: int = 0
    down_until: float = 0.0  # out of rotation until then (0: in rotation)
    cooldown: float = 0.0
    probing: bool = False


class EndpointPool(Backend):
    """Balances calls over several backends of one kind by load, sidelining failing ones."""


    def __init__(self, backends: Sequence[Backend], cooldown: float = 5.0,
                 max_cooldown: float = 120.0) -> None:
        if not backends:
            raise ValueError("an endpoint pool needs at least one backend")
        first = backends[0]
        super().__init__(first.options)
        self.name = first.name
        self.endpoints = [_Endpoint(b) for b in backends]
        self.base_cooldown = cooldown
        self.max_cooldown = max_cooldown
        self.stats: Counter[str] = Counter()

    @property
    def model_name(self) -> str:
        return self.endpoints[0].backend.model_name

    @property
    def batch_size(self) -> int:
        return self.endpoints[0].backend.batch_size

    @property
    def max_concurrency(self) -> int:
        return sum(e.backend.max_concurrency for e in self.endpoints)

    def activity(self) -> str:
        """What the fleet waits for: each endpoint's wait, once (they often say the same)."""
        return "; ".join(dict.fromkeys(a for a in (e.backend.activity()
                                                    for e in self.endpoints) if a))

    def _pick(self, tried: set[int]) -> tuple[int, float]:
        """The endpoint for the next call, and how long to wait before calling it."""
        now = time.monotonic()
        live = [i for i, e in enumerate(self.endpoints)
                if i not in tried and e.down_until <= now and not e.probing]
        if live:
            return min(live, key=lambda i: self.endpoints[i].inflight), 0.0
        waiting = [i for i in range(len(self.endpoints)) if i not in tried] or \
            list(range(len(self.endpoints)))
        soonest = min(waiting, key=lambda i: self.endpoints[i].down_until)
        return soonest, max(0.0, self.endpoints[soonest].down_until - now)

    async def generate(self, requests: Sequence[Request]) -> list[Completion]:
        tried: set[int] = set()
        while True:
            index, wait = self._pick(tried)
            if wait:
                await asyncio.sleep(wait)
            endpoint = self.endpoints[index]
            probe = endpoint.down_until > 0
            endpoint.probing = endpoint.probing or probe
            endpoint.inflight += len(requests)
            try:
                out = await endpoint.backend.generate(requests)
            except BackendError as exc:
                if not _endpoint_fault(exc):
                    raise
                self._sideline(endpoint, exc)
                tried.add(index)
                if len(tried) >= len(self.endpoints):
                    raise
                continue
            finally:
                endpoint.inflight -= len(requests)
                if probe:
                    endpoint.probing = False
            if endpoint.down_until:
                self.stats["endpoints_back"] += 1
            endpoint.down_until, endpoint.cooldown = 0.0, 0.0
            return out

    def _sideline(self, endpoint: _Endpoint, exc: BackendError) -> None:
        endpoint.cooldown = min(self.max_cooldown, endpoint.cooldown * 2 or self.base_cooldown)
        endpoint.down_until = time.monotonic() + endpoint.cooldown
        self.stats["endpoint_failures"] += 1

    def cancel_queued(self) -> None:
        for endpoint in self.endpoints:
            endpoint.backend.cancel_queued()

    async def aclose(self) -> None:
        await asyncio.gather(*(e.backend.aclose() for e in self.endpoints))


def _endpoint_fault(exc: BackendError) -> bool:
    """A failure of the endpoint, not of the request: another endpoint may answer."""
    if isinstance(exc, BackendUnavailable):
        return True
    return isinstance(exc, BackendResponseError) and (exc.status or 0) >= 500
