"""Flow control: in-flight bound, request and token pacing, shared slowdown after 429s."""

from __future__ import annotations

import asyncio

import pytest

from textsynth.backends._openai_http import parse_retry_after
from textsynth.ratelimit import RateLimiter, TokenBucket


async def _hold(limiter: RateLimiter, seconds: float, tokens: float = 0,
                log: list[int] | None = None) -> None:
    async with limiter.slot(tokens):
        if log is not None:
            log.append(limiter.inflight)
        await asyncio.sleep(seconds)


async def test_requests_in_flight_never_exceed_the_limit() -> None:
    limiter = RateLimiter(concurrency=5)
    seen: list[int] = []
    await asyncio.gather(*(_hold(limiter, 0.01, log=seen) for _ in range(40)))
    assert max(seen) == 5 and limiter.inflight == 0


class VirtualTime:
    """A clock that moves only when the limiter sleeps: waits are measured exactly."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)  # let the other tasks run, as a real sleep would


async def test_requests_per_minute_are_paced() -> None:
    clock = VirtualTime()
    limiter = RateLimiter(concurrency=100, requests_per_minute=1200, clock=clock,
                          sleep=clock.sleep)  # 20 a second
    await asyncio.gather(*(_hold(limiter, 0) for _ in range(40)))
    # one second's worth may go at once, the other 20 wait for the refill: 20 x 0.05 s
    assert clock.now == pytest.approx(1.0, abs=0.051)


async def test_tokens_per_minute_are_paced_and_corrected_by_real_usage() -> None:
    clock = VirtualTime()
    limiter = RateLimiter(concurrency=100, tokens_per_minute=6000, clock=clock,
                          sleep=clock.sleep)  # 100 tokens a second
    for _ in range(3):  # the estimate (100) says a second each, real use (10) is far less
        async with limiter.slot(100) as ticket:
            ticket.used(10)
    assert clock.now == 0  # no wait at all
    assert limiter.tokens is not None and limiter.tokens.level == pytest.approx(70, abs=1e-6)
    await asyncio.gather(*(_hold(limiter, 0, tokens=100) for _ in range(3)))
    # 70 left: the first goes at once (debt 30), the next after 0.3 s, the last 1 s later
    assert clock.now == pytest.approx(1.3, abs=1e-6)


async def test_a_429_cuts_the_limit_for_everyone_once_per_cooldown() -> None:
    limiter = RateLimiter(concurrency=100, cooldown=10)
    limiter.rate_limited(retry_after=1)
    assert limiter.limit == 75
    limiter.rate_limited(retry_after=1)  # same burst: no second cut
    assert limiter.limit == 75 and limiter.slowdowns == 1
    for _ in range(30):
        limiter.succeeded()
    assert limiter.limit == 100  # and it grows back with successes


async def test_the_cut_limit_holds_other_requests_back() -> None:
    limiter = RateLimiter(concurrency=4, decrease=0.5)
    limiter.rate_limited()
    seen: list[int] = []
    await asyncio.gather(*(_hold(limiter, 0.01, log=seen) for _ in range(10)))
    assert max(seen) == 2


async def test_a_long_retry_after_pauses_every_new_request() -> None:
    clock = VirtualTime()
    clock.now = 100.0
    limiter = RateLimiter(concurrency=10, pause_over=0.1, clock=clock, sleep=clock.sleep)
    limiter.rate_limited(retry_after=0.4)
    await _hold(limiter, 0)
    assert clock.now == pytest.approx(100.4)
    short = RateLimiter(concurrency=10, pause_over=1.0, clock=clock, sleep=clock.sleep)
    short.rate_limited(retry_after=0.4)  # under pause_over: only the one request waits
    await _hold(short, 0)
    assert clock.now == pytest.approx(100.4)


async def test_retries_go_before_new_requests() -> None:
    limiter = RateLimiter(concurrency=1)
    order: list[str] = []

    async def request(name: str, priority: bool) -> None:
        async with limiter.slot(priority=priority):
            order.append(name)
            await asyncio.sleep(0.01)

    first = asyncio.create_task(request("first", False))
    await asyncio.sleep(0)
    waiting = [asyncio.create_task(request(f"new{i}", False)) for i in range(3)]
    await asyncio.sleep(0)
    retry = asyncio.create_task(request("retry", True))
    await asyncio.gather(first, retry, *waiting)
    assert order[:2] == ["first", "retry"]


async def test_a_cancelled_waiter_gives_its_place_back() -> None:
    limiter = RateLimiter(concurrency=1)
    holder = asyncio.create_task(_hold(limiter, 0.05))
    await asyncio.sleep(0)
    waiter = asyncio.create_task(_hold(limiter, 0))
    await asyncio.sleep(0.01)
    waiter.cancel()
    await holder
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert limiter.inflight == 0
    await asyncio.wait_for(_hold(limiter, 0), 1)


def test_bucket_allows_a_debt_and_refills() -> None:
    now = [0.0]
    bucket = TokenBucket(60, clock=lambda: now[0])  # one a second
    assert bucket.delay() == 0
    bucket.take(3)
    assert bucket.delay() == pytest.approx(2, abs=1e-6)
    now[0] = 2.5
    assert bucket.delay() == 0


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        RateLimiter(concurrency=0)
    with pytest.raises(ValueError):
        TokenBucket(0)


@pytest.mark.parametrize(("headers", "seconds"), [
    ({"Retry-After": "2"}, 2.0),
    ({"Retry-After": "0.5", "retry-after-ms": "250"}, 0.25),
    ({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),
    ({"Retry-After": "soon"}, None),
    ({}, None),
])
def test_retry_after_header(headers: dict[str, str], seconds: float | None) -> None:
    assert parse_retry_after(headers) == seconds


def test_one_limiter_serves_successive_event_loops() -> None:
    limiter = RateLimiter(concurrency=2, requests_per_minute=6000)

    async def burst() -> None:
        await asyncio.wait_for(asyncio.gather(*(_hold(limiter, 0.001) for _ in range(6))), 5)

    for _ in range(2):  # e.g. a backend reused by two asyncio.run calls
        asyncio.run(burst())
    assert limiter.inflight == 0
