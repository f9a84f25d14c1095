"""The ``textsynth`` command line: thin wrappers over the library."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from textsynth.errors import TextsynthError

app = typer.Typer(
    name="textsynth",
    help="Build labeled text datasets with LLMs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

RecipeArg = Annotated[Path, typer.Argument(help="Recipe YAML file.")]


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr)


def _load(recipe_path: Path, **overrides: Any) -> Any:
    from textsynth.recipe import load_recipe

    recipe = load_recipe(recipe_path)
    return recipe.with_overrides(**overrides) if any(v is not None for v in overrides.values()) \
        else recipe


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
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Generate the dataset a recipe describes (resumes an interrupted run)."""
    from textsynth.pipeline import run_recipe

    if base_url is not None and backend is None:
        backend = "openai"
    recipe = _load(recipe_path, out=out, per_label=per_label, seed=seed, backend=backend,
                   model=model, base_url=base_url)
    console = _console()
    outcome = run_recipe(recipe, progress=not quiet, console=_console(stderr=True))
    from textsynth.progress import summary_table

    console.print(summary_table(outcome.result, outcome.cost))
    console.print(f"dataset written to [bold]{outcome.out_dir}[/bold]")
    if outcome.result.stopped:
        console.print(f"[yellow]stopped early:[/yellow] {outcome.result.stopped}")
    for label, short in outcome.result.shortfalls.items():
        console.print(f"[yellow]{label}: {short} short of the quota[/yellow] (attempt limit "
                      "reached; raise generation.max_attempts or loosen the quality rules)")
    if not outcome.result.complete:
        raise typer.Exit(3)


@app.command()
def preview(
    recipe_path: RecipeArg,
    n: Annotated[int, typer.Option("-n", min=1, help="How many prompts.")] = 5,
) -> None:
    """Print rendered prompts without loading a model."""
    from textsynth.pipeline import preview_prompts

    recipe = _load(recipe_path)
    console = _console()
    for title, messages in preview_prompts(recipe, n):
        console.rule(title)
        for message in messages:
            console.print(f"[bold]{message['role']}[/bold]", highlight=False)
            console.print(message["content"], markup=False, highlight=False, soft_wrap=True)


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors print as one line and exit non-zero."""
    try:
        app(args=argv, standalone_mode=False)
    except TextsynthError as exc:
        _console(stderr=True).print(f"[red]error:[/red] {escape(str(exc))}", highlight=False,
                                    soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        _console(stderr=True).print("interrupted: run the same command again to resume")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(130)
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
