"""Flow control shared by every request of one backend.

:class:`RateLimiter` bounds the requests in flight, paces them to a
requests-per-minute and a tokens-per-minute limit, and slows the whole run down
after a 429: the number of requests allowed in flight is cut (at most once per
cool-down) and grows back by one with every success, the way TCP shares a link.
A request that waits for a retry gives its place up while it sleeps and gets it
back ahead of new requests, so one slow retry does not stall the others.

>>> limiter = RateLimiter(concurrency=64, requests_per_minute=3000)
>>> async def call():  # doctest: +SKIP
...     async with limiter.slot(tokens=500) as slot:
...         ...  # send; then slot.used(tokens=412)
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

__all__ = ["RateLimiter", "TokenBucket"]

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class TokenBucket:
    """A bucket refilled at ``per_minute / 60`` a second, holding one second's worth.

    A take larger than what is left drives the level below zero (a debt), so a
    request bigger than the bucket still goes through and the next ones wait.
    """

    def __init__(self, per_minute: float, clock: Clock = time.monotonic):
        if per_minute <= 0:
            raise ValueError("a rate limit must be positive")
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate)
        self.level = self.capacity
        self._clock = clock
        self._stamp = clock()

    def _refill(self) -> None:
        now = self._clock()
        self.level = min(self.capacity, self.level + (now - self._stamp) * self.rate)
        self._stamp = now

    def delay(self) -> float:
        """Seconds until a take is allowed (0 when it is allowed now)."""
        self._refill()
        return 0.0 if self.level > 0 else (1e-9 - self.level) / self.rate

    def take(self, amount: float) -> None:
        self._refill()
        self.level -= amount

    def give(self, amount: float) -> None:
        """Return what was taken but not used (an estimate larger than the usage)."""
        self._refill()
        self.level = min(self.capacity, self.level + amount)


@dataclass
class _Ticket:
    tokens: float
    actual: float | None = None

    def used(self, tokens: float) -> None:
        """Report the tokens the request really used (corrects the estimate)."""
        self.actual = tokens


class RateLimiter:
    """In-flight bound, request and token pacing, and shared slowdown after 429s."""

    def __init__(
        self,
        concurrency: int,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        *,
        decrease: float = 0.75,
        cooldown: float = 1.0,
        pause_over: float = 5.0,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ):
        """``clock`` and ``sleep`` tell and pass the time (tests give a virtual clock)."""
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.max_concurrency = concurrency
        self.limit = float(concurrency)
        self.inflight = 0
        self.requests = TokenBucket(requests_per_minute, clock) if requests_per_minute else None
        self.tokens = TokenBucket(tokens_per_minute, clock) if tokens_per_minute else None
        self.decrease = decrease
        self.cooldown = cooldown
        self.pause_over = pause_over
        self.slowdowns = 0
        self._clock = clock
        self._sleep = sleep
        self._last_cut = -float("inf")
        self._pause_until = 0.0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._pacing: asyncio.Lock | None = None
        self._pacing_loop: asyncio.AbstractEventLoop | None = None

    # -- in flight --------------------------------------------------------------------
    def _has_room(self) -> bool:
        return self.inflight < max(1, int(self.limit))

    async def _enter(self, priority: bool) -> None:
        if self._has_room() and not self._waiters:
            self.inflight += 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if priority:
            self._waiters.appendleft(fut)
        else:
            self._waiters.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self._leave()  # we were given the place, then cancelled: hand it on
            elif fut in self._waiters:
                self._waiters.remove(fut)
            raise

    def _leave(self) -> None:
        self.inflight -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self._has_room():
            fut = self._waiters.popleft()
            if not fut.done():
                self.inflight += 1
                fut.set_result(None)

    def cancel_waiting(self) -> int:
        """Cancel every request still waiting for a place; returns how many."""
        waiting = [fut for fut in self._waiters if not fut.done()]
        self._waiters.clear()
        for fut in waiting:
            fut.cancel()
        return len(waiting)

    # -- pacing ---------------------------------------------------------------------------
    def _lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._pacing is None or self._pacing_loop is not loop:  # a lock serves one loop
            self._pacing, self._pacing_loop = asyncio.Lock(), loop
        return self._pacing

    async def _pace(self, tokens: float) -> None:
        if self.requests is None and self.tokens is None and self._pause_until <= self._clock():
            return
        async with self._lock():  # first come, first paced
            while True:
                wait = self._pause_until - self._clock()
                for bucket in (self.requests, self.tokens):
                    if bucket is not None:
                        wait = max(wait, bucket.delay())
                if wait <= 0:
                    break
                await self._sleep(wait)
            if self.requests is not None:
                self.requests.take(1)
            if self.tokens is not None:
                self.tokens.take(tokens)

    async def acquire(self, tokens: float = 0, *, priority: bool = False) -> None:
        """Take one place in flight for a request of about ``tokens`` tokens.

        ``priority`` puts the caller ahead of new requests (used by retries). Every
        ``acquire`` needs one :meth:`release`.
        """
        await self._enter(priority)
        try:
            await self._pace(tokens)
        except BaseException:
            self._leave()
            raise

    def release(self, tokens: float = 0, used: float | None = None) -> None:
        """Give the place back; ``used`` (the real token count) corrects the estimate."""
        if self.tokens is not None and used is not None:
            extra = tokens - used
            if extra > 0:
                self.tokens.give(extra)
            else:
                self.tokens.take(-extra)
        self._leave()

    @asynccontextmanager
    async def slot(self, tokens: float = 0, *, priority: bool = False) -> AsyncIterator[_Ticket]:
        """``async with limiter.slot(tokens) as ticket:`` :meth:`acquire` and :meth:`release`."""
        await self.acquire(tokens, priority=priority)
        ticket = _Ticket(tokens)
        try:
            yield ticket
        finally:
            self.release(tokens, ticket.actual)

    # -- feedback -------------------------------------------------------------------------
    def succeeded(self) -> None:
        """One success: allow one more request in flight, up to the maximum."""
        if self.limit < self.max_concurrency:
            self.limit = min(float(self.max_concurrency), self.limit + 1.0)
            self._wake()

    def rate_limited(self, retry_after: float | None = None) -> None:
        """A 429 arrived: cut the in-flight limit for everyone (once per cool-down).

        A long ``Retry-After`` (over ``pause_over`` seconds) also holds every new
        request back until it has passed: the server said it cannot take more.
        """
        now = self._clock()
        if now - self._last_cut >= self.cooldown:
            self._last_cut = now
            self.limit = max(1.0, self.limit * self.decrease)
            self.slowdowns += 1
        if retry_after is not None and retry_after > self.pause_over:
            self._pause_until = max(self._pause_until, now + retry_after)
