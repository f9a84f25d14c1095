"""Build the Hugging Face ``DatasetDict`` from the store and write it out."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from textsynth.errors import ExportError
from textsynth.recipe import Recipe
from textsynth.schemas import Example
from textsynth.store import Store

__all__ = ["build_dataset", "example_rows", "export_dataset", "stratified_split"]

DATASET_DIR = "dataset"


def example_rows(examples: Sequence[Example]) -> list[dict[str, Any]]:
    """Flat rows: text, label, language, schema fields, then provenance columns."""
    rows = []
    for ex in examples:
        row: dict[str, Any] = {"text": ex.text, "label": ex.label, "language": ex.language}
        for key, value in ex.fields.items():
            row[key] = value
        row.update(
            template=ex.template, template_sha=ex.template_sha, model=ex.model,
            attributes=json.dumps(ex.attributes, ensure_ascii=False, sort_keys=True),
            seed=ex.seed, request_id=ex.request_id,
        )
        rows.append(row)
    return rows


def stratified_split(labels: Sequence[str], ratios: dict[str, float], seed: int
                     ) -> dict[str, list[int]]:
    """Row indices per split, stratified by label, deterministic for a seed.

    Each label's rows are shuffled and cut by the ratios (largest remainders get
    the leftover rows), so every split gets its share of every label.
    """
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        by_label[label].append(i)
    out: dict[str, list[int]] = {name: [] for name in ratios}
    names = list(ratios)
    for turn, label in enumerate(sorted(by_label)):
        idx = by_label[label]
        random.Random(f"{seed}:{label}").shuffle(idx)
        exact = [ratios[n] * len(idx) for n in names]
        counts = [int(x) for x in exact]
        # leftover rows go to the largest remainders; ties rotate across labels so small
        # splits still get rows
        order = sorted(range(len(names)),
                       key=lambda j: (exact[j] - counts[j], -((j - turn) % len(names))),
                       reverse=True)
        for j in order:
            if sum(counts) >= len(idx):
                break
            counts[j] += 1
        start = 0
        for name, count in zip(names, counts, strict=True):
            out[name].extend(idx[start:start + count])
            start += count
    return {name: sorted(v) for name, v in out.items()}


def build_dataset(recipe: Recipe, examples: Sequence[Example]) -> Any:
    """A ``DatasetDict`` with a ``ClassLabel`` label column and the recipe's splits."""
    try:
        from datasets import ClassLabel, Dataset, DatasetDict, Features, Value
    except ImportError as exc:  # pragma: no cover - datasets is a core dependency
        raise ExportError(f"cannot import datasets: {exc}") from exc
    rows = example_rows(examples)
    label_names = list(recipe.labels)
    features = Features({
        "text": Value("string"),
        "label": ClassLabel(names=label_names),
        "language": Value("string"),
        **{k: _feature(v) for k, v in (rows[0].items() if rows else [])
           if k not in ("text", "label", "language")},
    })
    splits = stratified_split([r["label"] for r in rows], recipe.export.splits, recipe.seed)
    parts = {}
    for name, idx in splits.items():
        if not idx and rows:
            continue  # too few rows for this split
        chosen = [rows[i] for i in idx]
        columns = {key: [r[key] for r in chosen] for key in features}
        parts[name] = Dataset.from_dict(columns, features=features)
    return DatasetDict(parts)


def _feature(value: Any) -> Any:
    from datasets import Value

    if isinstance(value, bool):
        return Value("bool")
    if isinstance(value, int):
        return Value("int64")
    if isinstance(value, float):
        return Value("float64")
    return Value("string")


def export_dataset(recipe: Recipe, store: Store, out_dir: Path | None = None) -> Any:
    """Write the dataset in every format the recipe asks for; return the ``DatasetDict``."""
    out = Path(out_dir or recipe.output_dir)
    examples = list(store.examples())
    ds = build_dataset(recipe, examples)
    try:
        out.mkdir(parents=True, exist_ok=True)
        formats = set(recipe.export.formats)
        if "arrow" in formats:
            ds.save_to_disk(str(out / DATASET_DIR))
        data_dir = out / "data"
        for name, split in ds.items():
            if "parquet" in formats:
                data_dir.mkdir(exist_ok=True)
                split.to_parquet(str(data_dir / f"{name}-00000-of-00001.parquet"))
            if "jsonl" in formats:
                split.to_json(str(out / f"{name}.jsonl"), force_ascii=False, lines=True)
            if "csv" in formats:
                split.to_csv(str(out / f"{name}.csv"), index=False)
        if recipe.export.save_rejects:
            _write_rejects(recipe, store, out, formats)
    except OSError as exc:
        raise ExportError(f"cannot write the dataset to {out}: {exc}") from exc
    return ds


def _write_rejects(recipe: Recipe, store: Store, out: Path, formats: set[Any]) -> None:
    """The rejected candidates as their own split ``rejected``, beside the dataset."""
    from datasets import ClassLabel, Dataset, Features, Value

    from textsynth.quality.rejects import REJECTS_SPLIT, reject_rows

    rows = reject_rows(store)
    names = ("text", "label", "language", "reason", "detail", "request_id")
    features = Features({n: ClassLabel(names=list(recipe.labels)) if n == "label"
                         else Value("string") for n in names})
    split = Dataset.from_dict({n: [r[n] for r in rows] for n in names}, features=features)
    if "arrow" in formats:
        split.save_to_disk(str(out / REJECTS_SPLIT))
    if "parquet" in formats:
        (out / "data").mkdir(exist_ok=True)
        split.to_parquet(str(out / "data" / f"{REJECTS_SPLIT}-00000-of-00001.parquet"))
    if "jsonl" in formats:
        split.to_json(str(out / f"{REJECTS_SPLIT}.jsonl"), force_ascii=False, lines=True)
    if "csv" in formats:
        split.to_csv(str(out / f"{REJECTS_SPLIT}.csv"), index=False)
