"""Job sources: what a run makes, as the engine sees it.

The engine (:mod:`textsynth.engine`), its request window and the acceptor are the same
for every command; what differs is where the jobs come from. :class:`RecipeJobs` is a
recipe's plan (``run``: one quota per label and language); :mod:`textsynth.augment`
has one quota per source row and target language (``translate``, ``paraphrase``), with
its own rules for each candidate (entities kept, not a copy of the source ...).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textsynth.export.features import DatasetLayout
from textsynth.plan import Job, Planner, Quota
from textsynth.prompt import AcceptedTexts, PromptBuilder
from textsynth.recipe import BudgetSpec, Recipe
from textsynth.schemas import OutputSchema, Parsed
from textsynth.templates import PromptTemplate

if TYPE_CHECKING:
    from textsynth.backends import Backend
    from textsynth.backends.base import Request
    from textsynth.quality import QualityGate
    from textsynth.result import QuotaStats

__all__ = ["JobSource", "Problem", "RecipeJobs"]

#: why a candidate is rejected before the quality gate: (reason, detail)
Problem = tuple[str, str]


class JobSource(ABC):
    """Quotas to fill, the k-th job of each, its request, and how a candidate is read.

    ``job(quota, k)`` and ``request(job)`` must depend only on the source and ``k``
    (and on the rows accepted ``lag`` rounds before, see :meth:`attach`), so the same
    seed gives the same dataset and a resumed run sends nothing twice. ``lag`` grows with
    the request window: prompts that show accepted rows differ at another concurrency.
    """

    #: the recipe the run amounts to: stored with the run, shown in the dataset card,
    #: and where its export settings come from
    recipe: Recipe
    schema: OutputSchema
    template: PromptTemplate
    max_attempts: int  # jobs per quota before it gives up
    budget: BudgetSpec = BudgetSpec()
    batch_size: int | None = None  # None: the backend's own
    concurrency: int | None = None
    multilingual: bool = False  # progress and tables name the language of each label
    accepted: AcceptedTexts | None = None  # see attach()
    lag: int = 1

    @property
    @abstractmethod
    def quotas(self) -> list[Quota]:
        """Every quota, in the order each round processes them."""

    @abstractmethod
    def target(self, quota: Quota) -> int:
        """How many rows the quota wants."""

    @abstractmethod
    def job(self, quota: Quota, index: int) -> Job:
        """The quota's ``index``-th job (its first attempt is job 0)."""

    @abstractmethod
    def request(self, job: Job) -> Request:
        """The rendered request of a job."""

    @abstractmethod
    def build_backend(self) -> Backend:
        """The backend a run uses when it is given none."""

    @abstractmethod
    def build_gate(self, backend: Backend) -> QualityGate:
        """The quality rules every candidate passes."""

    @property
    @abstractmethod
    def layout(self) -> DatasetLayout:
        """What the export of the accepted rows needs (labels, schema, export settings)."""

    @property
    def output_dir(self) -> Path:
        return self.recipe.output_dir

    def attach(self, accepted: AcceptedTexts | None, lag: int) -> None:
        """The rows accepted so far, which prompts may show from ``lag`` rounds back
        (None once the run is over: the export does not need them)."""
        self.accepted, self.lag = accepted, lag

    def expected_yield(self, stats: QuotaStats) -> float:
        """Rows a job of this quota is expected to give (how far ahead jobs are sent)."""
        if stats.jobs == 0:
            gen = self.recipe.generation
            return gen.examples_per_request * gen.n * 0.5
        return max(0.1, stats.accepted / stats.jobs)

    def check(self, job: Job, parsed: Parsed) -> tuple[Parsed, Problem | None]:
        """A candidate as it will be stored, and why it is rejected (None: the quality
        gate judges it next)."""
        return parsed, None

    def summary(self) -> dict[str, Any]:
        """What the stored run summary adds for this kind of run."""
        return {}


class RecipeJobs(JobSource):
    """A recipe's plan: quotas per label and language, jobs from :class:`Planner`,
    requests from :class:`PromptBuilder`."""

    def __init__(self, recipe: Recipe):
        self.recipe = recipe
        self.planner = Planner(recipe)
        self.prompts = PromptBuilder(recipe)
        self.schema = self.prompts.schema
        self.template = self.prompts.template
        self.max_attempts = recipe.max_attempts
        self.budget = recipe.budget
        self.batch_size = recipe.generation.batch_size
        self.concurrency = recipe.generation.concurrency
        self.multilingual = len(recipe.all_languages) > 1

    @property
    def quotas(self) -> list[Quota]:
        return self.planner.quotas

    def target(self, quota: Quota) -> int:
        return self.recipe.per_label

    def job(self, quota: Quota, index: int) -> Job:
        return self.planner.job(quota, index)

    @property
    def layout(self) -> DatasetLayout:
        return DatasetLayout.of(self.recipe, self.prompts.output_schema)

    def request(self, job: Job) -> Request:
        return self.prompts.request(job)

    def check(self, job: Job, parsed: Parsed) -> tuple[Parsed, Problem | None]:
        """A row with entities must name a value of each slot type its label uses: a row
        of set_thermostat that names the room and "19 degrees", which no slot declares,
        would be exported with that temperature unannotated."""
        entities = parsed.fields.get("entities") if job.slot_values else None
        if entities is not None:
            named = {e["entity"] for e in entities}
            missing = [name for name in job.slot_values if name not in named]
            if missing:
                return parsed, ("slot_missing", ", ".join(missing))
        return parsed, None

    def attach(self, accepted: AcceptedTexts | None, lag: int) -> None:
        self.prompts.accepted, self.prompts.lag = accepted, lag

    def build_backend(self) -> Backend:
        from textsynth.executors import build_backend

        return build_backend(self.recipe)

    def build_gate(self, backend: Backend) -> QualityGate:
        from textsynth.quality import build_gate

        return build_gate(self.recipe, backend)
