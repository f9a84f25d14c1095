"""The backend interface: requests in, completions out."""

from __future__ import annotations

import contextlib
import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from textsynth._json import to_sorted_json
from textsynth.errors import RecipeError
from textsynth.validation import describe

__all__ = ["Backend", "Completion", "Message", "Request", "RequestEvents", "Usage"]

#: ``(request, "sent" | "waiting")``: see :meth:`Backend.generate_reporting`
RequestEvents = Callable[["Request", str], None]

Message = dict[str, str]


@dataclass(frozen=True)
class Request:
    """One prompt to send: chat messages (or a raw prompt) plus sampling parameters.

    ``prompt``, when given, is a document the model continues as it is, with no chat
    template (``generation.style: continue``); ``messages`` is then empty. A local
    backend tokenises it as it is; the openai backend sends it as a text completion
    (``/completions``). ``seed`` is the job seed:
    a deterministic backend gives the same completion for the same request.
    ``json_schema`` is the output schema, for backends that can constrain decoding or
    ask the server for structured output; ``constrain`` says whether they should when
    left to choose (``structured_output: auto``): false for the built-in list schemas,
    which are asked for in the prompt (constraining a small model to a JSON list of
    strings made its texts worse). ``metadata`` is for the caller (which quota and job
    a request is for) and is in neither the key nor equality.
    """

    messages: tuple[Message, ...]
    temperature: float = 0.9
    top_p: float = 0.95
    max_tokens: int = 256
    n: int = 1
    seed: int = 0
    json_schema: Mapping[str, Any] | None = None
    constrain: bool = True
    prompt: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def key(self, backend: str, model: str) -> str:
        """Content hash identifying this request for the cache (metadata excluded)."""
        payload = {
            "backend": backend,
            "model": model,
            "messages": list(self.messages),
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "n": self.n,
            "seed": self.seed,
            "schema": self.json_schema,
        }
        if self.prompt is not None:  # absent otherwise: chat requests keep their keys
            payload["prompt"] = self.prompt
        raw = to_sorted_json(payload)
        return hashlib.sha256(raw.encode()).hexdigest()[:32]


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
        )


@dataclass
class Completion:
    """What a backend returned for one request: one text per choice (``n``).

    ``finish_reason`` is ``"length"`` when any choice was cut off at ``max_tokens``;
    ``finish_reasons`` gives each choice's own, where the backend knows them.
    """

    texts: list[str]
    usage: Usage = field(default_factory=Usage)
    finish_reason: str = "stop"
    model: str = ""
    attempts: int = 1
    finish_reasons: list[str] | None = None
    #: what an output schema read from ``texts``, as ``(schema, texts, items per text)``,
    #: when a wrapper (correction turns) read them already; used where it still matches
    parsed: tuple[Any, tuple[str, ...], list[list[Any]]] | None = field(
        default=None, compare=False, repr=False)

    def choice_finish(self, index: int) -> str:
        """Why choice ``index`` ended (the completion's reason when not known per choice)."""
        reasons = self.finish_reasons
        return reasons[index] if reasons is not None and index < len(reasons) else \
            self.finish_reason

    @property
    def text(self) -> str:
        return self.texts[0] if self.texts else ""


class Backend(ABC):
    """A text generator. Subclasses implement :meth:`generate` and declare ``Options``.

    Capability flags are class attributes; ``max_concurrency`` and ``batch_size``
    tell the engine how many requests to hand over at once and how many calls may
    run concurrently.
    """

    # plain class attributes, not ClassVar: a wrapper (backends.repair) takes its inner's
    name: str = ""
    reports_request_state: bool = False  # see generate_reporting
    #: a call runs to its end once begun (a local model's batch in a thread, which the
    #: process waits for before it exits): a stopped run waits for it and keeps its answers
    #: rather than dropping them after the grace period
    calls_run_to_the_end: bool = False
    #: correction turns for an answer that does not fit the output schema, when the
    #: recipe leaves ``generation.repair_turns`` unset (see :mod:`textsynth.backends.repair`)
    default_repair_turns: ClassVar[int] = 0
    _busy = ""  # see busy()

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")

    def __init__(self, options: BaseModel | Mapping[str, Any] | None = None) -> None:
        if isinstance(options, BaseModel):
            self.options = options
        else:
            try:
                self.options = self.Options(**dict(options or {}))
            except ValidationError as exc:
                where, msg = describe(exc, "backend.options")
                raise RecipeError(msg, field=where) from exc

    @property
    def model_name(self) -> str:
        """The model identifier recorded in provenance and in the request key."""
        return str(getattr(self.options, "model", "") or self.name)

    @property
    def batch_size(self) -> int:
        """How many requests the engine hands to one :meth:`generate` call."""
        return int(getattr(self.options, "batch_size", 1) or 1)

    @property
    def max_concurrency(self) -> int:
        """How many :meth:`generate` calls may run at once."""
        return int(getattr(self.options, "concurrency", 1) or 1)

    @abstractmethod
    async def generate(self, requests: Sequence[Request]) -> list[Completion]:
        """Return one completion per request, in order.

        Raise a :class:`~textsynth.errors.BackendError` when the whole call failed.
        """

    async def generate_reporting(self, requests: Sequence[Request],
                                 on_state: RequestEvents) -> list[Completion]:
        """:meth:`generate`, telling ``on_state`` where each request stands.

        A backend that ``reports_request_state`` calls ``on_state(request, "sent")``
        when the request goes on the wire (its first attempt or a retry), and
        ``on_state(request, "waiting")`` when it waits before a retry and nothing was
        paid for it yet (a 429, a 5xx, a dropped connection). Before its first "sent",
        and while "waiting", the call may be cancelled at no cost: the engine cancels
        requests it no longer needs and replaces waiting ones by other jobs (see
        :mod:`textsynth._dispatch`). Other backends report nothing.
        """
        return await self.generate(requests)

    def activity(self) -> str:
        """What requests wait for now, in a few words, for the progress display ("" when
        nothing is slow): a local model loading, a retry's wait."""
        return self._busy

    @contextlib.contextmanager
    def busy(self, what: str) -> Iterator[None]:
        """Say ``what`` as the backend's :meth:`activity` while the block runs."""
        self._busy = what
        try:
            yield
        finally:
            self._busy = ""

    def check_chat_template(self, tokenizer: Any) -> None:
        """Chat messages need ``tokenizer``'s chat template: a :class:`RecipeError` (one
        line, the same on every local backend) for a base model, which has none."""
        if not getattr(tokenizer, "chat_template", None):
            raise RecipeError(f"the model {self.model_name} has no chat template: a base model "
                              "continues text and cannot answer chat messages (set "
                              "generation.style: continue)", field="backend.options.model")

    async def ready(self, request: Request) -> None:  # noqa: B027 - optional hook
        """Get ready to answer requests like ``request`` (a local model loads), raising the
        error the first of them would meet (a base model given chat messages); nothing
        is generated. A mixture asks each of its models before it sends any a request."""

    def cancel_queued(self) -> None:  # noqa: B027 - optional hook
        """Drop requests that wait in the backend's own queue and were not sent yet.

        The engine calls this when a run ends: it still waits for (and stores) what
        is in flight, but needs nothing more. Their ``generate`` calls are cancelled.
        """

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections, models and other resources."""

