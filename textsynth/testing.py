"""A small OpenAI-compatible server for tests and benchmarks, with fault injection.

It answers ``POST /v1/chat/completions`` (and ``/v1/completions``, text completions
of a ``prompt``) after a fixed latency and can be told to
fail a share of the answers (or a scripted sequence of them) in the ways real
endpoints fail: 429 with ``Retry-After``, 500, 400, a hang past the client's
timeout, a dropped connection, a body that is not JSON, empty content,
``finish_reason: length`` and a huge body streamed without a length. It listens
on loopback only, bounds request bodies, and stops by itself after ``lifetime``
seconds.

>>> with FaultServer(latency=0.05, faults={"rate_limit": 0.1}) as server:  # doctest: +SKIP
...     recipe = recipe.with_overrides(backend="openai", base_url=server.url)

From a shell (prints the base URL on its first line)::

    python -m textsynth.testing --latency 0.2 --rate-limit 0.05 --retry-after 1
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import random
import signal
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from aiohttp import web

from textsynth.loopback import LoopbackServer
from textsynth.replies import body_key, continued_reply, default_reply, letters

__all__ = ["FAULTS", "FaultServer", "continued_reply", "default_reply", "letters"]

#: what the server can do instead of answering normally
FAULTS = ("rate_limit", "server_error", "bad_request", "timeout", "drop", "malformed", "empty",
          "length", "huge")

Reply = Callable[[Mapping[str, Any], int], str]

def _words(text: str) -> int:
    return len(text.split())


def _error(status: int, message: str, kind: str, headers: Mapping[str, str] | None = None
           ) -> web.Response:
    body = {"error": {"message": message, "type": kind, "code": status}}
    return web.json_response(body, status=status, headers=headers)


class FaultServer(LoopbackServer):
    """An OpenAI-compatible chat server on 127.0.0.1 that fails on purpose.

    ``faults`` maps a name from :data:`FAULTS` to the share of answers that fail
    that way (drawn with ``seed``); ``script`` lists faults (or ``"ok"``) for the
    first requests, in order, before the shares apply; ``fault_for(body)``, when
    given, picks the fault for a request first (None: the script and shares
    decide). ``reply(body, choice)``
    writes the content of a normal answer (by default a JSON list of ``items``
    unique texts; for a text completion, ``items`` lines continuing a ``- `` list).
    ``json_schema``/``json_object``/``supports_n`` say which
    request features the server accepts: an unsupported ``response_format`` gets
    a 400, an unsupported ``n`` is ignored (one choice comes back);
    ``text_completions=False``: ``/v1/completions`` answers 404, as on a chat-only server.

    ``retry_after_max``: Retry-After is drawn between ``retry_after`` and this.
    ``huge_bytes``: the size of a ``huge`` answer (streamed in chunks, no length).
    ``answer_model``: the ``model`` every answer names (default: the one asked for).
    ``echo_auth``: error messages repeat the ``Authorization`` header they got, as
    careless servers do (to test that echoed keys are masked).

    Counters: ``stats`` (outcome -> count), ``served`` (body hash -> successful
    answers, to check that nothing was asked twice after it succeeded),
    ``bodies`` (the last ``keep`` request bodies), ``paths`` (their paths with query),
    ``authorizations`` (Authorization headers received), ``arrivals`` (their arrival
    times and :func:`body_key`) and ``max_inflight``.
    """

    def __init__(
        self,
        *,
        latency: float = 0.0,
        latency_sigma: float = 0.0,
        faults: Mapping[str, float] | None = None,
        script: Iterable[str] = (),
        retry_after: float | None = 1.0,
        hang: float = 30.0,
        reply: Reply | None = None,
        fault_for: Callable[[Mapping[str, Any]], str | None] | None = None,
        items: int = 1,
        seed: int = 0,
        model: str = "test-model",
        json_schema: bool = True,
        json_object: bool = True,
        supports_n: bool = True,
        text_completions: bool = True,
        api_key: str | None = None,
        retry_after_max: float | None = None,
        huge_bytes: int = 10 * 1024 * 1024,
        answer_model: str | None = None,
        echo_auth: bool = False,
        port: int = 0,
        lifetime: float = 600.0,
        keep: int = 10_000,
    ) -> None:
        unknown = set(faults or {}) | set(script)
        unknown -= {*FAULTS, "ok"}
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)} (known: {', '.join(FAULTS)})")
        self.latency = latency
        self.latency_sigma = latency_sigma
        self.faults = dict(faults or {})
        self.script = deque(script)
        self.fault_for = fault_for
        self.retry_after = retry_after
        self.hang = hang
        self.reply = reply
        self.items = items
        self.model = model
        self.json_schema = json_schema
        self.json_object = json_object
        self.supports_n = supports_n
        self.text_completions = text_completions
        self.api_key = api_key
        self.retry_after_max = retry_after_max
        self.huge_bytes = huge_bytes
        self.answer_model = answer_model
        self.echo_auth = echo_auth
        self.stats: Counter[str] = Counter()
        self.served: Counter[str] = Counter()
        self.bodies: deque[dict[str, Any]] = deque(maxlen=keep)
        self.paths: deque[str] = deque(maxlen=keep)  # path and query of each request
        self.authorizations: Counter[str] = Counter()  # Authorization headers received
        # (time.monotonic() on arrival, body_key) of every request, in arrival order
        self.arrivals: deque[tuple[float, str]] = deque(maxlen=keep)
        self.inflight = 0
        self.max_inflight = 0
        self._rng = random.Random(seed)
        super().__init__(port=port, lifetime=lifetime)

    @property
    def url(self) -> str:
        """The base URL to give a client (``.../v1``)."""
        return f"http://127.0.0.1:{self.port}/v1"

    def duplicates(self) -> dict[str, int]:
        """Requests that were answered successfully more than once."""
        return {k: n for k, n in self.served.items() if n > 1}

    # -- answering ------------------------------------------------------------------
    def _latency(self) -> float:
        """The fixed latency, or with ``latency_sigma`` a log-normal draw of that mean
        (answers of different lengths: sigma 1 puts the slowest 1% at about 10x the median)."""
        if not self.latency_sigma:
            return self.latency
        s = self.latency_sigma
        return self.latency * math.exp(self._rng.gauss(0.0, s) - s * s / 2)

    def _pick_fault(self, body: Mapping[str, Any]) -> str:
        if self.fault_for is not None:
            chosen = self.fault_for(body)
            if chosen is not None:
                return chosen
        if self.script:
            return self.script.popleft()
        draw = self._rng.random()
        for name in FAULTS:
            share = self.faults.get(name, 0.0)
            if draw < share:
                return name
            draw -= share
        return "ok"

    def _completion(self, body: Mapping[str, Any], fault: str, key: str) -> dict[str, Any]:
        n = int(body.get("n") or 1) if self.supports_n else 1
        raw = "prompt" in body  # a text completion
        if raw:
            prompt = _words(str(body["prompt"]))
        else:
            prompt = sum(_words(str(m.get("content") or "")) for m in body.get("messages", []))
        choices, out_tokens = [], 0
        write = continued_reply if raw else default_reply
        for i in range(n):
            text = self.reply(body, i) if self.reply else write(body, i, self.items, key)
            finish = "stop"
            if fault == "empty":
                text = ""
            elif fault == "length":
                text, finish = text[: max(1, len(text) // 2)], "length"
            out_tokens += _words(text)
            choices.append({"index": i, "finish_reason": finish, "text": text} if raw else
                           {"index": i, "finish_reason": finish,
                            "message": {"role": "assistant", "content": text}})
        return {
            "id": f"{'cmpl' if raw else 'chatcmpl'}-{key}",
            "object": "text_completion" if raw else "chat.completion", "created": 0,
            "model": self.answer_model or str(body.get("model") or self.model),
            "choices": choices,
            "usage": {"prompt_tokens": prompt, "completion_tokens": out_tokens,
                      "total_tokens": prompt + out_tokens},
        }

    def _unsupported(self, body: Mapping[str, Any]) -> web.Response | None:
        fmt = body.get("response_format") or {}
        kind = fmt.get("type") if isinstance(fmt, dict) else None
        if (kind == "json_schema" and not self.json_schema) or (
                kind == "json_object" and not self.json_object):
            self.stats["unsupported"] += 1
            return _error(400, f"response_format type '{kind}' is not supported by this server",
                          "invalid_request_error")
        return None

    def _echo(self, request: web.Request, message: str) -> str:
        if not self.echo_auth:
            return message
        return f"{message} (request sent with {request.headers.get('Authorization')!r})"

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        if request.path.endswith("/v1/completions") and not self.text_completions:
            self.stats["not_found"] += 1
            return _error(404, "Not Found", "not_found_error")
        if self.api_key is not None and \
                request.headers.get("Authorization") != f"Bearer {self.api_key}":
            self.stats["unauthorized"] += 1
            return _error(401, self._echo(request, "invalid API key"), "authentication_error")
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "request body is not JSON", "invalid_request_error")
        self.bodies.append(body)
        self.paths.append(request.path_qs)
        self.authorizations[request.headers.get("Authorization", "")] += 1
        key = body_key(body)
        self.arrivals.append((time.monotonic(), key))
        self.stats["requests"] += 1
        self.inflight += 1
        self.max_inflight = max(self.max_inflight, self.inflight)
        try:
            return await self._answer(request, body, key)
        finally:
            self.inflight -= 1

    async def _answer(self, request: web.Request, body: dict[str, Any], key: str
                      ) -> web.StreamResponse:
        fault = self._pick_fault(body)
        if self.latency:
            await asyncio.sleep(self._latency())
        self.stats[fault] += 1
        if fault == "rate_limit":
            after = self.retry_after
            if after is not None and self.retry_after_max is not None:
                after = round(self._rng.uniform(after, self.retry_after_max), 1)
            headers = {} if after is None else {"Retry-After": f"{after:g}"}
            return _error(429, self._echo(request, "rate limit reached, slow down"),
                          "rate_limit_error", headers)
        if fault == "server_error":
            return _error(500, self._echo(request, "the server had an error"), "server_error")
        if fault == "bad_request":
            return _error(400, self._echo(request, "this request cannot be served"),
                          "invalid_request_error")
        if fault == "huge":
            return await self._huge(request)
        if fault == "timeout":
            await asyncio.sleep(self.hang)
            return _error(504, "too late", "timeout")
        if fault in ("drop", "malformed"):
            if fault == "drop" and request.transport is not None:
                request.transport.abort()
                raise web.HTTPServiceUnavailable()  # never reaches the client
            return web.Response(body=b'{"id": "x", "choices": [{"mess', status=200,
                                content_type="application/json")
        unsupported = self._unsupported(body)
        if unsupported is not None:
            return unsupported
        self.served[key] += 1
        return web.json_response(self._completion(body, fault, key))

    async def _huge(self, request: web.Request) -> web.StreamResponse:
        """``huge_bytes`` of a JSON string, chunked: the client cannot know the size."""
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        chunk = b"x" * (1 << 16)
        sent = 0
        try:
            await resp.write(b'{"choices": [{"message": {"content": "')
            while sent < self.huge_bytes:
                await resp.write(chunk)
                sent += len(chunk)
            await resp.write(b'"}}]}')
            await resp.write_eof()
        except (ConnectionError, RuntimeError):  # the client stopped reading: as it should
            self.stats["huge_abandoned"] += 1
        return resp

    async def _models(self, request: web.Request) -> web.Response:
        models = [{"id": self.model, "object": "model"}]
        return web.json_response({"object": "list", "data": models})

    def app(self) -> web.Application:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        return app

def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m textsynth.testing",
                                     description="OpenAI-compatible test server with faults")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--latency-sigma", type=float, default=0.0,
                        help="spread answer times log-normally around --latency")
    parser.add_argument("--retry-after", type=float, default=1.0)
    parser.add_argument("--hang", type=float, default=30.0)
    parser.add_argument("--items", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lifetime", type=float, default=600.0)
    parser.add_argument("--retry-after-max", type=float, default=None,
                        help="draw Retry-After between --retry-after and this")
    parser.add_argument("--huge-bytes", type=int, default=10 * 1024 * 1024)
    for name in FAULTS:
        parser.add_argument(f"--{name.replace('_', '-')}", type=float, default=0.0,
                            metavar="SHARE", help=f"share of answers that are '{name}'")
    args = parser.parse_args(argv)
    faults = {name: getattr(args, name) for name in FAULTS if getattr(args, name)}
    server = FaultServer(latency=args.latency, latency_sigma=args.latency_sigma,
                         faults=faults, retry_after=args.retry_after,
                         hang=args.hang, items=args.items, seed=args.seed, port=args.port,
                         lifetime=args.lifetime, retry_after_max=args.retry_after_max,
                         huge_bytes=args.huge_bytes)

    async def run() -> None:
        await server.start_async()
        print(server.url, flush=True)
        assert server._stopped is not None
        with contextlib.suppress(NotImplementedError):  # not on Windows
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, server._stopped.set)
        try:
            await server._stopped.wait()
        finally:
            await server.stop_async()
            summary = {**server.stats, "duplicates": len(server.duplicates()),
                       "max_inflight": server.max_inflight}
            print(json.dumps(summary), flush=True)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


if __name__ == "__main__":
    main()
