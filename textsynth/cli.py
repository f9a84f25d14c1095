"""The ``textsynth`` command line: thin wrappers over the library.

Each command parses its options, calls one library function and hands what it returns
to :mod:`textsynth.console`, which draws it.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from importlib import import_module
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from textsynth.errors import TextsynthError, stop_signals

app = typer.Typer(
    name="textsynth",
    help="Build labeled text datasets with LLMs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        from textsynth import __version__

        typer.echo(f"textsynth {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True,
        help="Print the version and exit.")] = False) -> None:
    """Build labeled text datasets with LLMs."""


RecipeArg = Annotated[Path, typer.Argument(help="Recipe YAML file.")]
OverwriteOpt = Annotated[bool, typer.Option(
    "--overwrite", help="Write into a folder that is not a textsynth output, replacing files "
    "of the same names that textsynth did not write, or into another recipe's output.")]


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    # no automatic highlighting: its patterns are quadratic in a long word (0.17 s for
    # one of 5,000 characters, minutes for 100,000), and the output is plain text
    return Console(stderr=stderr, highlight=False)


def _load(recipe_path: Path, **overrides: Any) -> Any:
    from textsynth.recipe import load_recipe

    recipe = load_recipe(recipe_path)
    changed = any(v is not None and v != {} for v in overrides.values())  # --seed 0 counts
    return recipe.with_overrides(**overrides) if changed else recipe


SetOpt = Annotated[list[str] | None, typer.Option(
    "--set", help="Any recipe field by its path, as YAML: generation.temperature=0.5 "
    "(repeatable).")]


@app.command()
def run(
    recipe_path: RecipeArg,
    out: Annotated[Path | None, typer.Option("--out", help="Output folder.")] = None,
    per_label: Annotated[int | None, typer.Option("--per-label", min=1,
                                                  help="Examples per label.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Random seed.")] = None,
    backend: Annotated[str | None, typer.Option("--backend", help="Backend name.")] = None,
    model: Annotated[str | None, typer.Option("--model", help="Model name or path.")] = None,
    base_url: Annotated[str | None, typer.Option(
        "--base-url", help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1 "
        "(implies --backend openai; the key comes from OPENAI_API_KEY).")] = None,
    set_: SetOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    overwrite: OverwriteOpt = False,
) -> None:
    """Generate the dataset a recipe describes (resumes an interrupted run)."""
    from textsynth.console import RunProgress, print_notes, print_result
    from textsynth.errors import RunInterrupted
    from textsynth.overrides import parse_assignments
    from textsynth.pipeline import run_recipe

    recipe = _load(recipe_path, set=parse_assignments(set_ or [], "set"), out=out,
                   per_label=per_label, seed=seed, backend=backend, model=model,
                   base_url=base_url)
    print_notes(_console(stderr=True), recipe.advice())
    try:
        with RunProgress(_console(stderr=True), enabled=not quiet) as bar:
            # quiet: no snapshot of the run is made for bars nobody sees
            result = run_recipe(recipe, progress=None if quiet else bar, overwrite=overwrite)
    except (RunInterrupted, KeyboardInterrupt) as exc:  # what arrived is stored
        raise typer.Exit(_say_stopped(exc)) from None
    print_result(_console(), result)
    if not result.complete:
        raise typer.Exit(3)


@app.command()
def preview(
    recipe_path: RecipeArg,
    n: Annotated[int, typer.Option("-n", min=1, max=10_000,  # all are rendered first
                                   help="How many prompts.")] = 5,
    seed: Annotated[int | None, typer.Option("--seed", help="Random seed.")] = None,
    set_: SetOpt = None,
) -> None:
    """Print rendered prompts without loading a model."""
    from textsynth.console import print_notes, print_prompts
    from textsynth.overrides import parse_assignments
    from textsynth.pipeline import preview_prompts

    recipe = _load(recipe_path, set=parse_assignments(set_ or [], "set"), seed=seed)
    print_prompts(_console(), preview_prompts(recipe, n))
    print_notes(_console(), recipe.advice())


@app.command()
def push(
    output_dir: Annotated[Path, typer.Argument(help="Output folder of a run.")],
    repo_id: Annotated[str | None, typer.Argument(
        help="Dataset repo, 'namespace/name' (default: the recipe's export.hub.repo_id).")] = None,
    private: Annotated[bool, typer.Option("--private", help="Create the repo private.")] = False,
    revision: Annotated[str | None, typer.Option("--revision", help="Branch to push to.")] = None,
    message: Annotated[str | None, typer.Option("--message", "-m",
                                                help="Commit message.")] = None,
) -> None:
    """Upload a run's Parquet shards and dataset card to the Hugging Face Hub."""
    from textsynth.errors import ExportError
    from textsynth.export.hub import push_dataset, recipe_hub

    try:
        hub = recipe_hub(output_dir)
    except ExportError:  # the run's own repo id is not valid: one named here replaces it
        if repo_id is None:
            raise
        hub = None
    target = repo_id or (hub.repo_id if hub else None)
    if not target:
        raise typer.BadParameter("give REPO_ID (the recipe has no export.hub.repo_id)")
    result = push_dataset(output_dir, target, private=private or bool(hub and hub.private),
                          revision=revision or (hub.revision if hub else None), message=message)
    _console().print(f"pushed {len(result.files)} files to [bold]{result.url}[/bold]"
                     + (f" (removed {len(result.deleted)} old shards)" if result.deleted else ""),
                     soft_wrap=True)


DataArg = Annotated[Path, typer.Argument(help="A textsynth output folder, a saved dataset "
                                          "folder, or a JSONL/CSV/Parquet file.")]


@app.command()
def report(
    data: DataArg,
    reference: Annotated[Path | None, typer.Option(
        "--reference", help="Real data to compare with (same kinds of input).")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="Report folder (default: DATA/report).")] = None,
    judge_real: Annotated[Path | None, typer.Option(
        "--judge-real", help="Real labeled training data for a judge of each row's label "
        "(fidelity).")] = None,
    label_map: Annotated[str | None, typer.Option(
        "--label-map", help="synthetic=real,... or a JSON file, for the judge.")] = None,
    embeddings: Annotated[bool, typer.Option(
        "--embeddings/--no-embeddings", help="Let the judge use sentence embeddings when they "
        "do better on held-out real rows (if installed).")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
) -> None:
    """Write an HTML quality report with plots and print its key figures."""
    from textsynth.console import fidelity_tables, figures_table, print_notes
    from textsynth.report import build_report, write_report

    result = build_report(data, reference, judge_real=judge_real, label_map=label_map,
                          embeddings=None if embeddings else False)
    folder = out or (data / "report" if data.is_dir() else data.with_name(f"{data.stem}-report"))
    page = write_report(result, folder)
    if as_json:
        import json

        typer.echo(json.dumps({**result.to_dict(), "html": str(page)}, ensure_ascii=False))
        return
    console = _console()
    console.print(figures_table(result))
    for table in fidelity_tables(result.fidelity) if result.fidelity is not None else []:
        console.print(table)
    print_notes(console, result.notes)
    console.print(f"report written to [bold]{escape(str(page))}[/bold]")


@app.command("eval")
def eval_command(
    data: DataArg,
    test: Annotated[Path | None, typer.Option(
        "--test", help="Real labeled test data: train on synthetic, test on real.")] = None,
    judge_real: Annotated[Path | None, typer.Option(
        "--judge-real", help="Real labeled training data for a judge: the share of synthetic "
        "rows it puts under their own label (fidelity).")] = None,
    train_real: Annotated[Path | None, typer.Option(
        "--train-real", help="Real training data: a baseline, and real + synthetic.")] = None,
    label_names: Annotated[Path | None, typer.Option(
        "--label-names", help="JSON file of readable label names, for the names baseline.")
    ] = None,
    label_map: Annotated[str | None, typer.Option(
        "--label-map", help="synthetic=test,... or a JSON file, when label names differ.")
    ] = None,
    split: Annotated[str | None, typer.Option(
        "--split", help="Train on this split of the synthetic set only (default: all).")
    ] = None,
    embeddings: Annotated[bool, typer.Option(
        "--embeddings/--no-embeddings", help="Also train on sentence embeddings, if installed.")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Score a synthetic set against real data: train on it and test on real rows (--test),
    and judge its rows with a classifier trained on real rows (--judge-real)."""
    from textsynth.console import eval_tables, print_notes
    from textsynth.evaluation import evaluate

    result = evaluate(data, test, train_real=train_real, label_names=label_names,
                      label_map=label_map, embeddings=None if embeddings else False, split=split,
                      judge_real=judge_real)
    if as_json:
        import json

        typer.echo(json.dumps(result.to_dict(), ensure_ascii=False))
        return
    console = _console()
    for table in eval_tables(result):
        console.print(table)
    print_notes(console, result.notes)


def _augment(mode: str, source: Path, out: Path | None, extra: dict[str, Any], backend: str,
             model: str | None, option: list[str] | None, quiet: bool,
             overwrite: bool) -> None:
    from textsynth import augment
    from textsynth.console import RunProgress, print_result
    from textsynth.errors import RunInterrupted
    from textsynth.overrides import backend_options

    folder = out or Path("output") / f"{source.stem or source.resolve().name}-{mode}"
    options = backend_options(model, option or [])
    try:
        with RunProgress(_console(stderr=True), enabled=not quiet) as bar:
            if mode == "translate":
                result = augment.translate(source, extra.pop("languages"), folder,
                                           backend_type=backend, backend_options=options,
                                           progress=bar, overwrite=overwrite, **extra)
            else:
                result = augment.paraphrase(source, extra.pop("n"), folder,
                                            backend_type=backend, backend_options=options,
                                            progress=bar, overwrite=overwrite, **extra)
    except (RunInterrupted, KeyboardInterrupt) as exc:  # what arrived is stored
        raise typer.Exit(_say_stopped(exc)) from None
    print_result(_console(), result)
    if not result.complete:
        raise typer.Exit(3)


BackendOpt = Annotated[str, typer.Option("--backend", help="Backend name.")]
ModelOpt = Annotated[str | None, typer.Option("--model", help="Model name or path.")]
OptionOpt = Annotated[list[str] | None, typer.Option(
    "--option", help="Backend option KEY=VALUE (repeatable).")]
AttemptsOpt = Annotated[int, typer.Option("--max-attempts", min=1,
                                          help="Tries per source row before giving up.")]
SourceLangOpt = Annotated[str, typer.Option(
    "--source-language", help="Language of rows without a language column.")]
TemplateOpt = Annotated[str | None, typer.Option("--template", help="Prompt template.")]
TokensOpt = Annotated[int | None, typer.Option("--max-tokens", min=1,
                                              help="Tokens an answer may have.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed.")]
OutOpt = Annotated[Path | None, typer.Option("--out", help="Output folder.")]


@app.command()
def translate(
    source: DataArg,
    to: Annotated[str, typer.Option("--to", help="Target languages, comma-separated: de,it")],
    out: OutOpt = None, backend: BackendOpt = "openvino", model: ModelOpt = None,
    option: OptionOpt = None, source_language: SourceLangOpt = "en",
    max_attempts: AttemptsOpt = 3, max_tokens: TokensOpt = None, template: TemplateOpt = None,
    seed: SeedOpt = 0, quiet: QuietOpt = False, overwrite: OverwriteOpt = False,
) -> None:
    """Translate a labeled dataset into other languages, keeping labels and slots."""
    languages = [c.strip() for c in to.split(",") if c.strip()]
    _augment("translate", source, out, {"languages": languages, "source_language":
             source_language, "max_attempts": max_attempts, "max_tokens": max_tokens,
             "template": template, "seed": seed}, backend, model, option, quiet, overwrite)


@app.command()
def paraphrase(
    source: DataArg,
    n: Annotated[int, typer.Option("-n", min=1, help="Paraphrases per source row.")] = 3,
    out: OutOpt = None, backend: BackendOpt = "openvino", model: ModelOpt = None,
    option: OptionOpt = None, source_language: SourceLangOpt = "en",
    max_attempts: AttemptsOpt = 3, max_tokens: TokensOpt = None, template: TemplateOpt = None,
    seed: SeedOpt = 0, quiet: QuietOpt = False, overwrite: OverwriteOpt = False,
) -> None:
    """Augment a small real seed set with paraphrases, keeping labels and slots."""
    _augment("paraphrase", source, out, {"n": n, "source_language": source_language,
             "max_attempts": max_attempts, "max_tokens": max_tokens, "template": template,
             "seed": seed}, backend, model, option, quiet, overwrite)


def _usage_error_types() -> tuple[type[BaseException], ...]:
    """The classes of command-line usage errors. typer >= 0.29 bundles its own copy of
    click (``typer._click``), whose exceptions are not ``click``'s; older typer uses
    click itself. Both are caught, whichever is installed."""
    found: list[type[BaseException]] = []
    for module in ("typer._click.exceptions", "click.exceptions"):
        if found and module.partition(".")[0] not in sys.modules:
            break  # typer's own copy, and click not loaded: it raises nothing here
        try:
            found.append(import_module(module).ClickException)
        except (ImportError, AttributeError):
            continue
    return tuple(found)


def _usage_line(exc: BaseException) -> str:
    """One line for a usage error: what is wrong, and where the help is."""
    ctx = getattr(exc, "ctx", None)
    command = ctx.command_path if ctx is not None else "textsynth"
    if type(exc).__name__ == "NoArgsIsHelpError":  # `textsynth` with no command
        names = ", ".join(getattr(ctx.command, "commands", {})) if ctx is not None else ""
        return f"no command given (commands: {names}); try '{command} --help'"
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    message = " ".join(message.split())
    return f"{message.rstrip('.')}; try '{command} --help'"


def _print_error(message: str) -> None:
    from textsynth.console import error_line

    _console(stderr=True).print(error_line(message), highlight=False, soft_wrap=True)


def _say_stopped(exc: BaseException) -> int:
    """Print how to resume after Ctrl-C or SIGTERM (a run's :class:`RunInterrupted`, or
    KeyboardInterrupt and :class:`Terminated` elsewhere); the exit status, 128 + the
    signal."""
    from textsynth.errors import stopped_message

    signum = int(getattr(exc, "signum", signal.SIGINT))
    with contextlib.suppress(OSError):  # after SIGHUP the terminal may be gone
        _console(stderr=True).print(stopped_message(signum), highlight=False)
    return 128 + signum


def _on_sigterm(signum: int, frame: Any) -> None:
    from textsynth.errors import Terminated

    raise Terminated(signum)


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors print as one line and exit non-zero (2 for a bad recipe
    or command line), never with a traceback. SIGTERM stops a command as Ctrl-C does
    (a run's generation handles both itself: see :class:`~textsynth.engine.Engine`)."""
    usage_errors = _usage_error_types()
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for stop in stop_signals():  # SIGINT stays Python's: KeyboardInterrupt
            if stop != signal.SIGINT:
                previous[stop] = signal.signal(stop, _on_sigterm)
    try:
        code = app(args=argv, standalone_mode=False)  # typer.Exit comes back as its code
    except TextsynthError as exc:
        _print_error(str(exc))
        sys.exit(2)
    except KeyboardInterrupt as exc:
        sys.exit(_say_stopped(exc))
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(130)
    except usage_errors as exc:
        _print_error(_usage_line(exc))
        sys.exit(getattr(exc, "exit_code", 2) or 2)
    finally:  # main() called from Python: leave its handlers as they were
        for stop, handler in previous.items():
            signal.signal(stop, handler)
    if isinstance(code, int) and code:
        sys.exit(code)


if __name__ == "__main__":
    main()
