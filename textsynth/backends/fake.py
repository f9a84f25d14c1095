"""A scripted backend for tests and for trying recipes without a model."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

from textsynth.backends.base import Backend, Completion, Request, Usage

__all__ = ["FakeBackend"]

Handler = Callable[[Request], "str | Completion | list[str]"]


class FakeBackend(Backend):
    """Answers from a script or a handler function, and records every request.

    >>> fake = FakeBackend(responses=['["turn on the lights"]'])
    >>> # fake.requests lists what the engine sent

    With ``handler``, each request is answered by ``handler(request)``; otherwise
    ``responses`` are served in order (and cycled). A response may contain ``{seed}``
    (a short base-36 token of the request's seed: letters and digits, so it never looks
    like a phone or card number to the PII rule) and ``{label}``, which makes answers
    depend only on the request: what a deterministic model would do.
    """

    name = "fake"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        model: str = "fake"
        responses: list[str] = []
        batch_size: int = 8
        concurrency: int = 1
        latency: float = 0.0

    options: Options  # the base class builds it from the recipe's backend.options

    def __init__(
        self,
        options: BaseModel | dict[str, Any] | None = None,
        *,
        responses: Iterable[str] | None = None,
        handler: Handler | None = None,
        **kwargs: Any,
    ) -> None:
        opts = dict(options or {}) if not isinstance(options, BaseModel) else options
        if isinstance(opts, dict):
            opts.update(kwargs)
            if responses is not None:
                opts["responses"] = list(responses)
        super().__init__(opts)
        self.handler = handler
        self.requests: list[Request] = []
        self.calls = 0
        self._cursor = 0

    def enqueue(self, responses: Iterable[str]) -> None:
        """Append scripted responses."""
        self.options.responses.extend(responses)

    def _answer(self, request: Request) -> Completion:
        if self.handler is not None:
            out = self.handler(request)
            if isinstance(out, Completion):
                return out
            texts = out if isinstance(out, list) else [out]
        else:
            script: list[str] = self.options.responses
            if not script:
                texts = [""]
            else:
                text = script[self._cursor % len(script)]
                self._cursor += 1
                if "{" in text:
                    label = str(request.metadata.get("slot", "")).split("/")[0]
                    text = text.replace("{seed}", _token(request.seed)).replace("{label}", label)
                texts = [text]
        words = sum(len(m["content"].split()) for m in request.messages)
        words += len((request.prompt or "").split())
        return Completion(
            texts=texts,
            usage=Usage(words, sum(len(t.split()) for t in texts)),
            model=self.model_name,
        )

    async def generate(self, requests: Sequence[Request]) -> list[Completion]:
        self.calls += 1
        latency: float = self.options.latency
        if latency:
            import asyncio  # here, not at the top: `textsynth --help` does not need it

            await asyncio.sleep(latency)
        out = []
        for request in requests:
            self.requests.append(request)
            out.append(self._answer(request))
        return out


def _token(seed: int) -> str:
    digits = "abcdefghijklmnopqrstuvwxyz0123456789"
    out = ""
    while True:
        seed, rem = divmod(seed, 36)
        out = digits[rem] + out
        if not seed:
            return out
