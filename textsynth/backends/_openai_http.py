"""The hot path of the openai backend: one pool of keep-alive connections, JSON in and out.

The ``openai`` SDK builds a pydantic model and an httpx request per call, which
costs more CPU than the request itself on a fast endpoint; this client sends the
same ``/chat/completions`` body (or a ``/completions`` body for a document to
continue) through :class:`~textsynth.backends._http1.HTTPPool` (``http_client:
httptools``, the default) or :class:`~textsynth.backends._aiohttp.AiohttpPool`
(``http_client: aiohttp``), which answer and fail alike, and reads the answer with
:func:`json.loads`. Retries (tenacity), flow control
(:class:`~textsynth.ratelimit.RateLimiter`) and the translation of transport
errors into the textsynth error tree all happen here.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_random_exponential
from yarl import URL

from textsynth._json import to_json
from textsynth.backends._http1 import BodyTooLarge, ConnectFailed, ConnectionBroken, HTTPPool
from textsynth.errors import (
    BackendError,
    BackendResponseError,
    BackendUnavailable,
    RateLimited,
)
from textsynth.ratelimit import RateLimiter
from textsynth.redact import LOG_FILTER, redact_text

if TYPE_CHECKING:  # aiohttp is imported only when http_client is aiohttp: 0.1 s of start-up
    from textsynth.backends._aiohttp import AiohttpPool

__all__ = ["ChatClient", "RetryPolicy", "chat_url", "endpoint_url", "parse_retry_after",
           "timed_out"]

log = logging.getLogger("textsynth.backends.openai")
log.addFilter(LOG_FILTER)

StateHook = Callable[[str], None]


@dataclass(frozen=True)
class RetryPolicy:
    """Transport retries: how many, and exponential backoff with full jitter."""

    max_retries: int = 6
    backoff: float = 0.5
    max_backoff: float = 30.0
    max_retry_after: float = 60.0  # a server's Retry-After is obeyed up to this long
    max_timeouts: int = 1  # retries after a timeout (a server that hangs hangs again)


def endpoint_url(base_url: str, path: str) -> URL:
    """``{base_url}/{path}``, keeping a query string (``?api-version=``) a query."""
    url = URL(base_url)
    return url.with_path(url.path.rstrip("/") + "/" + path, keep_query=True)


def chat_url(base_url: str) -> URL:
    """``{base_url}/chat/completions``."""
    return endpoint_url(base_url, "chat/completions")


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("Retry-After") or headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, RateLimited | BackendUnavailable):
        return True
    if isinstance(exc, BackendResponseError):
        # 5xx, request timeout, conflict; 200 with a body that is not a completion
        return exc.status is None or exc.status >= 500 or exc.status in (200, 408, 409)
    return False


def _error_message(raw: bytes) -> str:
    """The server's error message, short, with secrets it may echo masked."""
    try:
        data = json.loads(raw)
        err = data.get("error", data) if isinstance(data, dict) else data
        msg = err.get("message") or err.get("detail") if isinstance(err, dict) else err
        if msg:
            return redact_text(str(msg)[:300])
    except ValueError:
        pass
    return redact_text(raw[:300].decode("utf-8", "replace").strip()) or "(empty body)"


def _body(raw: bytes) -> str:
    return redact_text(raw[:2000].decode("utf-8", "replace"))


def timed_out(exc: BaseException) -> bool:
    """Whether a timeout is among the causes of ``exc``."""
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, TimeoutError):
        cause = cause.__cause__
    return cause is not None


def _why(exc: BaseException | None) -> str:
    """A failure in two or three words, for the progress display."""
    if isinstance(exc, RateLimited):
        return "429"
    if isinstance(exc, BackendResponseError):
        return "bad answer" if exc.status in (None, 200) else str(exc.status)
    if exc is not None and timed_out(exc):
        return "no answer"
    return "connection failed"


def _gave_up(exc: BackendError, attempts: int, cap: float) -> BackendError:
    asked = ""
    if isinstance(exc, RateLimited) and exc.retry_after is not None and exc.retry_after > cap:
        asked = (f"; the server asked to wait {exc.retry_after:g} s, more than "
                 f"max_retry_after ({cap:g} s)")
    note = f"{exc} (gave up after {attempts} attempts{asked}; run again to resume)"
    if isinstance(exc, RateLimited):
        return RateLimited(note, exc.retry_after, exc.body)
    if isinstance(exc, BackendResponseError):
        return BackendResponseError(note, exc.status, exc.body)
    return type(exc)(note)


class ChatClient:
    """Sends chat-completion bodies to ``{base_url}/chat/completions``, and text-completion
    bodies (``complete(..., text=True)``: a document to continue) to ``{base_url}/completions``.

    Every wait is visible: :meth:`activity` says how many requests wait for a
    retry (and why) and how long the oldest request on the wire has waited for
    its answer. Answers larger than ``max_body`` bytes are not read (a server
    streaming gigabytes cannot fill memory): they count as a bad answer.
    """

    def __init__(
        self,
        base_url: str,
        headers: Mapping[str, str],
        limiter: RateLimiter,
        *,
        timeout: float = 60.0,
        connect_timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        max_body: int = 8 * 1024 * 1024,
        http_client: str = "httptools",
    ):
        if http_client not in ("httptools", "aiohttp"):
            raise ValueError(f"http_client must be httptools or aiohttp, not {http_client!r}")
        self.base_url = base_url.rstrip("/")
        self.url = chat_url(self.base_url)
        self.text_url = endpoint_url(self.base_url, "completions")
        # what messages show: no user, password or query (they may hold a key)
        self.shown = str(URL(self.base_url).with_user(None).with_query(None))
        self.url_shown = f"{self.shown}/chat/completions"
        self._headers = {"Content-Type": "application/json", **headers}
        self.limiter = limiter
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.retry = retry or RetryPolicy()
        self.max_body = max_body
        self.stats: Counter[str] = Counter()
        self.http_client = http_client
        self._pool: HTTPPool | AiohttpPool | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._jitter = wait_random_exponential(multiplier=self.retry.backoff,
                                               max=self.retry.max_backoff)
        # per call of complete(): when its attempt went on the wire / until when it waits
        self._on_wire: dict[int, float] = {}
        self._waiting: dict[int, tuple[float, str]] = {}

    # -- connections ------------------------------------------------------------------
    def _get_pool(self) -> HTTPPool | AiohttpPool:
        loop = asyncio.get_running_loop()
        if self._pool is None or self._pool.closed or self._loop is not loop:
            make: type[HTTPPool] | type[AiohttpPool] = HTTPPool
            if self.http_client == "aiohttp":  # imported only when asked for
                from textsynth.backends._aiohttp import AiohttpPool
                make = AiohttpPool
            self._pool = make(self._headers, limit=self.limiter.max_concurrency + 8,
                              connect_timeout=self.connect_timeout, keepalive=30,
                              max_body=self.max_body)
            self._loop = loop
        return self._pool

    async def aclose(self) -> None:
        if self._pool is not None and not self._pool.closed:
            if self._loop is asyncio.get_running_loop():
                await self._pool.close()
            self._pool = None

    # -- what the client waits for -----------------------------------------------------
    def activity(self, now: float | None = None) -> str:
        """What the requests wait for, in a few words ("" when nothing is slow).

        >>> client.activity()  # doctest: +SKIP
        'waiting 42 s for retry (429), 3 requests; waiting for server answer (12 s)'
        """
        now = time.monotonic() if now is None else now
        parts = []
        if self._waiting:
            until = max(u for u, _ in self._waiting.values())
            reasons = Counter(w for _, w in self._waiting.values())
            many = f", {len(self._waiting)} requests" if len(self._waiting) > 1 else ""
            label = "/".join(r for r, _ in reasons.most_common(2))
            parts.append(f"waiting {max(1, math.ceil(until - now))} s for retry ({label}){many}")
        if self._on_wire:
            oldest = now - min(self._on_wire.values())
            if oldest >= 5:
                parts.append(f"waiting for server answer ({oldest:.0f} s)")
        return "; ".join(parts)

    # -- one attempt ---------------------------------------------------------------------
    def _too_large(self, status: int) -> BackendResponseError:
        self.stats["too_large"] += 1
        return BackendResponseError(
            f"{self.shown} sent an answer larger than {self.max_body:,} bytes "
            "(backend.options.max_response_bytes); it was not read",
            status if status >= 500 else 200)

    async def _post(self, data: bytes, text: bool = False) -> dict[str, Any]:
        pool = self._get_pool()
        try:
            resp = await pool.post(self.text_url if text else self.url, data, self.timeout)
        except TimeoutError as exc:
            raise BackendUnavailable(
                f"no answer from {self.shown} within {self.timeout:g} s "
                "(backend.options.timeout)") from exc
        except ConnectFailed as exc:
            raise BackendUnavailable(f"cannot connect to {self.shown}: {exc}") from exc
        except ConnectionBroken as exc:
            reason = redact_text(str(exc)) or type(exc).__name__
            raise BackendUnavailable(f"the connection to {self.shown} broke: {reason}") from exc
        except BodyTooLarge as exc:
            raise self._too_large(exc.status) from None
        raw = resp.body
        status = resp.status
        if status == 429:
            raise RateLimited(f"{self.shown} is rate limiting (429): {_error_message(raw)}",
                              parse_retry_after(resp.headers), _body(raw))
        return self._answer(status, raw, text)

    def _answer(self, status: int, raw: bytes, text: bool) -> dict[str, Any]:
        """The parsed answer, or the error its status or body means."""
        if status >= 400:
            raise BackendResponseError(
                f"{self.shown} answered {status}: {_error_message(raw)}", status, _body(raw))
        try:
            answer = json.loads(raw)
        except ValueError:
            answer = None
        if not isinstance(answer, dict) or not isinstance(answer.get("choices"), list) \
                or not answer["choices"]:
            kind = "text completion" if text else "chat completion"
            raise BackendResponseError(f"{self.shown} answered with something that is not "
                                       f"a {kind}: {_body(raw[:120])!r}", 200)
        return answer

    async def _attempt(self, data: bytes, tokens: int, retry: bool,
                       state: StateHook | None = None, call: int = 0,
                       text: bool = False) -> dict[str, Any]:
        await self.limiter.acquire(tokens, priority=retry)
        self._waiting.pop(call, None)
        if state is not None:
            state("sent")
        used: int | None = None
        self._on_wire[call] = time.monotonic()
        try:
            answer = await self._post(data, text)
            usage = answer.get("usage") or {}
            used = int(usage.get("total_tokens") or tokens)
            self.limiter.succeeded()
            return answer
        except RateLimited as exc:
            self.stats["rate_limited"] += 1
            self.limiter.rate_limited(self._capped(exc.retry_after))
            raise
        finally:
            self._on_wire.pop(call, None)
            self.limiter.release(tokens, used)

    # -- with retries --------------------------------------------------------------------
    def _capped(self, retry_after: float | None) -> float | None:
        if retry_after is None:
            return None
        if retry_after > self.retry.max_retry_after:
            self.stats["retry_after_capped"] += 1
        return min(retry_after, self.retry.max_retry_after)

    def _wait(self, state: RetryCallState) -> float:
        wait = self._jitter(state)
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RateLimited) and exc.retry_after is not None:
            wait = max(wait, min(exc.retry_after, self.retry.max_retry_after))
        return wait

    def _before_sleep(self, retry: RetryCallState, state: StateHook | None, call: int) -> None:
        self.stats["retries"] += 1
        exc = retry.outcome.exception() if retry.outcome else None
        sleep = retry.next_action.sleep if retry.next_action else 0.0
        self._waiting[call] = (time.monotonic() + sleep, _why(exc))
        log.debug("retrying in %.1f s after %s (attempt %d)", sleep, exc, retry.attempt_number)
        if state is not None:
            state("waiting")

    async def complete(self, body: Mapping[str, Any], tokens: int = 0,
                       state: StateHook | None = None, *, text: bool = False
                       ) -> tuple[dict[str, Any], int]:
        """POST one body; returns the answer and the number of attempts it took.

        ``text``: the body is a text completion (``prompt``), sent to ``/completions``.

        Retries 429 (waiting as the server asks, up to ``max_retry_after``), 5xx,
        dropped connections and malformed or oversized answers, up to
        ``max_retries`` times, and timeouts up to ``max_timeouts`` times; then
        raises the last error, saying how often it tried.
        ``state("sent")`` is called when an attempt goes on the wire and
        ``state("waiting")`` before each wait for a retry (the call may be
        cancelled before the first and during the second: nothing is in flight).
        """
        data = to_json(body).encode()
        self.stats["requests"] += 1
        call = id(data)
        try:  # most requests succeed at once: keep tenacity off the hot path
            return await self._attempt(data, tokens, False, state, call, text), 1
        except BackendError as exc:
            if not _retryable(exc) or self.retry.max_retries == 0 or \
                    (timed_out(exc) and self.retry.max_timeouts == 0):
                raise
            first: BackendError | None = exc
        attempts = 1
        timeouts = 0

        def retryable(exc: BaseException) -> bool:
            nonlocal timeouts
            if timed_out(exc):
                timeouts += 1
                return timeouts <= self.retry.max_timeouts
            return _retryable(exc)

        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(self.retry.max_retries + 1), wait=self._wait,
                retry=retry_if_exception(retryable),
                before_sleep=lambda retry: self._before_sleep(retry, state, call), reraise=True,
            ):
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    if first is not None:  # replay the first failure so tenacity waits
                        failed, first = first, None
                        raise failed
                    answer = await self._attempt(data, tokens, True, state, call, text)
        except BackendError as exc:
            if _retryable(exc):
                self.stats["gave_up"] += 1
                raise _gave_up(exc, attempts, self.retry.max_retry_after) from exc
            raise
        finally:
            self._waiting.pop(call, None)
        return answer, attempts
