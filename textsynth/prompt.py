"""The template context: what a prompt template can use, built in one place.

``run`` renders a job (label, language, attributes, few-shot examples, "do not repeat"
rows) with :class:`PromptBuilder`; ``translate``/``paraphrase`` and the quality rules that
render a recipe's prompt start from the same :func:`label_context`, so a variable means
the same thing in every template.
"""

from __future__ import annotations

import bisect
import random
from functools import cached_property
from operator import itemgetter
from typing import Any

from textsynth.backends.base import Request
from textsynth.labels import readable_label
from textsynth.languages import language_name
from textsynth.plan import Job, Quota
from textsynth.recipe import Recipe
from textsynth.schemas import OutputSchema, Parsed, PydanticSchema, load_schema
from textsynth.templates import PromptTemplate

__all__ = ["AcceptedTexts", "ContinuedList", "PromptBuilder", "label_context"]


def label_context(label: str, language: str) -> dict[str, Any]:
    """The variables every template gets for a row's label and target language."""
    return {
        "label": label,
        "label_name": readable_label(label),  # "AddToPlaylist" -> "add to playlist"
        "language": language,
        "language_name": language_name(language),
    }


class AcceptedTexts:
    """Per quota, the accepted texts with the round they came from, in round order.

    Prompts show a prefix of it (rows accepted at least ``lag`` rounds before the job),
    so a prompt does not depend on how many requests were in flight.
    """

    def __init__(self, quotas: list[Quota]):
        self._rows: dict[Quota, list[tuple[int, str]]] = {q: [] for q in quotas}

    def add(self, quota: Quota, index: int, text: str) -> None:
        self._rows[quota].append((index, text))

    def remove(self, quota: Quota, text: str) -> bool:
        """Forget the first accepted ``text`` of ``quota`` (a retracted row)."""
        rows = self._rows[quota]
        for i, (_, seen) in enumerate(rows):
            if seen == text:
                del rows[i]
                return True
        return False

    def count_before(self, quota: Quota, index: int) -> int:
        """How many rows were accepted from jobs before round ``index``."""
        return bisect.bisect_left(self._rows[quota], index, key=itemgetter(0))

    def texts(self, quota: Quota, positions: list[int]) -> list[str]:
        """The accepted texts at ``positions`` (oldest first is position 0)."""
        rows = self._rows[quota]
        return [rows[i][1] for i in positions]


class ContinuedList(OutputSchema):
    """Reads what a model added to a list it was given to continue.

    The prompt ends in a list marker (``-``), so the completion's first line is the
    first new item and each following line that starts with ``-`` is another. The list
    ends at a blank line or a line of anything else (a model that has left the list
    writes headings and prose), or after ``limit`` items; the rest is not read. The
    items are then read by the recipe's own schema.
    """

    name = "continued"

    def __init__(self, schema: OutputSchema, limit: int):
        self.inner = schema
        self.limit = limit

    def json_schema(self) -> dict[str, Any]:
        return self.inner.json_schema()

    def _items(self, text: str) -> tuple[list[str], bool]:
        """The list items at the start of ``text``, and whether the list ended in it."""
        lines = text.rstrip().split("\n")
        items: list[str] = []
        for i, line in enumerate(lines):
            line = line.strip()
            if (i and not line.startswith("-")) or not line or len(items) == self.limit:
                return items, True
            items.append(line.removeprefix("-").strip() if i else line)
        return items, False

    def parse(self, text: str) -> list[Parsed]:
        items, _ = self._items(text)
        if not items:
            return [Parsed(text, error="empty_completion")]
        return self.inner.parse("\n".join(f"- {item}" for item in items))

    def ends_list(self, text: str) -> bool:
        return self._items(text)[1]


class PromptBuilder:
    """Renders a recipe's jobs: the template context, the messages, the request.

    Needs no backend, store or quality rule: ``preview`` uses it as it is.
    """

    def __init__(self, recipe: Recipe, accepted: AcceptedTexts | None = None, lag: int = 1,
                 template: PromptTemplate | None = None):
        self.recipe = recipe
        self.template = template or PromptTemplate.load(recipe.template, recipe.base_dir)
        self.accepted = accepted
        self.lag = lag  # rounds between a job and the accepted rows its prompt may show
        self._labels = {name: s.description for name, s in recipe.labels.items()}
        self._static = {  # the parts of every job's context that never change
            "task": recipe.description,
            "n": recipe.generation.examples_per_request,
            "slot_types": recipe.slots,
        }
        # per label and language: the variables that depend on nothing else (built once,
        # not for every job: naming a label takes a few regular expressions)
        self._per_label: dict[tuple[str, str], dict[str, Any]] = {}

    @property
    def continues(self) -> bool:
        """Whether prompts are documents to continue (``generation.style: continue``)."""
        return self.recipe.generation.style == "continue"

    @cached_property
    def output_schema(self) -> OutputSchema:
        """The recipe's output schema: what a row holds, and so the export's columns."""
        return load_schema(self.recipe.output_schema).for_recipe(self.recipe)

    @cached_property
    def schema(self) -> OutputSchema:
        """What reads an answer (its JSON schema rides in every request): the output
        schema, or for a continued list the lines it adds, read by the output schema."""
        if self.continues:
            return ContinuedList(self.output_schema, self.recipe.generation.examples_per_request)
        return self.output_schema

    def context(self, label: str, language: str, attributes: dict[str, str],
                examples: list[str], avoid: list[str],
                slot_values: dict[str, str]) -> dict[str, Any]:
        """Everything a recipe's template can use for one prompt."""
        per_label = self._per_label.get((label, language))
        if per_label is None:
            per_label = self._per_label[(label, language)] = {
                **label_context(label, language),
                "label_description": self.recipe.labels[label].description,
            }
        return {
            **self._static,
            "labels": self._labels,  # shared, not copied: the sandbox keeps it unchanged
            **per_label,
            "attributes": attributes,
            "examples": examples,
            "avoid": avoid,
            "slots": slot_values,
        }

    @cached_property
    def json_schema(self) -> dict[str, Any]:
        """The output schema's JSON schema, built once (a pydantic model's takes long to
        build) and shared by every request, which only read it."""
        return self.schema.json_schema()

    def job_context(self, job: Job) -> dict[str, Any]:
        """The context of one job, with its few-shot and "do not repeat" rows."""
        gen = self.recipe.generation
        examples = list(job.fewshot)
        avoid: list[str] = []
        # a continued list shows accepted rows next to the seed examples: a longer,
        # changing list; an instruction shows them only in place of missing seeds
        bootstrap = gen.bootstrap and (self.continues or not examples)
        pool = self.accepted
        cut = pool.count_before(job.quota, job.index - self.lag) if pool is not None else 0
        if pool is not None and cut and (gen.avoid or (gen.fewshot and bootstrap)):
            # one draw from the pool (a prefix, so the same at any concurrency): without
            # seed examples its first rows are this label's own accepted rows shown as
            # examples (bootstrapped few-shot), the rest are "do not repeat"
            shots = gen.fewshot if bootstrap else 0
            picks = random.Random(job.seed).sample(range(cut), min(cut, shots + gen.avoid))
            if shots:
                drawn = pool.texts(job.quota, picks[:shots])
                examples = examples + drawn
                if examples != drawn:  # seeds and accepted rows, in an order of this job's
                    random.Random(job.seed + 1).shuffle(examples)
            avoid = pool.texts(job.quota, picks[shots:])
        return self.context(job.label, job.language, job.attributes, examples, avoid,
                            job.slot_values)

    def messages(self, job: Job) -> tuple[dict[str, str], ...]:
        """The job's chat messages; for a continued list, one ``continue`` entry holding
        the document (what ``preview`` shows)."""
        if self.continues:
            return ({"role": "continue", "content": self.raw_prompt(job)},)
        return self.template.render_messages(**self.job_context(job))

    def raw_prompt(self, job: Job) -> str:
        """The document the model continues (``generation.style: continue``)."""
        return self.template.render(**self.job_context(job))

    def request(self, job: Job) -> Request:
        gen = self.recipe.generation
        schema = self.schema
        raw = self.continues
        return Request(
            messages=() if raw else self.messages(job),
            prompt=self.raw_prompt(job) if raw else None,
            temperature=gen.temperature,
            top_p=gen.top_p,
            max_tokens=gen.max_tokens,
            n=gen.n,
            seed=job.seed,
            json_schema=self.json_schema,
            constrain=isinstance(schema, PydanticSchema),  # built-in lists: in the prompt
            metadata={"slot": str(job.quota), "index": job.index},
        )
