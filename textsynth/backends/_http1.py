"""A lean HTTP/1.1 client for the openai backend's hot path: POST a body, read the answer.

The openai backend sends one small JSON body and reads one JSON answer per request,
thousands of times a minute. aiohttp's general-purpose client (cookies, redirects,
tracing, streaming readers, per-request timers) costs about 0.17 ms of CPU a request on
2 cores; with the response parsed by ``httptools`` (llhttp, the parser uvicorn uses) on an
:class:`asyncio.Protocol` of its own, the same request costs about a third of that
(``benchmarks/driver.py``). What it keeps of a real client:

* a pool of keep-alive connections per host (idle ones closed after ``keepalive`` s),
  bounded by ``limit`` connections, TLS (the system's trust store) for ``https``;
* answers with ``Content-Length``, chunked, or read until the server closes; gzip
  and deflate bodies (``Accept-Encoding`` is sent, as browsers and aiohttp do);
* an answer larger than ``max_body`` bytes (before or after decompression) is not
  read further: :class:`BodyTooLarge`, and the connection is dropped;
* a request on a reused connection that the server had closed meanwhile (idle
  keep-alive connections are closed by uvicorn after 5 s) goes once more on a new
  connection when not a byte of an answer came back, as browsers do;
* errors: :class:`ConnectFailed` (no connection), :class:`ConnectionBroken` (the
  connection broke or the answer is not HTTP), :class:`TimeoutError` from the
  caller's deadline.

No proxies, cookies or redirects: the backend's aiohttp session used none of them either
(``trust_env`` off), and ``backend.options.http_client: aiohttp`` switches back to it.
"""

from __future__ import annotations

import asyncio
import math
import ssl
import zlib
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

import httptools
from yarl import URL

__all__ = ["BodyTooLarge", "ConnectFailed", "ConnectionBroken", "HTTPPool", "Response",
           "check_header"]


class ConnectionBroken(ConnectionError):
    """The connection closed or broke before a whole answer came, or the answer is not HTTP."""


class ConnectFailed(ConnectionError):
    """No connection could be opened (refused, unknown host, TLS handshake failed)."""


class BodyTooLarge(Exception):
    """The answer is larger than the limit; it was not read further."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes


def check_header(name: str, value: str) -> None:
    """A ValueError if a header would break the request (line breaks, bad characters)."""
    if not name or any(c in name for c in "\r\n:\0 \t") or not name.isascii():
        raise ValueError(f"HTTP header name {name!r} is not valid")
    if any(c in value for c in "\r\n\0"):
        raise ValueError(f"HTTP header {name!r} holds a line break")


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one request at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop, max_body: int) -> None:
        self.loop = loop
        self.max_body = max_body
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[Response] | None = None
        self.closed = False
        self.idle_since = 0.0
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.size = 0
        self.got_bytes = False
        self.headers_done = False
        self.keep_alive = True

    # -- asyncio.Protocol --------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # not an isinstance check: uvloop's transports (Ray actors run on uvloop) are
        # transports without being asyncio.Transport subclasses
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:  # also a callback's _Abort: failed already
            self._fail(ConnectionBroken(f"the answer is not valid HTTP ({exc})"))

    def eof_received(self) -> bool | None:
        return None  # close the transport: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        framed = "content-length" in self.headers or \
            "chunked" in self.headers.get("transfer-encoding", "")
        if self.headers_done and not framed and exc is None:  # read until the server closes
            self.keep_alive = False
            self.on_message_complete()
            return
        why = f": {exc}" if exc else ""
        self._fail(ConnectionBroken(f"the server closed the connection{why}"))

    # -- httptools callbacks -------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        self.headers[key] = f"{self.headers[key]}, {text}" if key in self.headers else text

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size > self.max_body:
            self._fail(BodyTooLarge(self.status))
            raise _Abort
        self.body.append(body)

    def on_message_complete(self) -> None:
        if 100 <= self.status < 200:  # an interim answer (100 Continue): the real one follows
            self._reset()
            return
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        body = self.body[0] if len(self.body) == 1 else b"".join(self.body)
        encoding = self.headers.get("content-encoding", "").strip().lower()
        if encoding in ("gzip", "deflate", "x-gzip"):
            try:
                body = _inflate(body, encoding, self.max_body)
            except BodyTooLarge:
                self._fail(BodyTooLarge(self.status))
                return
            except zlib.error as exc:
                self._fail(ConnectionBroken(f"the answer's {encoding} body is broken ({exc})"))
                return
        waiter.set_result(Response(self.status, self.headers, body))

    # -- the caller's side ---------------------------------------------------------------
    def _fail(self, exc: BaseException) -> None:
        self.keep_alive = False
        if self.transport is not None:
            self.transport.close()
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def send(self, data: bytes) -> asyncio.Future[Response]:
        assert self.transport is not None
        self._reset()
        self.waiter = self.loop.create_future()
        self.transport.write(data)
        return self.waiter

    def time_out(self) -> None:
        """The caller's deadline passed: the answer is abandoned, and the connection."""
        self._fail(TimeoutError())

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class _Abort(Exception):
    """Stops the parser inside a callback (the answer is too large)."""


def _inflate(body: bytes, encoding: str, limit: int) -> bytes:
    wbits = 47 if encoding != "deflate" else 15  # 47: gzip or zlib header, found out
    try:
        inflater = zlib.decompressobj(wbits)
        out = inflater.decompress(body, limit + 1)
    except zlib.error:
        if encoding != "deflate":
            raise
        inflater = zlib.decompressobj(-15)  # "deflate" sent raw, without the zlib header
        out = inflater.decompress(body, limit + 1)
    if len(out) > limit or inflater.unconsumed_tail:
        raise BodyTooLarge(0)
    return out


class HTTPPool:
    """Keep-alive connections to one or more hosts, ``limit`` at most in all.

    >>> pool = HTTPPool({"Authorization": "Bearer k"}, limit=64)   # doctest: +SKIP
    >>> (await pool.post(URL("http://127.0.0.1:8000/v1/chat/completions"), b"{}")).status
    200
    """

    def __init__(self, headers: Mapping[str, str], *, limit: int = 100,
                 connect_timeout: float = 10.0, keepalive: float = 30.0,
                 max_body: int = 8 * 1024 * 1024, ssl_context: ssl.SSLContext | None = None,
                 user_agent: str = "textsynth") -> None:
        for name, value in headers.items():
            check_header(name, value)
        names = {n.lower() for n in headers}
        fixed = dict(headers)
        if "user-agent" not in names:
            fixed["User-Agent"] = user_agent
        if "accept-encoding" not in names:
            fixed["Accept-Encoding"] = "gzip, deflate"
        self._header_block = "".join(f"{k}: {v}\r\n" for k, v in fixed.items()
                                     if k.lower() not in ("host", "content-length"))
        self.connect_timeout = connect_timeout
        self.keepalive = keepalive
        self.max_body = max_body
        self._ssl = ssl_context
        self.limit = limit
        self._busy = 0  # requests holding a connection (or opening one)
        self._queue: deque[asyncio.Future[None]] = deque()  # requests waiting for a place
        self._on_wire: dict[_Connection, float] = {}  # deadlines of answers awaited
        self._sweeper: asyncio.TimerHandle | None = None
        self._sweep_every = 1.0
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._heads: dict[URL, tuple[tuple[str, str, int], bytes]] = {}
        self.opened = 0  # connections opened, for tests and statistics
        self.closed = False

    def _head(self, url: URL) -> tuple[tuple[str, str, int], bytes]:
        """The pool key and the request line and headers, up to the Content-Length value."""
        known = self._heads.get(url)
        if known is None:
            host, port, scheme = url.raw_host or "", url.port or 0, url.scheme
            default = (scheme == "https" and port == 443) or (scheme == "http" and port == 80)
            shown = f"[{host}]" if ":" in host else host
            host_header = shown if default else f"{shown}:{port}"
            target = url.raw_path_qs or "/"
            head = (f"POST {target} HTTP/1.1\r\nHost: {host_header}\r\n{self._header_block}"
                    "Content-Length: ").encode("latin-1")
            known = self._heads[url] = ((scheme, host, port), head)
        return known

    async def _connect(self, key: tuple[str, str, int], left: float = math.inf) -> _Connection:
        scheme, host, port = key
        loop = asyncio.get_running_loop()
        context: ssl.SSLContext | None = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            context = self._ssl
        try:
            async with asyncio.timeout(max(0.0, min(self.connect_timeout, left))):
                _, conn = await loop.create_connection(
                    lambda: _Connection(loop, self.max_body), host, port, ssl=context)
        except TimeoutError:  # an OSError too: the caller's deadline, not a refusal
            raise
        except OSError as exc:  # refused, no such host, a TLS handshake that failed
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            raise ConnectFailed(reason) from exc
        self.opened += 1
        return conn

    def _reuse(self, key: tuple[str, str, int], now: float) -> _Connection | None:
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < self.keepalive:
                return conn
            conn.close()
        return None

    async def post(self, url: URL, data: bytes, timeout: float | None = None) -> Response:
        """POST ``data`` to ``url``; the answer, whatever its status.

        ``timeout``: seconds for the whole request (a connection, the request, its answer);
        past it :class:`TimeoutError`. One timer serves every request in flight (checked
        ``timeout / 10`` apart, at most a second): a timer per request costs more than the
        rest of the client. Raises :class:`ConnectFailed`, :class:`ConnectionBroken` or
        :class:`BodyTooLarge`; a timeout or a cancellation closes the connection in use.
        """
        if self.closed:
            raise ConnectionBroken("the HTTP client is closed")
        key, head = self._head(url)
        message = b"".join((head, str(len(data)).encode(), b"\r\n\r\n", data))
        loop = asyncio.get_running_loop()
        deadline = math.inf if timeout is None else loop.time() + timeout
        if self._busy >= self.limit > 0:
            await self._wait_for_place(deadline)
        self._busy += 1
        try:
            conn = self._reuse(key, loop.time())
            for _ in range(2):
                reused = conn is not None
                if conn is None:
                    conn = await self._connect(key, deadline - loop.time())
                if timeout is not None:
                    self._watch(conn, deadline, timeout)
                try:
                    answer = await conn.send(message)
                except ConnectionBroken:
                    self._on_wire.pop(conn, None)
                    if reused and not conn.got_bytes:  # closed while idle: once more, anew
                        conn.close()
                        conn = None
                        continue
                    raise
                except BaseException:  # a timeout or a cancellation: its state is unknown
                    self._on_wire.pop(conn, None)
                    conn.close()
                    raise
                self._on_wire.pop(conn, None)
                if conn.keep_alive and not conn.closed and not self.closed:
                    conn.idle_since = loop.time()
                    self._idle.setdefault(key, []).append(conn)
                else:
                    conn.close()
                return answer
            raise AssertionError("unreachable")  # pragma: no cover
        finally:
            self._busy -= 1
            while self._queue:  # hand the place on
                waiter = self._queue.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    break

    async def _wait_for_place(self, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        while self._busy >= self.limit:
            waiter: asyncio.Future[None] = loop.create_future()
            self._queue.append(waiter)
            try:
                async with asyncio.timeout_at(deadline if deadline < math.inf else None):
                    await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():  # our place: pass it on
                    for other in self._queue:
                        if not other.done():
                            other.set_result(None)
                            break
                raise

    # -- one timer for every deadline ------------------------------------------------------
    def _watch(self, conn: _Connection, deadline: float, timeout: float) -> None:
        self._on_wire[conn] = deadline
        every = min(1.0, max(0.01, timeout / 10))
        if self._sweeper is None or every < self._sweep_every:
            if self._sweeper is not None:
                self._sweeper.cancel()
            self._sweep_every = every
            self._sweeper = asyncio.get_running_loop().call_later(every, self._sweep)

    def _sweep(self) -> None:
        now = asyncio.get_running_loop().time()
        late = [conn for conn, deadline in self._on_wire.items() if deadline <= now]
        for conn in late:
            del self._on_wire[conn]
            conn.time_out()
        self._sweeper = None
        if self._on_wire:
            self._sweeper = asyncio.get_running_loop().call_later(self._sweep_every,
                                                                  self._sweep)

    async def close(self) -> None:
        """Close every idle connection; the pool sends nothing more."""
        self.closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()
        await asyncio.sleep(0)  # let the transports close
