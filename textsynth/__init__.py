"""textsynth: build labeled text datasets with LLMs.

>>> from textsynth import load_recipe, run_recipe
>>> result = run_recipe(load_recipe("examples/smart_home_intents.yaml"))  # doctest: +SKIP

From a recipe to a dataset, four hops from :func:`run_recipe` (``pipeline``):

1. ``Engine.run`` (``engine``): the round loop; quotas, top-up, resume, stop reasons.
   ``Planner.job`` (``plan``) gives each quota's k-th job; ``PromptBuilder.request``
   (``prompt``) renders it.
2. ``RequestWindow`` (``_dispatch``): jobs in flight, one record each, sent ahead of the
   processing order by ``Sender`` (``_sender``) to ``Backend.generate`` (``backends``;
   ``SchemaRepair`` in ``backends.repair`` gives any backend correction turns) within the
   ``Budget`` (``_budget``); every answer is stored before it is read.
3. ``Acceptor.accept`` (``accept``): parse (``schemas``), quality gate (``quality``), and
   the accepted and rejected rows into the ``Store`` (``store`` and its ``_store_file``,
   the only modules that touch SQLite).
4. ``export_dataset`` and ``write_card`` (``export``): the splits, files and card.

``result`` holds what a run reports: ``RunResult`` (what ``run_recipe``, ``translate``
and ``paraphrase`` return: the dataset and the engine's ``RunStats``, per quota its
counts and ``StopReason``) and ``RunSnapshot`` for progress displays. ``jobs`` says
where the engine's jobs come from: a recipe's plan (``RecipeJobs``) or, in ``augment``,
rows to translate or paraphrase, which run through the same four hops. ``report``,
``evaluate`` and ``fidelity`` look at a dataset; ``cli`` and ``console`` are the
terminal front end.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textsynth.backends import (
    Backend,
    available_backends,
    create_backend,
    get_backend,
    register_backend,
)
from textsynth.backends.base import Completion, Request, Usage
from textsynth.backends.fake import FakeBackend
from textsynth.errors import (
    BackendError,
    BackendResponseError,
    BackendUnavailable,
    BudgetExceeded,
    DataError,
    ExportError,
    GenerationError,
    MissingDependency,
    RateLimited,
    RecipeError,
    RunInterrupted,
    StoreError,
    TemplateError,
    TextsynthError,
)
from textsynth.example import Example
from textsynth.recipe import Recipe, load_recipe
from textsynth.schemas import OutputSchema, load_schema
from textsynth.templates import PromptTemplate

if TYPE_CHECKING:
    from textsynth.augment import paraphrase, translate
    from textsynth.engine import Engine
    from textsynth.evaluation import Evaluation, evaluate
    from textsynth.pipeline import run_recipe
    from textsynth.report import QualityReport, build_report, write_report
    from textsynth.result import RunResult, RunStats
    from textsynth.sources import LabeledSet, load_labeled
    from textsynth.store import Store

__version__ = "0.1.0"

__all__ = [
    "Backend",
    "BackendError",
    "BackendResponseError",
    "BackendUnavailable",
    "BudgetExceeded",
    "Completion",
    "DataError",
    "Engine",
    "Evaluation",
    "Example",
    "ExportError",
    "FakeBackend",
    "GenerationError",
    "LabeledSet",
    "MissingDependency",
    "OutputSchema",
    "PromptTemplate",
    "QualityReport",
    "RateLimited",
    "Recipe",
    "RecipeError",
    "Request",
    "RunInterrupted",
    "RunResult",
    "RunStats",
    "Store",
    "StoreError",
    "TemplateError",
    "TextsynthError",
    "Usage",
    "available_backends",
    "build_report",
    "create_backend",
    "evaluate",
    "get_backend",
    "load_labeled",
    "load_recipe",
    "load_schema",
    "paraphrase",
    "register_backend",
    "run_recipe",
    "translate",
    "write_report",
]

_LAZY = {
    "Engine": "textsynth.engine",
    "RunResult": "textsynth.result",
    "RunStats": "textsynth.result",
    "run_recipe": "textsynth.pipeline",
    "Store": "textsynth.store",
    "Evaluation": "textsynth.evaluation",
    "evaluate": "textsynth.evaluation",
    "LabeledSet": "textsynth.sources",
    "load_labeled": "textsynth.sources",
    "QualityReport": "textsynth.report",
    "build_report": "textsynth.report",
    "write_report": "textsynth.report",
    "paraphrase": "textsynth.augment",
    "translate": "textsynth.augment",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'textsynth' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(module), name)
