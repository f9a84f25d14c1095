"""From a recipe to a dataset on disk: engine, export and card in one call."""

from __future__ import annotations

import asyncio
import gc
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textsynth.backends import Backend
from textsynth.engine import Engine, ProgressHook, RunResult
from textsynth.recipe import Recipe

__all__ = ["RunOutcome", "generate", "preview_prompts", "run_recipe"]


@dataclass
class RunOutcome:
    result: RunResult
    dataset: Any  # None when no row was accepted: nothing was exported
    out_dir: Path
    cost: float
    pushed: Any = None  # export.hub.PushResult when the recipe names a Hub repo


def preview_prompts(recipe: Recipe, n: int = 5) -> list[tuple[str, tuple[dict[str, str], ...]]]:
    """The first ``n`` prompts, spread over the labels, rendered without any backend."""
    from textsynth.plan import Planner
    from textsynth.prompt import PromptBuilder

    planner, prompts = Planner(recipe), PromptBuilder(recipe)
    prompts.schema  # noqa: B018 - a bad output schema fails here, as it would in a run
    quotas = planner.quotas
    out = []
    for i in range(n):
        quota = quotas[i % len(quotas)]
        job = planner.job(quota, i // len(quotas))
        out.append((f"{quota} #{job.index}", prompts.messages(job)))
    return out


async def generate(recipe: Recipe, backend: Backend | None = None, progress: Any = None,
                   out_dir: Path | None = None, overwrite: bool = False) -> RunOutcome:
    """Run the engine, then export the dataset and its card. Async core of :func:`run_recipe`."""
    from textsynth.export.card import write_card
    from textsynth.export.dataset import export_dataset, output_names
    from textsynth.export.folder import check_folder
    from textsynth.store import Store

    out = Path(out_dir or recipe.output_dir)
    check_folder(out, output_names(recipe), overwrite)  # before anything is sent
    store = Store.in_dir(out)
    try:
        engine = Engine(recipe, backend=backend, store=store, progress=progress)
        engine.check()
        result = await engine.run()  # closes the backend it created itself
        cost = engine.cost(store.usage())
        del engine  # its gate, planner and prompt pool: freed before the export builds tables
        _release_memory()
        dataset = None
        if store.example_count():
            dataset = export_dataset(recipe, store, out, overwrite=overwrite)
            summary = store.get_meta("summary", {})
            write_card(recipe, dataset, summary, out, store=store)
        outcome = RunOutcome(result, dataset, out, cost)
    finally:
        store.close()
    hub = recipe.export.hub
    if hub is not None and result.complete:
        from textsynth.errors import ExportError
        from textsynth.export.hub import push_dataset

        try:
            outcome.pushed = push_dataset(out, hub.repo_id, private=hub.private,
                                          revision=hub.revision)
        except ExportError as exc:
            raise ExportError(f"the dataset is saved in {out} but was not pushed: {exc} "
                              f"(push it later with 'textsynth push {out} {hub.repo_id}')"
                              ) from None
    return outcome


def _release_memory() -> None:
    """Collect the run's garbage and hand free heap pages back to the system, so the
    export's peak memory is not the run's plus its own."""
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the memory is reused, not returned
        pass


def run_recipe(recipe: Recipe, backend: Backend | None = None,
               progress: ProgressHook | None = None, out_dir: Path | None = None,
               overwrite: bool = False) -> RunOutcome:
    """Generate the dataset for ``recipe`` and write it to its output folder.

    The folder must be new, empty, or a textsynth output folder; files in it that
    textsynth did not write are never replaced, unless ``overwrite``. ``progress`` is
    called as the run goes (the command line passes :class:`textsynth.console.RunProgress`).

    >>> outcome = run_recipe(load_recipe("examples/smart_home_intents.yaml"))  # doctest: +SKIP
    """
    return asyncio.run(generate(recipe, backend, progress, out_dir, overwrite))
