"""The dataset card (README.md): a Hub YAML header and the whole story of the data.

The header is built with ``huggingface_hub``'s ``DatasetCardData`` and carries
``configs`` and ``dataset_info`` in the form ``datasets`` writes them, so
``load_dataset(folder)`` and the Hub's viewer restore the exact features
(``ClassLabel``, entity spans) and splits. The body says what the data is for,
which model made it from which prompt and recipe, the counts per label and split,
why candidates were rejected, what it cost, and how to make it again. Nothing
secret goes in: keys, tokens and credentials in URLs are redacted.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from textsynth.errors import ExportError, TextsynthError
from textsynth.export.dataset import PARQUET_DIR
from textsynth.export.folder import CARD, foreign, read_manifest, write_manifest
from textsynth.recipe import Recipe
from textsynth.redact import redact, redact_text

if TYPE_CHECKING:
    from textsynth.store import Store

__all__ = ["card_data", "render_card", "write_card"]

def _size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                        (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "1M<n<10M"


def _splits(dataset: Any) -> Any:
    """Split name to split: the export's own tables (no ``datasets`` import) or, for a
    ``DatasetDict`` a caller passes, its datasets (both have ``features``, ``data``,
    ``len`` and ``split[column]``)."""
    from textsynth.export.arrow import ExportedDataset

    return dataset.splits if isinstance(dataset, ExportedDataset) else dataset


def card_data(recipe: Recipe, dataset: Any, out_dir: Path | None = None) -> Any:
    """The card's YAML header as ``DatasetCardData`` (with ``configs`` and ``dataset_info``,
    as ``datasets``' ``DatasetInfosDict`` and ``MetadataConfigs`` write them)."""
    # the module, not the package: ``huggingface_hub.DatasetCard`` pulls in the Hub client
    # (about 0.4 s and 25 MB), which a run does not need
    from huggingface_hub.repocard_data import DatasetCardData

    from textsynth.export.arrow import features_yaml

    dataset = _splits(dataset)
    total = sum(len(split) for split in dataset.values())
    has_entities = any("entities" in split.features for split in dataset.values())
    tasks = ["text-classification"] + (["token-classification"] if has_entities else [])
    langs = recipe.all_languages
    data = DatasetCardData(
        pretty_name=recipe.name,
        language=langs,
        license=recipe.license,
        task_categories=tasks,
        size_categories=[_size_category(total)],
        tags=["synthetic", "textsynth"] + (["nlu"] if has_entities else []),
        annotations_creators=["machine-generated"],
        language_creators=["machine-generated"],
        multilinguality=["multilingual" if len(langs) > 1 else "monolingual"],
    )
    parquet = sorted((Path(out_dir) / PARQUET_DIR).glob("*.parquet")) if out_dir else []
    if not dataset or not parquet:
        return data
    data["dataset_info"] = {
        "features": features_yaml(next(iter(dataset.values())).features),
        "splits": [{"name": name, "num_bytes": split.data.nbytes, "num_examples": len(split)}
                   for name, split in dataset.items()],
        "download_size": sum(p.stat().st_size for p in parquet),
        "dataset_size": sum(split.data.nbytes for split in dataset.values()),
    }
    data["configs"] = [{"config_name": "default", "data_files": [
        {"split": name, "path": f"{PARQUET_DIR}/{name}-*"} for name in dataset]}]
    return data


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _counts_table(recipe: Recipe, dataset: Any) -> str:
    counts = {name: Counter(split["label"]) for name, split in dataset.items()}
    rows = []
    for i, (label, spec) in enumerate(recipe.labels.items()):
        per_split = [counts[s][i] for s in dataset]
        rows.append([f"`{label}`", spec.description, *per_split, sum(per_split)])
    totals = [len(split) for split in dataset.values()]
    rows.append(["**total**", "", *totals, sum(totals)])
    return _table(["label", "description", *dataset, "total"], rows)


def _entities_section(recipe: Recipe, dataset: Any) -> str:
    if not any("entities" in split.features for split in dataset.values()):
        return ""
    mentions: Counter[str] = Counter()
    for split in dataset.values():
        for entities in split["entities"]:
            mentions.update(e["entity"] for e in entities)
    types = sorted(set(recipe.slots) | set(mentions))
    if not types:  # rows without entities (a translation of plain rows): nothing to say
        return ""
    rows = [[f"`{t}`", ", ".join(recipe.slots.get(t, [])) or "(not declared)", mentions[t]]
            for t in types]
    tags = "tokens" in next(iter(dataset.values())).features
    how = ("from the entities the model named or, for plain utterances, from the declared "
           "slot values the text contains as whole words; a candidate with a value missing "
           "from its text, inside a word, or overlapping another was rejected."
           if recipe.output_schema == "slots" else
           "each source row's spans went through the prompt as `[value](entity)` markup and "
           "were read back from the answer, or found by their unchanged value as whole "
           "words; an answer that lost one was rejected.")
    return ("## Entities\n\nEach row's `entities` lists character spans with "
            "`text[start:end] == value`. textsynth located every span itself: " + how
            + (" `tokens` are the whitespace tokens of `text` and `tags` their BIO tags."
               if tags else "")
            + "\n\n" + _table(["entity", "values the prompts asked for", "mentions"], rows)
            + "\n\n")


def _made_section(recipe: Recipe, dataset: Any, summary: dict[str, Any],
                  rejects: dict[str, int]) -> str:
    models: Counter[str] = Counter()
    for split in dataset.values():
        models.update(split["model"])
    model_list = ", ".join(f"`{m}` ({n} rows)" for m, n in models.most_common()) or \
        f"`{summary.get('model', 'unknown')}`"
    gen = recipe.generation
    cost = summary.get("cost") or 0.0
    lines = [
        f"- Generator model(s): {model_list}, {summary.get('backend', recipe.backend.type)} "
        "backend.",
        f"- Sampling: temperature {gen.temperature}, top-p {gen.top_p}, up to {gen.max_tokens} "
        f"tokens, {gen.examples_per_request} candidates asked per request.",
        f"- Requests: {summary.get('sent', 0)} sent, {summary.get('cached', 0)} read back from "
        "the run store.",
        f"- Tokens: {summary.get('prompt_tokens', 0):,} prompt + "
        f"{summary.get('completion_tokens', 0):,} completion; cost ${cost:.4f} at the "
        "recipe's prices.",
        f"- Seed: {recipe.seed}.",
    ]
    if summary.get("stopped"):
        lines.append(f"- Stopped early: {summary['stopped']}")
    quotas = summary.get("quotas") or summary.get("slots") or {}  # "slots": older stores
    short = {k: v["target"] - v["accepted"] for k, v in quotas.items()
             if v.get("accepted", 0) < v.get("target", 0)}
    if short:
        lines.append("- Short of the quota: " + ", ".join(f"{k} by {n}" for k, n in short.items()))
    accepted = sum(len(s) for s in dataset.values())
    reject_rows = [[f"`{reason}`", n] for reason, n in rejects.items()]
    rejected = sum(rejects.values())
    body = "\n".join(lines)
    body += (f"\n\nOf {accepted + rejected} candidates, {accepted} were accepted and "
             f"{rejected} rejected:\n\n" + (_table(["reason", "rejected"], reject_rows)
                                            if reject_rows else "(none rejected)"))
    return "## How it was made\n\n" + body + "\n\n"


def _splits_note(recipe: Recipe, export: dict[str, Any]) -> str:
    ratios = ", ".join(f"{k} {v:g}" for k, v in recipe.export.splits.items())
    note = f"Splits are stratified by label ({ratios}, seed {recipe.seed})"
    if export.get("near_duplicate_groups") is not None:
        note += (f", and grouped so that near-duplicates (similarity >= "
                 f"{recipe.export.near_duplicate_threshold:g} once entity values are masked) "
                 f"never straddle two splits: {export['near_duplicate_groups']} groups, the "
                 f"largest of {export['largest_group']} rows")
    note += "."
    if export.get("rasa_skipped"):
        note += (f" {export['rasa_skipped']} rows are left out of the Rasa file because Rasa's "
                 "markup cannot express their text.")
    return note


def _template_source(recipe: Recipe) -> str:
    from textsynth.templates import PromptTemplate

    try:
        return PromptTemplate.load(recipe.template, recipe.base_dir).source.strip()
    except TextsynthError as exc:
        return f"(not available: {exc})"


def render_card(recipe: Recipe, dataset: Any, summary: dict[str, Any],
                store: Store | None = None, out_dir: Path | None = None) -> str:
    """The card's markdown: YAML header for the Hub, then how the data was made."""
    dataset = _splits(dataset)
    rejects = store.reject_counts() if store is not None else {}
    export = (store.get_meta("export", {}) if store is not None else {}) or {}
    total = sum(len(split) for split in dataset.values())
    recipe_yaml = yaml.safe_dump(
        redact(recipe.model_dump(mode="json", by_alias=True, exclude={"source"})),
        sort_keys=False, allow_unicode=True)
    fields = "\n".join(f"- `{name}`: {feature!r}" for name, feature in
                       next(iter(dataset.values())).features.items()) if dataset else ""
    license_line = (f"License: `{recipe.license}` (as the recipe states)." if recipe.license
                    else "License: not stated in the recipe; add `license:` before sharing.")
    push = (f"textsynth push {recipe.output_dir} {recipe.export.hub.repo_id}\n"
            if recipe.export.hub else "")
    if summary.get("command"):  # translate / paraphrase: a command over a source, no recipe
        reproduce = (f"With the source data (`{summary.get('source', '?')}`) at hand, run:\n\n"
                     f"```\npip install textsynth\n{summary['command']}\n```\n\n"
                     "(the recipe above is what that command builds).")
    else:
        reproduce = ("Save the recipe above as `recipe.yaml` and run:\n\n"
                     f"```\npip install textsynth\ntextsynth run recipe.yaml\n{push}```")
    body = f"""
# {recipe.name}

{recipe.description or "A synthetic labeled text dataset."}

A synthetic dataset of {total} rows for training and evaluating
{"intent and entity (slot) models" if "entities" in fields else "text classifiers"}
over {len(recipe.labels)} labels, generated with
[textsynth](https://pypi.org/project/textsynth/) from the recipe and prompt below.
The texts were written by a language model, not collected from people: check them
before relying on them, and prefer real data for final evaluation. {license_line}

## Labels and splits

{_counts_table(recipe, dataset) if dataset else "(no rows)"}

{_splits_note(recipe, export)}

{_entities_section(recipe, dataset) if dataset else ""}## Fields

{fields}

Provenance columns: `template` and `template_sha` (the prompt that produced the row),
`model`, `attributes` (the recipe's `vary` values for the row, as JSON), `seed` (the
job's seed) and `request_id` (the request key in the run store).

{_made_section(recipe, dataset, summary, rejects)}## Prompt template

`{recipe.template}` (sha {_template_sha(recipe)}):

```jinja
{_template_source(recipe)}
```

## Recipe

```yaml
{recipe_yaml}```

## Reproduce

{reproduce}

{_determinism_note(summary)}
"""
    # the body holds Jinja source (the prompt), so it must not go through a template
    header = card_data(recipe, dataset, out_dir).to_yaml()
    # what ``DatasetCard(text).content`` gives back (a test checks it)
    card = f"---\n{header}\n---\n{body}"
    # last line of defence: no secret (known, or shaped like one) appears in the card
    return redact_text(card)


def _determinism_note(summary: dict[str, Any]) -> str:
    """What a rerun gives: the backend says so when it is not exactly the same rows."""
    note = (summary.get("backend_stats") or {}).get("determinism")
    return str(note) if note else (
        "With the same recipe, seed and a deterministic backend (the transformers backend\n"
        "decodes with per-request seeds) the rows come out the same.")


def _template_sha(recipe: Recipe) -> str:
    from textsynth.templates import PromptTemplate

    try:
        return PromptTemplate.load(recipe.template, recipe.base_dir).sha
    except TextsynthError:
        return "unknown"


def write_card(recipe: Recipe, dataset: Any, summary: dict[str, Any], out_dir: Path,
               store: Store | None = None) -> Path:
    """Write README.md into ``out_dir`` (atomically: a failed write keeps the old card).

    A README.md that textsynth did not write (see :mod:`textsynth.export.folder`) is
    never replaced: that is an :class:`ExportError`.
    """
    out = Path(out_dir)
    path = out / CARD
    tmp = path.with_name(f".{CARD}.{os.getpid()}.tmp")
    manifest = read_manifest(out)
    if foreign(out, [CARD], manifest):
        raise ExportError(f"{path} was not written by textsynth: move it away, or export "
                          "again with --overwrite")
    if CARD not in manifest:
        write_manifest(out, manifest | {CARD})
    try:
        tmp.write_text(render_card(recipe, dataset, summary, store, out_dir), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise ExportError(f"cannot write the dataset card {path}: {exc}") from exc
    return path
