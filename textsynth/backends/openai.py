"""The ``openai`` backend: any OpenAI-compatible chat endpoint.

OpenAI itself, vLLM, TGI, Ollama, ``transformers serve`` ... anything that speaks
``POST /v1/chat/completions``. A document to continue (``generation.style: continue``)
goes to ``POST /v1/completions`` instead (text completions: vLLM, llama.cpp, TGI,
Ollama and LiteLLM serve them; a server without them answers 404, which ends the run
in one line). Requests go through a lean HTTP/1.1 client of keep-alive connections
(:mod:`textsynth.backends._http1`, responses parsed by httptools; ``http_client: aiohttp``
switches to aiohttp) in :mod:`textsynth.backends._openai_http`, with a shared
:class:`~textsynth.ratelimit.RateLimiter` and tenacity retries.

Structured output: when the recipe's schema is a pydantic model the schema is
sent as ``response_format`` (JSON schema, else JSON mode, else the prompt
alone; a server that refuses one is asked with the next, for the rest of the
run). An answer that does not fit the schema gets correction turns from
:class:`~textsynth.backends.repair.SchemaRepair`, which wraps any backend (two by
default for this one: ``generation.repair_turns``).

    backend:
      type: openai
      options: {base_url: "http://127.0.0.1:8000/v1", model: "Qwen/Qwen2.5-7B-Instruct"}
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from yarl import URL

from textsynth.backends._http1 import check_header
from textsynth.backends._openai_http import ChatClient, RetryPolicy
from textsynth.backends._openai_sdk_errors import sdk_error
from textsynth.backends.base import (
    Backend,
    Completion,
    Message,
    Request,
    RequestEvents,
    Usage,
)
from textsynth.errors import BackendError, BackendResponseError, GenerationError, RecipeError
from textsynth.ratelimit import RateLimiter
from textsynth.redact import add_secret, is_secret_name, mask_known

__all__ = ["OpenAIBackend"]

OPENAI_URL = "https://api.openai.com/v1"
_LEVELS = ("json_schema", "json_object", "prompt")
# a 4xx that no retry can fix and that concerns the whole run, not one request
_FATAL = {401: "the server refused the API key (401): set OPENAI_API_KEY or "
               "backend.options.api_key",
          403: "the API key may not use this model or endpoint (403)",
          404: "no such model or endpoint (404): check backend.options.base_url and model"}


def _prompt_chars(request: Request, messages: Sequence[Message]) -> int:
    """Characters of what is sent: the chat messages, or the document to continue."""
    if request.prompt is not None:
        return len(request.prompt)
    return sum(len(m["content"]) for m in messages)


def check_base_url(value: str) -> URL:
    """``value`` as a URL, or a ValueError saying in one line what is wrong with it."""
    if not value.startswith(("http://", "https://")):
        raise ValueError("base_url must start with http:// or https://")
    try:
        url = URL(value)
        url.port  # noqa: B018 - an out-of-range port raises here
    except ValueError as exc:
        raise ValueError(f"base_url is not a valid URL ({exc})") from None
    if not url.host:
        raise ValueError("base_url names no host (e.g. http://127.0.0.1:8000/v1)")
    return url


def _auth(url: URL, key: str | None, extra: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """The base URL without credentials and the headers that carry them.

    ``user:password@`` in the URL becomes a Basic ``Authorization`` header (HTTP
    clients refuse both at once); with an API key as well, which one to send is unclear: a
    recipe error. Every credential is registered as a secret, so it is masked
    wherever it turns up (messages, logs, rejects, rows).
    """
    headers = dict(extra)
    add_secret(key, url.password, url.user,
               *(v for k, v in headers.items() if is_secret_name(k)),
               *(v for k, v in url.query.items() if is_secret_name(k)))
    if url.user is not None or url.password is not None:
        if key:
            raise RecipeError("base_url holds a user and password and an API key is set "
                              "as well (OPENAI_API_KEY or api_key): give only one",
                              field="backend.options.base_url")
        pair = f"{url.user or ''}:{url.password or ''}".encode()
        headers["Authorization"] = f"Basic {base64.b64encode(pair).decode('ascii')}"
        add_secret(headers["Authorization"], headers["Authorization"].split(" ", 1)[1])
        url = url.with_user(None)
    elif key:
        headers["Authorization"] = f"Bearer {key}"
    return str(url), headers


class OpenAIBackend(Backend):
    """Chat completions from an OpenAI-compatible endpoint, fast and fault tolerant.

    >>> backend = OpenAIBackend({"base_url": "http://127.0.0.1:8000/v1", "model": "m"})
    >>> backend.max_concurrency  # requests handed over at once: concurrency x lookahead
    512
    """

    name = "openai"
    reports_request_state = True
    default_repair_turns = 2  # a hosted model is worth asking again

    class Options(BaseModel):
        """Settings of the ``openai`` backend (``backend.options`` in a recipe)."""

        model_config = ConfigDict(extra="forbid")

        model: str = "gpt-4o-mini"
        base_url: str | None = Field(None, description="default: $OPENAI_BASE_URL, else OpenAI")
        api_key: SecretStr | None = Field(None, description="default: $OPENAI_API_KEY")
        headers: dict[str, str] = Field({}, repr=False,
                                        description="extra HTTP headers for every request")
        extra_body: dict[str, Any] = Field({}, description="extra fields for every request body")
        timeout: float = Field(60.0, gt=0, description="seconds for one request")
        connect_timeout: float = Field(10.0, gt=0)
        max_timeouts: int = Field(1, ge=0, le=50, description=(
            "retries of a request that timed out (a server that hangs usually hangs again)"))
        max_retry_after: float = Field(60.0, ge=0, description=(
            "a 429's Retry-After is obeyed up to this many seconds, then retried anyway"))
        max_response_bytes: int = Field(8 * 1024 * 1024, ge=1024, description=(
            "larger answers are not read: they count as a bad answer and are retried"))
        concurrency: int = Field(64, ge=1, le=4096, description="requests in flight at most")
        lookahead: int = Field(8, ge=1, le=64, description=(
            "requests handed over ahead of ordered processing, in multiples of concurrency, "
            "so that the server stays busy while answers are processed in order"))
        batch_size: int = Field(1, ge=1)
        requests_per_minute: float | None = Field(None, gt=0)
        tokens_per_minute: float | None = Field(None, gt=0)
        max_retries: int = Field(6, ge=0, le=50, description="transport retries per request")
        backoff: float = Field(0.5, ge=0, description="first retry waits up to this many seconds")
        max_backoff: float = Field(30.0, ge=0)
        structured_output: Literal["auto", "json_schema", "json_object", "prompt"] = "auto"
        send_seed: bool = True
        max_client_errors: int = Field(8, ge=1, description=(
            "refused requests (400/422) in a row before the run stops"))
        http_client: Literal["httptools", "aiohttp"] = Field("httptools", description=(
            "httptools: textsynth's lean keep-alive client (a third of aiohttp's CPU a "
            "request); aiohttp: the general-purpose client, should a server need it"))

        @model_validator(mode="before")
        @classmethod
        def _moved(cls, data: Any) -> Any:
            if isinstance(data, Mapping) and "reasks" in data:
                raise ValueError("reasks moved to generation.repair_turns (correction turns "
                                 "for any backend)")
            return data

        @field_validator("headers")
        @classmethod
        def _headers(cls, v: dict[str, str]) -> dict[str, str]:
            for name, value in v.items():
                check_header(name, value)
            return v

        @field_validator("base_url")
        @classmethod
        def _url(cls, v: str | None) -> str | None:
            if v is not None:
                check_base_url(v)
            return v

    options: Options  # the base class builds it from the recipe's backend.options

    def __init__(self, options: BaseModel | Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        opts = self.options
        self.opts = opts
        base_url = opts.base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_URL
        key = opts.api_key.get_secret_value() if opts.api_key else os.environ.get("OPENAI_API_KEY")
        key = (key or "").strip() or None  # a key file's or .env's trailing newline
        if key and any(c in key for c in "\r\n\0"):
            raise RecipeError("the API key holds a line break (OPENAI_API_KEY or "
                              "backend.options.api_key): give the key alone",
                              field="backend.options.api_key")
        if not key and base_url.rstrip("/") == OPENAI_URL:
            raise RecipeError("OpenAI needs an API key: set OPENAI_API_KEY (or "
                              "backend.options.api_key, or base_url for another server)",
                              field="backend.options.api_key")
        try:
            url = check_base_url(base_url)
        except ValueError as exc:  # from $OPENAI_BASE_URL: the options were checked
            raise RecipeError(str(exc), field="backend.options.base_url") from None
        base_url, headers = _auth(url, key, opts.headers)
        self.limiter = RateLimiter(opts.concurrency, opts.requests_per_minute,
                                   opts.tokens_per_minute)
        self.client = ChatClient(base_url, headers, self.limiter, timeout=opts.timeout,
                                 connect_timeout=opts.connect_timeout,
                                 retry=RetryPolicy(opts.max_retries, opts.backoff,
                                                   opts.max_backoff, opts.max_retry_after,
                                                   opts.max_timeouts),
                                 max_body=opts.max_response_bytes,
                                 http_client=opts.http_client)
        self.stats: Counter[str] = self.client.stats
        self._level = 0 if opts.structured_output == "auto" else \
            _LEVELS.index(opts.structured_output)
        self._native_n: bool | None = None
        self._refused_in_row = 0

    @property
    def base_url(self) -> str:
        return self.client.base_url

    @property
    def max_concurrency(self) -> int:
        """Calls the engine may have open; HTTP requests in flight are bounded separately."""
        return self.opts.concurrency * self.opts.lookahead

    @property
    def structured_mode(self) -> str:
        """How structured output is asked for now (it steps down if the server refuses)."""
        return _LEVELS[self._level]

    def activity(self) -> str:
        """What requests wait for now ("" when nothing is slow), for the progress display."""
        return self.client.activity()

    def cancel_queued(self) -> None:
        self.stats["dropped_unsent"] += self.limiter.cancel_waiting()

    async def aclose(self) -> None:
        await self.client.aclose()

    async def generate(self, requests: Sequence[Request]) -> list[Completion]:
        return await self.generate_reporting(requests, None)

    async def generate_reporting(self, requests: Sequence[Request],
                                 on_state: RequestEvents | None) -> list[Completion]:
        try:
            if len(requests) == 1:
                return [await self._complete(requests[0], on_state)]
            return list(await asyncio.gather(*(self._complete(r, on_state) for r in requests)))
        except BackendError as exc:  # it ends the run: say it in the SDK's terms too
            cause = sdk_error(exc, self.client.url_shown)
            if cause is not None:
                cause.__cause__ = exc.__cause__
                exc.__cause__ = cause
            raise

    # -- one request ------------------------------------------------------------------------
    def _wants_format(self, request: Request) -> bool:
        if request.json_schema is None or request.prompt is not None or \
                self._level == len(_LEVELS) - 1:
            return False
        return self.opts.structured_output != "auto" or request.constrain

    def _body(self, request: Request, messages: Sequence[Message], n: int, seed: int,
              level: int | None) -> dict[str, Any]:
        msgs = list(messages)
        body: dict[str, Any] = {"model": self.opts.model, "messages": msgs} \
            if request.prompt is None else {"model": self.opts.model, "prompt": request.prompt}
        body.update(temperature=request.temperature, top_p=request.top_p,
                    max_tokens=request.max_tokens)
        if self.opts.send_seed:
            body["seed"] = seed
        if n > 1:
            body["n"] = n
        if level is not None and request.json_schema is not None:
            if _LEVELS[level] == "json_schema":
                body["response_format"] = {"type": "json_schema", "json_schema": {
                    "name": "output", "schema": dict(request.json_schema), "strict": False}}
            elif _LEVELS[level] == "json_object":
                body["response_format"] = {"type": "json_object"}
                hint = json.dumps(request.json_schema, ensure_ascii=False)
                last = msgs[-1]
                msgs[-1] = {**last, "content": f"{last['content']}\n\nReply with one JSON "
                            f"object that follows this JSON schema: {hint}"}
        if self.opts.extra_body:
            body.update(self.opts.extra_body)
        return body

    async def _ask(self, request: Request, messages: Sequence[Message], n: int, seed: int,
                   on_state: RequestEvents | None = None
                   ) -> tuple[list[tuple[str, str]], Usage, str, int]:
        """Choices as (text, finish_reason), usage, model and attempts for one body.

        ``on_state``: given for the request's first ask (nothing paid for it yet), which
        is told whether the request is on the wire or waits for a retry.
        """
        attempts = 0
        state = (lambda now: on_state(request, now)) if on_state is not None else None
        while True:
            level = self._level if self._wants_format(request) else None
            body = self._body(request, messages, n, seed, level)
            tokens = _prompt_chars(request, messages) // 4 + request.max_tokens * n
            try:
                answer, tries = await self.client.complete(body, tokens, state,
                                                           text=request.prompt is not None)
            except BackendResponseError as exc:
                attempts += 1
                if level is not None and exc.status in (400, 422):
                    if level == self._level:  # the server refuses this response_format
                        self._level += 1
                        self.stats["structured_fallback"] += 1
                    continue  # ask again, one step down
                raise self._refused(exc, attempts, request) from exc
            self._refused_in_row = 0
            return (*self._read(answer, request), attempts + tries)

    def _refused(self, exc: BackendResponseError, attempts: int, request: Request
                 ) -> Exception:
        if exc.status == 404 and request.prompt is not None:
            return BackendResponseError(
                f"the server has no text completions ({self.client.shown}/completions, 404): "
                "`generation.style: continue` needs them (vLLM, llama.cpp, TGI and Ollama "
                f"serve them), or use style: chat [{exc}]", exc.status, exc.body)
        if exc.status in _FATAL:
            return BackendResponseError(f"{_FATAL[exc.status]} [{exc}]", exc.status, exc.body)
        if exc.status not in (400, 413, 422):
            return exc
        self._refused_in_row += 1
        if self._refused_in_row >= self.opts.max_client_errors:
            return BackendResponseError(
                f"{self._refused_in_row} requests in a row were refused; last: {exc}",
                exc.status, exc.body)
        self.stats["refused"] += 1
        return GenerationError(f"the server refused the request: {exc}", attempts)

    def _read(self, answer: Mapping[str, Any], request: Request
              ) -> tuple[list[tuple[str, str]], Usage, str]:
        choices = sorted(answer["choices"], key=lambda c: c.get("index", 0))
        out = []
        for choice in choices:
            if request.prompt is None:
                text = (choice.get("message") or {}).get("content")
            else:  # a text completion: the continuation itself
                text = choice.get("text")
            out.append((str(text or ""), str(choice.get("finish_reason") or "stop")))
        raw = answer.get("usage") or {}
        usage = Usage(int(raw.get("prompt_tokens") or 0), int(raw.get("completion_tokens") or 0))
        if not raw:  # some servers send no usage: estimate, so budgets still hold
            usage = Usage(_prompt_chars(request, request.messages) // 4,
                          sum(len(t) for t, _ in out) // 4)
        if any(mask_known(t) != t for t, _ in out):  # a key the server echoed back
            out = [(mask_known(t), f) for t, f in out]
        return out, usage, mask_known(str(answer.get("model") or self.opts.model))

    async def _choices(self, request: Request, on_state: RequestEvents | None = None
                       ) -> tuple[list[tuple[str, str]], Usage, str, int]:
        """``request.n`` choices: in one call where the server honours ``n``, else several."""
        n = request.n if self._native_n is not False else 1
        got, usage, model, attempts = await self._ask(request, request.messages, n, request.seed,
                                                      on_state)
        if request.n > 1 and len(got) < request.n:
            self._native_n = False
            rest = await asyncio.gather(*(
                self._ask(request, request.messages, 1, request.seed + i)
                for i in range(len(got), request.n)))
            for more, u, _, a in rest:
                got += more
                usage, attempts = usage + u, attempts + a
        elif request.n > 1:
            self._native_n = True
        return got[: request.n], usage, model, attempts

    async def _complete(self, request: Request, on_state: RequestEvents | None = None
                        ) -> Completion:
        choices, usage, model, attempts = await self._choices(request, on_state)
        texts, reasons = [t for t, _ in choices], [f for _, f in choices]
        finish = "length" if "length" in reasons else (reasons[0] if reasons else "stop")
        return Completion(texts=texts, usage=usage, finish_reason=finish, model=model,
                          attempts=attempts, finish_reasons=reasons)
