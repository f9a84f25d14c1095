"""Schema repair: an answer that does not fit the output schema gets a correction turn.

:class:`SchemaRepair` wraps any backend. When a choice of a completion does not parse
against the recipe's output schema (no JSON, a field that fails validation, no items),
or was cut off at the token limit, it sends the wrapped backend the conversation again
with the bad answer and a short correction naming the error, under a seed derived from
the request's, at most ``turns`` times. The completion it returns holds, per choice,
the answer with the most usable items (a complete one before a cut one, the later on a
tie) and the usage and attempts of every turn, so budgets and token counts include
them.

The engine stores what the wrapper returns under the original request's key: the
stored completion is the repaired one, and a resumed run reads it back without sending
anything (a call interrupted between turns stores nothing, like any call in flight).

    generation: {repair_turns: 2}   # default: the backend's (2 for openai, else 0)
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace

from textsynth.backends.base import Backend, Completion, Request, RequestEvents, Usage
from textsynth.errors import GenerationError
from textsynth.schemas import OutputSchema, Parsed
from textsynth.seeds import derive_seed

__all__ = ["CORRECTION", "SchemaRepair", "describe_errors"]

CORRECTION = ("That answer could not be used: {errors}. Reply again with the complete answer "
              "in the requested format and nothing else.")
_WORDS = {"empty_completion": "the answer was empty", "no_json": "the answer held no JSON",
          "no_items": "the answer held no items"}


def describe_errors(errors: Sequence[str], finish_reason: str) -> str:
    """The parse errors of an answer as one sentence for the model (three at most)."""
    parts = [_WORDS.get(e, e.removeprefix("invalid: ")) for e in errors]
    if finish_reason == "length":
        parts.insert(0, "it was cut off at the token limit, so answer more briefly")
    return "; ".join(list(dict.fromkeys(parts))[:3])


@dataclass
class _Choice:
    """One choice being repaired: the answer now, and the best one so far."""

    request: Request
    index: int  # the choice's index in its completion
    text: str
    finish: str
    errors: list[str]
    best: tuple[tuple[int, bool], str, str]  # (score, text, finish)
    usage: Usage
    attempts: int = 0
    parsed: list[Parsed] | None = None  # what the schema read from the first answer

    @property
    def broken(self) -> bool:
        return bool(self.errors) or self.finish == "length"


class SchemaRepair(Backend):
    """``backend``, with up to ``turns`` correction turns for answers that do not fit
    ``schema``.

    >>> fake = FakeBackend(responses=['not json', '["turn on the light"]'])  # doctest: +SKIP
    >>> repaired = SchemaRepair(fake, load_schema("utterances"), turns=2)  # doctest: +SKIP

    Requests without a ``json_schema`` (a judge's question) and raw prompts (a list the
    model continues: there is no conversation to correct) pass through as they are.
    ``stats`` adds ``repair_turns`` (correction turns sent), ``unrepaired`` (choices
    still unusable after the last turn) and ``dropped`` (turns cancelled because the run
    needed nothing more) to the wrapped backend's own counters.
    """

    def __init__(self, backend: Backend, schema: OutputSchema, turns: int) -> None:
        if turns < 0:
            raise ValueError(f"turns must be 0 or more, got {turns}")
        super().__init__(backend.options)
        self.backend = backend
        self.schema = schema
        self.turns = turns
        self.name = backend.name
        self.reports_request_state = backend.reports_request_state
        self.calls_run_to_the_end = backend.calls_run_to_the_end
        self.repairs: Counter[str] = Counter()

    # -- the wrapped backend's identity and capacity ----------------------------------------
    @property
    def model_name(self) -> str:
        return self.backend.model_name

    @property
    def batch_size(self) -> int:
        return self.backend.batch_size

    @property
    def max_concurrency(self) -> int:
        return self.backend.max_concurrency

    @property
    def stats(self) -> dict[str, int]:
        inner: dict[str, int] = dict(getattr(self.backend, "stats", {}))
        return {**inner, **self.repairs}

    def cancel_queued(self) -> None:
        self.backend.cancel_queued()

    async def aclose(self) -> None:
        await self.backend.aclose()

    # -- generating --------------------------------------------------------------------------
    async def generate(self, requests: Sequence[Request]) -> list[Completion]:
        return await self.repair(requests, await self.backend.generate(requests))

    async def generate_reporting(self, requests: Sequence[Request],
                                 on_state: RequestEvents) -> list[Completion]:
        # only the first ask is reported: once it is answered the job is paid for
        answers = await self.backend.generate_reporting(requests, on_state)
        return await self.repair(requests, answers)

    async def repair(self, requests: Sequence[Request],
                     completions: list[Completion]) -> list[Completion]:
        """``completions`` (one per request) with their unusable choices repaired."""
        if not self.turns:
            return completions
        choices = [self._choice(request, i, text, completion.choice_finish(i))
                   for request, completion in zip(requests, completions, strict=True)
                   # asks for no schema (a judge's question), or is a document the
                   # model continues (no conversation to correct): not ours
                   if request.json_schema is not None and request.prompt is None
                   for i, text in enumerate(completion.texts)]
        open_ = [c for c in choices if c.broken]
        for turn in range(self.turns):
            if not open_:
                break
            open_ = await self._turn(open_, turn)
        self.repairs["unrepaired"] += sum(c.broken for c in choices)
        by_request: dict[int, list[_Choice]] = {}
        for c in choices:
            by_request.setdefault(id(c.request), []).append(c)
        return [self._merged(completion, by_request.get(id(request), []))
                for request, completion in zip(requests, completions, strict=True)]

    def _choice(self, request: Request, index: int, text: str, finish: str) -> _Choice:
        parsed = self.schema.parse(text)
        errors, score = self._score(parsed, finish)
        return _Choice(request, index, text, finish, errors, (score, text, finish), Usage(),
                       parsed=parsed)

    def _check(self, text: str, finish: str) -> tuple[list[str], tuple[int, bool]]:
        return self._score(self.schema.parse(text), finish)

    @staticmethod
    def _score(parsed: list[Parsed], finish: str) -> tuple[list[str], tuple[int, bool]]:
        errors = [p.error for p in parsed if p.error]
        return errors, (len(parsed) - len(errors), finish != "length")

    def _correction(self, choice: _Choice, turn: int) -> Request:
        request = choice.request
        said = CORRECTION.format(errors=describe_errors(choice.errors, choice.finish))
        return replace(request, n=1,
                       seed=derive_seed(request.seed, "repair", choice.index, turn),
                       messages=(*request.messages,
                                 {"role": "assistant", "content": choice.text},
                                 {"role": "user", "content": said}))

    async def _turn(self, open_: list[_Choice], turn: int) -> list[_Choice]:
        """One correction turn for every open choice, in batches of the backend's size;
        the choices still broken afterwards (a refused correction closes its choice)."""
        size = max(1, self.backend.batch_size)
        groups = [open_[i:i + size] for i in range(0, len(open_), size)]
        self.repairs["repair_turns"] += len(open_)
        answers = await asyncio.gather(*(self._ask(g, turn) for g in groups))
        still = []
        for group, got in zip(groups, answers, strict=True):
            if got is None:  # refused for good: keep the best answer so far
                continue
            for choice, completion in zip(group, got, strict=True):
                choice.usage = choice.usage + completion.usage
                choice.attempts += completion.attempts
                choice.text, choice.finish = completion.text, completion.choice_finish(0)
                choice.errors, score = self._check(choice.text, choice.finish)
                if score >= choice.best[0]:
                    choice.best = (score, choice.text, choice.finish)
                if choice.broken:
                    still.append(choice)
        return still

    async def _ask(self, group: list[_Choice], turn: int) -> list[Completion] | None:
        """The corrections' answers; None when refused, or dropped by ``cancel_queued``
        (the run needs nothing more: the answers already paid for are kept)."""
        try:
            return await self.backend.generate([self._correction(c, turn) for c in group])
        except GenerationError:
            return None
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # this call itself is cancelled (the run failed or was interrupted)
            self.repairs["dropped"] += len(group)
            return None

    def _merged(self, completion: Completion, choices: list[_Choice]) -> Completion:
        if not any(c.attempts for c in choices):
            if choices and len(choices) == len(completion.texts):  # read once: the acceptor
                read = [c.parsed or [] for c in sorted(choices, key=lambda c: c.index)]
                completion.parsed = (self.schema, tuple(completion.texts), read)
            return completion
        texts, reasons = list(completion.texts), [completion.choice_finish(i)
                                                 for i in range(len(completion.texts))]
        usage, attempts = completion.usage, completion.attempts
        for c in choices:
            _, texts[c.index], reasons[c.index] = c.best
            usage, attempts = usage + c.usage, attempts + c.attempts
        finish = "length" if "length" in reasons else (reasons[0] if reasons else "stop")
        return replace(completion, texts=texts, usage=usage, attempts=attempts,
                       finish_reason=finish, finish_reasons=reasons)
