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
from textsynth.languages import language_name
from textsynth.plan import Job, Quota
from textsynth.recipe import Recipe
from textsynth.schemas import OutputSchema, PydanticSchema, load_schema
from textsynth.templates import PromptTemplate

__all__ = ["AcceptedTexts", "PromptBuilder", "label_context"]


def label_context(label: str, language: str) -> dict[str, Any]:
    """The variables every template gets for a row's label and target language."""
    return {
        "label": label,
        "label_name": label.replace("_", " "),
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

    @cached_property
    def schema(self) -> OutputSchema:
        """The recipe's output schema (its JSON schema rides in every request)."""
        return load_schema(self.recipe.output_schema).for_recipe(self.recipe)

    def context(self, label: str, language: str, attributes: dict[str, str],
                examples: list[str], avoid: list[str],
                slot_values: dict[str, str]) -> dict[str, Any]:
        """Everything a recipe's template can use for one prompt."""
        return {
            **self._static,
            "labels": self._labels,  # shared, not copied: the sandbox keeps it unchanged
            **label_context(label, language),
            "label_description": self.recipe.labels[label].description,
            "attributes": attributes,
            "examples": examples,
            "avoid": avoid,
            "slots": slot_values,
        }

    def job_context(self, job: Job) -> dict[str, Any]:
        """The context of one job, with its few-shot and "do not repeat" rows."""
        gen = self.recipe.generation
        examples = list(job.fewshot)
        avoid: list[str] = []
        bootstrap = gen.bootstrap and not examples
        pool = self.accepted
        cut = pool.count_before(job.quota, job.index - self.lag) if pool is not None else 0
        if pool is not None and cut and (gen.avoid or (gen.fewshot and bootstrap)):
            # one draw from the pool (a prefix, so the same at any concurrency): without
            # seed examples its first rows are this label's own accepted rows shown as
            # examples (bootstrapped few-shot), the rest are "do not repeat"
            shots = gen.fewshot if bootstrap else 0
            picks = random.Random(job.seed).sample(range(cut), min(cut, shots + gen.avoid))
            if shots:
                examples = pool.texts(job.quota, picks[:shots])
            avoid = pool.texts(job.quota, picks[shots:])
        return self.context(job.label, job.language, job.attributes, examples, avoid,
                            job.slot_values)

    def messages(self, job: Job) -> tuple[dict[str, str], ...]:
        return self.template.render_messages(**self.job_context(job))

    def request(self, job: Job) -> Request:
        gen = self.recipe.generation
        schema = self.schema
        return Request(
            messages=self.messages(job),
            temperature=gen.temperature,
            top_p=gen.top_p,
            max_tokens=gen.max_tokens,
            n=gen.n,
            seed=job.seed,
            json_schema=schema.json_schema(),
            constrain=isinstance(schema, PydanticSchema),  # built-in lists: in the prompt
            metadata={"slot": str(job.quota), "index": job.index},
        )
