"""From a recipe (or another job source) to a dataset on disk: engine, export and card
in one call, returning one :class:`~textsynth.result.RunResult`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textsynth import _loop
from textsynth.backends import Backend
from textsynth.engine import Engine, ProgressHook
from textsynth.jobs import JobSource, RecipeJobs
from textsynth.recipe import Recipe, load_recipe
from textsynth.result import RunResult

__all__ = ["generate", "preview_prompts", "run_recipe"]


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


async def generate(work: Recipe | JobSource, backend: Backend | None = None,
                   progress: ProgressHook | None = None, out_dir: Path | None = None,
                   overwrite: bool = False) -> RunResult:
    """Run the engine, then export the dataset and its card (and push it to the Hub when
    the recipe names a repo and every quota is met). The async core of :func:`run_recipe`,
    :func:`~textsynth.augment.translate` and :func:`~textsynth.augment.paraphrase`."""
    from textsynth.export.arrow import release_memory
    from textsynth.export.card import write_card
    from textsynth.export.dataset import export_dataset, output_names
    from textsynth.export.folder import check_folder
    from textsynth.store import Store

    jobs = RecipeJobs(work) if isinstance(work, Recipe) else work
    recipe = jobs.recipe
    out = Path(out_dir or jobs.output_dir)
    layout = jobs.layout
    check_folder(out, output_names(layout.export), overwrite,  # before anything is sent
                 recipe=recipe.name)
    hub = recipe.export.hub
    store = Store.in_dir(out)
    try:
        engine = Engine(jobs, backend=backend, store=store, progress=progress)
        engine.check()
        stats = await engine.run()  # closes the backend it created itself
        cost = engine.cost(store.usage())
        del engine  # its gate, planner and prompt pool: freed before the export builds tables
        jobs.attach(None, 1)  # the accepted texts prompts showed
        release_memory()  # the export's peak is not the run's plus its own
        dataset = None
        if store.example_count():
            dataset = export_dataset(layout, store, out, overwrite=overwrite)
            summary = store.get_meta("summary", {})
            write_card(recipe, dataset, summary, out, store=store)
        result = RunResult(stats, out, dataset, cost,
                           hub_repo=hub.repo_id if hub is not None else None)
    finally:
        store.close()
    if hub is not None and stats.complete:
        from textsynth.errors import ExportError
        from textsynth.export.hub import push_dataset

        try:
            result.pushed = push_dataset(out, hub.repo_id, private=hub.private,
                                          revision=hub.revision)
        except ExportError as exc:
            raise ExportError(f"the dataset is saved in {out} but was not pushed: {exc} "
                              f"(push it later with 'textsynth push {out} {hub.repo_id}')"
                              ) from None
    return result


def run_recipe(recipe: Recipe | str | Path | dict[str, Any], backend: Backend | None = None,
               progress: ProgressHook | None = None, out_dir: str | Path | None = None,
               overwrite: bool = False) -> RunResult:
    """Generate the dataset for ``recipe`` (a :class:`Recipe`, or a YAML file or mapping
    that :func:`~textsynth.recipe.load_recipe` reads) and write it to its output folder.

    The folder must be new, empty, or a textsynth output folder; files in it that
    textsynth did not write are never replaced, unless ``overwrite``. ``progress`` is
    called as the run goes (the command line passes :class:`textsynth.console.RunProgress`).

    >>> result = run_recipe(load_recipe("examples/smart_home_intents.yaml"))  # doctest: +SKIP
    >>> result.complete, result.stats.shortfalls  # doctest: +SKIP
    """
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    return _loop.run(generate(recipe, backend, progress,
                              Path(out_dir) if out_dir is not None else None, overwrite))
