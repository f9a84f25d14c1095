"""HTTPPool, the openai backend's HTTP/1.1 client, against raw servers on 127.0.0.1.

Each server here answers with bytes written by hand, so every way an answer can be
framed (length, chunked, until close, compressed, interim 100) and every way a
connection can end (closed while idle, mid-answer, garbage) is exercised for real.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import ssl
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from yarl import URL

from textsynth.backends._http1 import (
    BodyTooLarge,
    ConnectFailed,
    ConnectionBroken,
    HTTPPool,
    check_header,
)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, dict[str, int]],
                   Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> tuple[bytes, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in
               (line.partition(":") for line in lines[1:] if line)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return lines[0].encode(), headers, body


def _answer(body: bytes, status: str = "200 OK", extra: str = "") -> bytes:
    return (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{extra}"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


class RawServer:
    """Serves each connection with ``handler``; counts connections and requests."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.counts = {"connections": 0, "requests": 0}
        self.seen: list[tuple[bytes, dict[str, str], bytes]] = []
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.counts["connections"] += 1
        self.writers.append(writer)
        try:
            await self.handler(reader, writer, self.counts)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def start(self) -> URL:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return URL(f"http://127.0.0.1:{port}/v1/chat/completions?api-version=1")

    async def stop(self) -> None:
        assert self.server is not None
        for w in self.writers:
            w.close()
        self.server.close()
        await self.server.wait_closed()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[tuple[RawServer, URL]]]]:
    servers: list[RawServer] = []

    async def start(handler: Handler) -> tuple[RawServer, URL]:
        server = RawServer(handler)
        servers.append(server)
        return server, await server.start()

    yield start
    for s in servers:
        await s.stop()


def echo_loop(make: Callable[[bytes], bytes]) -> Handler:
    """Answers every request on the connection with ``make(body)``, keeping it open."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      counts: dict[str, int]) -> None:
        while True:
            _, _, body = await _read_request(reader)
            counts["requests"] += 1
            writer.write(make(body))
            await writer.drain()

    return handler


async def test_keep_alive_reuses_one_connection_and_sends_the_request_as_given(serve):
    seen = []

    async def handler(reader, writer, counts):
        while True:
            request = await _read_request(reader)
            seen.append(request)
            counts["requests"] += 1
            writer.write(_answer(json.dumps({"n": counts["requests"]}).encode()))
            await writer.drain()

    server, url = await serve(handler)
    pool = HTTPPool({"Authorization": "Bearer k", "X-Extra": "1"})
    answers = [await pool.post(url, json.dumps({"i": i}).encode()) for i in range(5)]
    await pool.close()
    assert [json.loads(a.body)["n"] for a in answers] == [1, 2, 3, 4, 5]
    assert all(a.status == 200 and a.headers["content-type"] == "application/json"
               for a in answers)
    assert server.counts["connections"] == 1 and pool.opened == 1
    line, headers, body = seen[0]
    assert line == b"POST /v1/chat/completions?api-version=1 HTTP/1.1"
    assert headers["host"] == f"127.0.0.1:{url.port}"
    assert headers["authorization"] == "Bearer k" and headers["x-extra"] == "1"
    assert json.loads(body) == {"i": 0}


async def test_concurrent_requests_open_no_more_connections_than_the_limit(serve):
    async def handler(reader, writer, counts):
        while True:
            _, _, body = await _read_request(reader)
            await asyncio.sleep(0.02)
            writer.write(_answer(body))
            await writer.drain()

    server, url = await serve(handler)
    pool = HTTPPool({}, limit=4)
    answers = await asyncio.gather(*(pool.post(url, str(i).encode()) for i in range(40)))
    await pool.close()
    assert [a.body for a in answers] == [str(i).encode() for i in range(40)]
    assert server.counts["connections"] == 4


async def test_chunked_answer_is_put_together(serve):
    async def handler(reader, writer, counts):
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"7\r\n{\"a\": 1\r\n1\r\n}\r\n0\r\n\r\n")
        await writer.drain()
        await reader.read()  # keep the connection open until the client goes

    _, url = await serve(handler)
    pool = HTTPPool({})
    answer = await pool.post(url, b"{}")
    await pool.close()
    assert json.loads(answer.body) == {"a": 1}


async def test_answer_without_length_is_read_until_the_server_closes(serve):
    async def handler(reader, writer, counts):
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{\"whole\": true}")
        await writer.drain()
        writer.close()

    server, url = await serve(handler)
    pool = HTTPPool({})
    first = await pool.post(url, b"{}")
    second = await pool.post(url, b"{}")  # the closed connection is not reused
    await pool.close()
    assert json.loads(first.body) == json.loads(second.body) == {"whole": True}
    assert server.counts["connections"] == 2


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "raw-deflate"])
async def test_compressed_answers_are_inflated(serve, encoding):
    payload = json.dumps({"choices": [{"text": "hello " * 50}]}).encode()
    if encoding == "gzip":
        packed = gzip.compress(payload)
    elif encoding == "deflate":
        packed = zlib.compress(payload)
    else:  # "deflate" as some servers send it: no zlib header
        c = zlib.compressobj(wbits=-15)
        packed = c.compress(payload) + c.flush()
    name = "gzip" if encoding == "gzip" else "deflate"
    header = f"Content-Encoding: {name}\r\n"
    _, url = await serve(echo_loop(lambda _: _answer(packed, extra=header)))
    pool = HTTPPool({})
    answer = await pool.post(url, b"{}")
    await pool.close()
    assert answer.body == payload


async def test_interim_100_continue_is_skipped(serve):
    async def handler(reader, writer, counts):
        await _read_request(reader)
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n" + _answer(b"{\"ok\": 1}"))
        await writer.drain()
        await reader.read()

    _, url = await serve(handler)
    pool = HTTPPool({})
    answer = await pool.post(url, b"{}")
    await pool.close()
    assert answer.status == 200 and json.loads(answer.body) == {"ok": 1}


async def test_error_status_and_headers_come_back_as_an_answer(serve):
    _, url = await serve(echo_loop(lambda _: _answer(
        b'{"error": {"message": "slow down"}}', "429 Too Many Requests", "Retry-After: 3\r\n")))
    pool = HTTPPool({})
    answer = await pool.post(url, b"{}")
    await pool.close()
    assert answer.status == 429 and answer.headers["retry-after"] == "3"


async def test_idle_connection_closed_by_the_server_is_replaced_without_an_error(serve):
    async def handler(reader, writer, counts):  # one answer per connection, then close
        await _read_request(reader)
        counts["requests"] += 1
        writer.write(_answer(b"{}"))  # says keep-alive (HTTP/1.1), closes anyway
        await writer.drain()
        await asyncio.sleep(0.01)
        writer.close()

    server, url = await serve(handler)
    pool = HTTPPool({})
    for _ in range(3):
        assert (await pool.post(url, b"{}")).status == 200
        await asyncio.sleep(0.05)  # the server closes the idle connection meanwhile
    await pool.close()
    assert server.counts["requests"] == 3 and server.counts["connections"] == 3


async def test_connection_dropped_mid_answer_is_an_error_not_a_short_body(serve):
    async def handler(reader, writer, counts):
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"cut\":")
        await writer.drain()
        writer.transport.abort()

    _, url = await serve(handler)
    pool = HTTPPool({})
    with pytest.raises(ConnectionBroken, match="closed the connection"):
        await pool.post(url, b"{}")
    await pool.close()


async def test_garbage_instead_of_http_is_an_error(serve):
    async def handler(reader, writer, counts):
        await _read_request(reader)
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        await writer.drain()
        await reader.read()

    _, url = await serve(handler)
    pool = HTTPPool({})
    with pytest.raises(ConnectionBroken, match="not valid HTTP"):
        await pool.post(url, b"{}")
    await pool.close()


@pytest.mark.parametrize("how", ["length", "chunked", "gzip"])
async def test_an_answer_over_the_limit_is_not_read(serve, how):
    big = b"x" * 50_000
    if how == "length":
        raw = _answer(big, "502 Bad Gateway")
    elif how == "chunked":
        raw = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" +
               b"".join(b"%x\r\n%s\r\n" % (1000, b"y" * 1000) for _ in range(50)) + b"0\r\n\r\n")
    else:  # small on the wire, large once inflated
        raw = _answer(gzip.compress(big), extra="Content-Encoding: gzip\r\n")
    _, url = await serve(echo_loop(lambda _: raw))
    pool = HTTPPool({}, max_body=10_000)
    with pytest.raises(BodyTooLarge) as caught:
        await pool.post(url, b"{}")
    assert caught.value.status == (502 if how == "length" else 200)
    await pool.close()


async def test_refused_connection_says_so():
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    pool = HTTPPool({})
    with pytest.raises(ConnectFailed, match=r"refused|Connect call failed"):
        await pool.post(URL(f"http://127.0.0.1:{port}/v1/chat/completions"), b"{}")


async def test_a_timeout_closes_the_connection_and_the_next_request_gets_a_new_one(serve):
    async def handler(reader, writer, counts):
        while True:
            await _read_request(reader)
            counts["requests"] += 1
            if counts["requests"] == 1:
                await asyncio.sleep(1)  # too slow for the caller
            writer.write(_answer(b"{}"))
            await writer.drain()

    server, url = await serve(handler)
    pool = HTTPPool({})
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.1):
            await pool.post(url, b"{}")
    assert (await pool.post(url, b"{}")).status == 200
    await pool.close()
    assert server.counts["connections"] == 2


@pytest.mark.parametrize("name,value", [("X-Bad", "a\r\nInjected: 1"), ("Bad Name", "v"),
                                        ("X:y", "v"), ("X-Nul", "a\0b")])
def test_a_header_that_would_break_the_request_is_refused(name, value):
    with pytest.raises(ValueError, match=r"not valid|line break"):
        check_header(name, value)
    with pytest.raises(ValueError):
        HTTPPool({name: value})


async def test_request_lost_on_a_reused_connection_goes_once_more_on_a_new_one(serve):
    async def handler(reader, writer, counts):  # answers one request a connection, then
        await _read_request(reader)  # drops the next one unanswered (a keep-alive race)
        counts["requests"] += 1
        writer.write(_answer(b'{"ok": 1}'))
        await writer.drain()
        await _read_request(reader)
        writer.transport.abort()

    server, url = await serve(handler)
    pool = HTTPPool({})
    assert (await pool.post(url, b"{}")).status == 200
    assert (await pool.post(url, b"{}")).status == 200  # reused, dropped, sent anew
    await pool.close()
    assert server.counts == {"connections": 2, "requests": 2}


async def test_request_lost_on_a_new_connection_is_an_error_not_a_retry(serve):
    async def handler(reader, writer, counts):
        await _read_request(reader)
        counts["requests"] += 1
        writer.transport.abort()

    server, url = await serve(handler)
    pool = HTTPPool({})
    with pytest.raises(ConnectionBroken):
        await pool.post(url, b"{}")
    await pool.close()
    assert server.counts["requests"] == 1  # the backend's retry policy decides the rest


async def test_https_with_a_trusted_certificate_and_a_clear_error_without_one():
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)

    async def serve_one(reader, writer):
        try:
            while True:
                _, _, body = await _read_request(reader)
                writer.write(_answer(body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(serve_one, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    url = URL(f"https://127.0.0.1:{port}/v1/chat/completions")
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    pool = HTTPPool({}, ssl_context=client_ctx)
    answers = [await pool.post(url, f'{{"i": {i}}}'.encode()) for i in range(3)]
    assert [json.loads(a.body)["i"] for a in answers] == [0, 1, 2] and pool.opened == 1
    await pool.close()
    untrusting = HTTPPool({})  # the system's trust store does not know this CA
    with pytest.raises(ConnectFailed, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify"):
        await untrusting.post(url, b"{}")
    server.close()
    await server.wait_closed()


async def test_the_pools_own_deadline_times_out_a_silent_server_on_time(serve):
    async def handler(reader, writer, counts):
        while True:
            await _read_request(reader)
            counts["requests"] += 1
            if counts["requests"] > 1:  # the first one never gets an answer
                writer.write(_answer(b"{}"))
                await writer.drain()

    server, url = await serve(handler)
    pool = HTTPPool({})
    loop = asyncio.get_running_loop()
    began = loop.time()
    with pytest.raises(TimeoutError):
        await pool.post(url, b"{}", timeout=0.3)
    took = loop.time() - began
    assert 0.3 <= took < 0.6  # checked every timeout/10
    assert (await pool.post(url, b"{}", timeout=0.3)).status == 200
    await pool.close()
    assert server.counts["connections"] == 2  # the timed-out connection was dropped


async def test_a_request_waiting_for_a_place_keeps_its_deadline_and_the_queue_moves(serve):
    release = asyncio.Event()

    async def handler(reader, writer, counts):
        while True:
            _, _, body = await _read_request(reader)
            if body == b"slow":
                await release.wait()
            writer.write(_answer(body))
            await writer.drain()

    _, url = await serve(handler)
    pool = HTTPPool({}, limit=1)
    slow = asyncio.ensure_future(pool.post(url, b"slow"))
    await asyncio.sleep(0.05)
    with pytest.raises(TimeoutError):  # no place within its time
        await pool.post(url, b"late", timeout=0.2)
    queued = asyncio.ensure_future(pool.post(url, b"next", timeout=5))
    await asyncio.sleep(0.05)
    assert not queued.done()
    release.set()
    assert (await slow).body == b"slow" and (await queued).body == b"next"
    await pool.close()


def test_the_client_runs_on_uvloop_as_ray_actors_do() -> None:
    uvloop = pytest.importorskip("uvloop")

    async def go() -> list[bytes]:
        server = RawServer(echo_loop(lambda body: _answer(body)))
        url = await server.start()
        pool = HTTPPool({})
        try:
            answers = await asyncio.gather(*(pool.post(url, b"%d" % i, timeout=5)
                                             for i in range(20)))
            return [a.body for a in answers]
        finally:
            await pool.close()
            await server.stop()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.get_loop().__class__.__module__.startswith("uvloop")
        assert runner.run(go()) == [b"%d" % i for i in range(20)]


async def test_an_ipv6_address_is_dialled_and_named_in_brackets():
    seen = []

    async def handler(reader, writer):
        try:
            request = await _read_request(reader)
            seen.append(request)
            writer.write(_answer(b"{}"))
            await writer.drain()
        finally:
            writer.close()

    try:
        server = await asyncio.start_server(handler, "::1", 0)
    except OSError:
        pytest.skip("no IPv6 loopback here")
    port = server.sockets[0].getsockname()[1]
    pool = HTTPPool({})
    answer = await pool.post(URL(f"http://[::1]:{port}/v1/chat/completions"), b"{}")
    await pool.close()
    server.close()
    await server.wait_closed()
    assert answer.status == 200 and seen[0][1]["host"] == f"[::1]:{port}"
