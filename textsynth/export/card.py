"""The dataset card (README.md) written next to the exported dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from textsynth.errors import ExportError
from textsynth.recipe import Recipe

__all__ = ["render_card", "write_card"]


def _size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                        (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "1M<n<10M"


def render_card(recipe: Recipe, dataset: Any, summary: dict[str, Any]) -> str:
    """The card's markdown: YAML header for the Hub, then how the data was made."""
    from huggingface_hub import DatasetCard, DatasetCardData

    total = sum(len(split) for split in dataset.values())
    data = DatasetCardData(
        language=recipe.all_languages,
        license=recipe.license,
        task_categories=["text-classification"],
        size_categories=[_size_category(total)],
        tags=["synthetic", "textsynth"],
        pretty_name=recipe.name,
    )
    counts = {
        name: {label: 0 for label in recipe.labels} for name in dataset
    }
    for name, split in dataset.items():
        names = split.features["label"].names
        for value in split["label"]:
            counts[name][names[value]] += 1
    lines = ["| label | " + " | ".join(dataset) + " |",
             "|---|" + "---|" * len(dataset)]
    for label in recipe.labels:
        lines.append(f"| {label} | " + " | ".join(str(counts[s][label]) for s in dataset) + " |")
    recipe_yaml = yaml.safe_dump(recipe.model_dump(mode="json", by_alias=True, exclude={"source"}),
                                 sort_keys=False, allow_unicode=True)
    body = f"""
# {recipe.name}

{recipe.description or "A synthetic labeled text dataset."}

Generated with textsynth by `{summary.get("model", "")}` ({summary.get("backend", "")} backend),
seed {recipe.seed}, {total} rows.

## Label counts

{chr(10).join(lines)}

## Recipe

```yaml
{recipe_yaml}```

## Reproduce

```
textsynth run recipe.yaml
```
"""
    return str(DatasetCard.from_template(data, template_str="---\n{{ card_data }}\n---\n" + body)
               .content)


def write_card(recipe: Recipe, dataset: Any, summary: dict[str, Any], out_dir: Path) -> Path:
    path = Path(out_dir) / "README.md"
    try:
        path.write_text(render_card(recipe, dataset, summary), encoding="utf-8")
    except OSError as exc:
        raise ExportError(f"cannot write the dataset card {path}: {exc}") from exc
    return path
