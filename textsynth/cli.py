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
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Generate the dataset a recipe describes (resumes an interrupted run)."""
    from textsynth.pipeline import run_recipe

    recipe = _load(recipe_path, out=out, per_label=per_label, seed=seed, backend=backend,
                   model=model)
    console = _console()
    outcome = run_recipe(recipe, progress=not quiet, console=_console(stderr=True))
    from textsynth.progress import summary_table

    console.print(summary_table(outcome.result, outcome.cost))
    console.print(f"dataset written to [bold]{outcome.out_dir}[/bold]")
    if outcome.pushed is not None:
        console.print(f"pushed to [bold]{outcome.pushed.url}[/bold]", soft_wrap=True)
    elif recipe.export.hub is not None:
        console.print(f"[yellow]not pushed to {recipe.export.hub.repo_id}:[/yellow] the quotas "
                      "are not met; push anyway with 'textsynth push'")
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
    from textsynth.export.hub import push_dataset, recipe_hub

    hub = recipe_hub(output_dir)
    target = repo_id or (hub.repo_id if hub else None)
    if not target:
        raise typer.BadParameter("give REPO_ID (the recipe has no export.hub.repo_id)")
    result = push_dataset(output_dir, target, private=private or bool(hub and hub.private),
                          revision=revision or (hub.revision if hub else None), message=message)
    _console().print(f"pushed {len(result.files)} files to [bold]{result.url}[/bold]"
                     + (f" (removed {len(result.deleted)} old shards)" if result.deleted else ""),
                     soft_wrap=True)


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
