"""The hot path of the openai backend: one aiohttp session, JSON in and out.

The ``openai`` SDK builds a pydantic model and an httpx request per call, which
costs more CPU than the request itself on a fast endpoint; this client sends the
same ``/chat/completions`` body with one pooled aiohttp session and reads the
answer with :func:`json.loads`. Retries (tenacity), flow control
(:class:`~textsynth.ratelimit.RateLimiter`) and the translation of transport
errors into the textsynth error tree all happen here.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_random_exponential
from yarl import URL

from textsynth.errors import (
    BackendError,
    BackendResponseError,
    BackendUnavailable,
    RateLimited,
)
from textsynth.ratelimit import RateLimiter

__all__ = ["ChatClient", "RetryPolicy", "parse_retry_after", "sdk_error"]

log = logging.getLogger("textsynth.backends.openai")

StateHook = Callable[[str], None]


@dataclass(frozen=True)
class RetryPolicy:
    """Transport retries: how many, and exponential backoff with full jitter."""

    max_retries: int = 6
    backoff: float = 0.5
    max_backoff: float = 30.0


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("Retry-After")
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
    try:
        data = json.loads(raw)
        err = data.get("error", data) if isinstance(data, dict) else data
        msg = err.get("message") or err.get("detail") if isinstance(err, dict) else err
        if msg:
            return str(msg)[:300]
    except ValueError:
        pass
    return raw[:300].decode("utf-8", "replace").strip() or "(empty body)"


def _gave_up(exc: BackendError, attempts: int) -> BackendError:
    note = f"{exc} (gave up after {attempts} attempts; run again to resume)"
    if isinstance(exc, RateLimited):
        return RateLimited(note, exc.retry_after, exc.body)
    if isinstance(exc, BackendResponseError):
        return BackendResponseError(note, exc.status, exc.body)
    return type(exc)(note)


def sdk_error(exc: BackendError, url: str) -> Exception | None:
    """The ``openai`` SDK's exception for a failure of the lean client, or None.

    Only errors that end a run are translated (the SDK takes ~0.4 s to import):
    they leave the backend with the SDK's exception as their ``__cause__``, so code
    written against the SDK's error types still sees them.
    """
    try:
        import openai
        try:
            import httpx2 as http  # what recent SDKs use
        except ImportError:
            import httpx as http  # type: ignore[no-redef]
    except ImportError:
        return None
    request = http.Request("POST", url)
    if isinstance(exc, BackendUnavailable):
        cause: BaseException | None = exc
        while cause is not None and not isinstance(cause, TimeoutError):
            cause = cause.__cause__
        if cause is not None:
            return openai.APITimeoutError(request=request)
        return openai.APIConnectionError(message=str(exc), request=request)
    status = 429 if isinstance(exc, RateLimited) else getattr(exc, "status", None)
    if not isinstance(status, int) or status < 400:
        return None
    raw = getattr(exc, "body", "") or ""
    try:
        body: Any = json.loads(raw)
    except ValueError:
        body = raw or None
    data = body.get("error", body) if isinstance(body, dict) else body
    kinds: dict[int, type[openai.APIStatusError]] = {
        400: openai.BadRequestError, 401: openai.AuthenticationError,
        403: openai.PermissionDeniedError, 404: openai.NotFoundError,
        409: openai.ConflictError, 422: openai.UnprocessableEntityError,
        429: openai.RateLimitError}
    kind = kinds.get(status, openai.InternalServerError if status >= 500
                     else openai.APIStatusError)
    response = http.Response(status, request=request, content=raw.encode())
    return kind(str(exc), response=response, body=data)


class ChatClient:
    """Sends chat-completion bodies to ``{base_url}/chat/completions``."""

    def __init__(
        self,
        base_url: str,
        headers: Mapping[str, str],
        limiter: RateLimiter,
        *,
        timeout: float = 120.0,
        connect_timeout: float = 10.0,
        retry: RetryPolicy | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self.url = f"{self.base_url}/chat/completions"
        # what messages show: no user, password or query (they may hold a key)
        self.shown = str(URL(self.base_url).with_user(None).with_query(None))
        self.url_shown = f"{self.shown}/chat/completions"
        self._headers = {"Content-Type": "application/json", **headers}
        self.limiter = limiter
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.retry = retry or RetryPolicy()
        self.stats: Counter[str] = Counter()
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._jitter = wait_random_exponential(multiplier=self.retry.backoff,
                                               max=self.retry.max_backoff)

    # -- session ----------------------------------------------------------------------
    def _get_session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            connector = aiohttp.TCPConnector(limit=self.limiter.max_concurrency + 8,
                                             ttl_dns_cache=300, keepalive_timeout=30)
            timeout = aiohttp.ClientTimeout(total=self.timeout, sock_connect=self.connect_timeout)
            self._session = aiohttp.ClientSession(connector=connector, timeout=timeout,
                                                  headers=self._headers)
            self._loop = loop
        return self._session

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            if self._loop is asyncio.get_running_loop():
                await self._session.close()
            self._session = None

    # -- one attempt ---------------------------------------------------------------------
    async def _post(self, data: bytes) -> dict[str, Any]:
        session = self._get_session()
        try:
            async with session.post(self.url, data=data) as resp:
                raw = await resp.read()
                status = resp.status
                if status == 429:
                    after = parse_retry_after(resp.headers)
                    raise RateLimited(f"{self.shown} is rate limiting (429): "
                                      f"{_error_message(raw)}", after,
                                      raw[:2000].decode("utf-8", "replace"))
        except TimeoutError as exc:
            raise BackendUnavailable(
                f"no answer from {self.shown} within {self.timeout:g} s") from exc
        except aiohttp.ClientConnectorError as exc:
            reason = exc.os_error.strerror or str(exc.os_error) or str(exc)
            raise BackendUnavailable(f"cannot connect to {self.shown}: {reason}") from exc
        except aiohttp.ClientError as exc:
            raise BackendUnavailable(
                f"the connection to {self.shown} broke: {exc or type(exc).__name__}") from exc
        if status >= 400:
            raise BackendResponseError(
                f"{self.shown} answered {status}: {_error_message(raw)}", status,
                raw[:2000].decode("utf-8", "replace"))
        try:
            answer = json.loads(raw)
        except ValueError:
            answer = None
        if not isinstance(answer, dict) or not isinstance(answer.get("choices"), list) \
                or not answer["choices"]:
            raise BackendResponseError(f"{self.shown} answered with something that is not "
                                       f"a chat completion: {raw[:120]!r}", 200)
        return answer

    async def _attempt(self, data: bytes, tokens: int, retry: bool,
                       state: StateHook | None = None) -> dict[str, Any]:
        await self.limiter.acquire(tokens, priority=retry)
        if state is not None:
            state("sent")
        used: int | None = None
        try:
            answer = await self._post(data)
            usage = answer.get("usage") or {}
            used = int(usage.get("total_tokens") or tokens)
            self.limiter.succeeded()
            return answer
        except RateLimited as exc:
            self.stats["rate_limited"] += 1
            self.limiter.rate_limited(exc.retry_after)
            raise
        finally:
            self.limiter.release(tokens, used)

    # -- with retries --------------------------------------------------------------------
    def _wait(self, state: RetryCallState) -> float:
        wait = self._jitter(state)
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RateLimited) and exc.retry_after is not None:
            wait = max(wait, exc.retry_after)
        return wait

    def _before_sleep(self, retry: RetryCallState, state: StateHook | None) -> None:
        self.stats["retries"] += 1
        exc = retry.outcome.exception() if retry.outcome else None
        log.debug("retrying after %s (attempt %d)", exc, retry.attempt_number)
        if state is not None:
            state("waiting")

    async def complete(self, body: Mapping[str, Any], tokens: int = 0,
                       state: StateHook | None = None) -> tuple[dict[str, Any], int]:
        """POST one body; returns the answer and the number of attempts it took.

        Retries 429, 5xx, timeouts, dropped connections and malformed answers;
        after ``max_retries`` raises the last error, saying how often it tried.
        ``state("sent")`` is called when an attempt goes on the wire and
        ``state("waiting")`` before each wait for a retry (the call may be
        cancelled before the first and during the second: nothing is in flight).
        """
        data = json.dumps(body, ensure_ascii=False).encode()
        self.stats["requests"] += 1
        try:  # most requests succeed at once: keep tenacity off the hot path
            return await self._attempt(data, tokens, False, state), 1
        except BackendError as exc:
            if not _retryable(exc) or self.retry.max_retries == 0:
                raise
            first: BackendError | None = exc
        attempts = 1
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(self.retry.max_retries + 1), wait=self._wait,
                retry=retry_if_exception(_retryable),
                before_sleep=lambda retry: self._before_sleep(retry, state), reraise=True,
            ):
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    if first is not None:  # replay the first failure so tenacity waits
                        failed, first = first, None
                        raise failed
                    answer = await self._attempt(data, tokens, True, state)
        except BackendError as exc:
            if _retryable(exc):
                self.stats["gave_up"] += 1
                raise _gave_up(exc, attempts) from exc
            raise
        return answer, attempts
