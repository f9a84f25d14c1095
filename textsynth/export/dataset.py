"""Build the exported splits from the store and write them in every format.

The splits are pyarrow tables (:mod:`textsynth.export.arrow`); the ``DatasetDict``
the export returns is built from them only when a caller uses it.

Everything is written into a staging folder of this process first and moved into
place at the end, so a failed export leaves the previous one intact, never half of
each. Only files an earlier export wrote (its manifest, see
:mod:`textsynth.export.folder`) are replaced or removed.
"""

from __future__ import annotations

import contextlib
import csv
import os
import shutil
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

from textsynth._json import to_json, to_sorted_json
from textsynth.errors import ExportError
from textsynth.example import Example
from textsynth.export.arrow import (
    ExportedDataset,
    ExportedSplit,
    malloc_pool,
    release_memory,
    split_table,
    write_parquet,
    write_saved_dataset,
)
from textsynth.export.features import DatasetLayout, dataset_features
from textsynth.export.folder import (
    CARD,
    claim,
    read_manifest,
    remove_stale,
    staging_folder,
    write_manifest,
)
from textsynth.export.split import masked_text, near_duplicate_groups, stratified_split
from textsynth.recipe_specs import ExportSpec
from textsynth.spans import bio_tags, relocate_spans
from textsynth.store import STORE_NAME, Store

__all__ = ["DATASET_DIR", "DatasetLayout", "ExportReport", "build_dataset", "example_rows",
           "export_dataset", "output_names", "parquet_files", "stratified_split"]

DATASET_DIR = "dataset"
PARQUET_DIR = "data"
RASA_FILE = "rasa/nlu.yml"


@dataclass
class ExportReport:
    """What the export did besides writing rows (kept in the store for the card)."""

    splits: dict[str, int] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    near_duplicate_groups: int | None = None
    largest_group: int | None = None
    rasa_skipped: int | None = None
    spans_dropped: int = 0


def example_rows(examples: Iterable[Example]) -> list[dict[str, Any]]:
    """Flat rows: text, label, language, schema fields, then provenance columns."""
    rows = []
    for ex in examples:
        row: dict[str, Any] = {"text": ex.text, "label": ex.label, "language": ex.language}
        for key, value in ex.fields.items():
            row[key] = value
        row.update(
            template=ex.template, template_sha=ex.template_sha, model=ex.model,
            attributes=to_sorted_json(ex.attributes) if ex.attributes else "{}",
            seed=ex.seed, request_id=ex.request_id,
        )
        rows.append(row)
    return rows


def _add_spans(rows: list[dict[str, Any]], bio: bool, report: ExportReport) -> None:
    """Re-check every span against its (possibly rewritten) text; add BIO tags."""
    for row in rows:
        spans = row.get("entities") or []
        kept = relocate_spans(row["text"], spans)
        report.spans_dropped += len(spans) - len(kept)
        row["entities"] = kept
        if bio:
            row["tokens"], row["tags"] = bio_tags(row["text"], kept)


def build_dataset(layout: DatasetLayout, examples: Sequence[Example],
                  report: ExportReport | None = None) -> ExportedDataset:
    """The splits, with features from the layout's labels and schema, split as its
    export settings say.

    Indexing the result gives ``datasets.Dataset`` objects (see
    :class:`~textsynth.export.arrow.ExportedDataset`).
    """
    return _build(layout, example_rows(examples),
                  report if report is not None else ExportReport())


def _build(layout: DatasetLayout, rows: list[dict[str, Any]],
           report: ExportReport) -> ExportedDataset:
    export = layout.export
    features = dataset_features(layout, rows)
    if "entities" in features:
        _add_spans(rows, "tags" in features, report)
    groups = None
    if export.group_near_duplicates and rows:
        keys = [masked_text(r["text"], r.get("entities") or []) for r in rows]
        groups = near_duplicate_groups(keys, export.near_duplicate_threshold)
        sizes = [groups.count(g) for g in set(groups)]
        report.near_duplicate_groups, report.largest_group = len(sizes), max(sizes)
    splits = stratified_split([r["label"] for r in rows], export.splits, layout.seed, groups)
    parts = {}
    for name, idx in splits.items():
        if not idx and rows:
            continue  # too few rows for this split
        table = split_table([rows[i] for i in idx], features)
        parts[name] = ExportedSplit(table, features)
        report.splits[name] = len(idx)
    return ExportedDataset(parts)


def parquet_files(out_dir: Path) -> list[Path]:
    """The Parquet shards of an exported dataset, sorted."""
    return sorted((Path(out_dir) / PARQUET_DIR).glob("*.parquet"))


_READABLE_BATCH = 2048  # rows converted to Python at a time


def _readable_rows(split: ExportedSplit) -> Iterator[list[dict[str, Any]]]:
    """Rows with label and tag names instead of class ids (for JSONL, CSV, Rasa), a
    batch at a time: a whole split as Python objects would be a copy of the dataset."""
    names = split.features["label"].names
    tag_names = split.features["tags"].feature.names if "tags" in split.features else None
    # one Arrow conversion per batch: row by row costs ~20x more
    for batch in split.data.to_batches(max_chunksize=_READABLE_BATCH):
        out = batch.to_pylist()
        for row in out:
            row["label"] = names[row["label"]]
            if tag_names is not None:
                row["tags"] = [tag_names[t] for t in row["tags"]]
        yield out


def _write_jsonl(rows: Iterable[dict[str, Any]], fh: TextIO) -> None:
    for row in rows:
        fh.write(to_json(row) + "\n")


def _write_csv(rows: Iterable[dict[str, Any]], writer: Any, header: bool) -> None:
    for row in rows:
        if header:
            writer.writerow(list(row))
            header = False
        writer.writerow([v if isinstance(v, str | int | float) else
                         to_json(v) for v in row.values()])


def _write_all(layout: DatasetLayout, ds: ExportedDataset, store: Store, stage: Path,
               report: ExportReport) -> list[str]:
    formats = set(layout.export.formats)
    written: list[str] = []
    if "arrow" in formats:
        write_saved_dataset(ds.splits, stage / DATASET_DIR)
        written.append(DATASET_DIR)
    if "parquet" in formats:
        for name, split in ds.splits.items():
            written += [f"{PARQUET_DIR}/{file.name}" for file in write_parquet(
                split, name, stage / PARQUET_DIR, layout.export.rows_per_shard)]
    rasa: list[dict[str, Any]] = []  # Rasa writes one file of every split's rows
    for name, split in ds.splits.items():
        if not formats & {"jsonl", "csv", "rasa"}:
            break
        with contextlib.ExitStack() as files:
            jsonl = files.enter_context((stage / f"{name}.jsonl").open(
                "w", encoding="utf-8")) if "jsonl" in formats else None
            table = csv.writer(files.enter_context((stage / f"{name}.csv").open(
                "w", encoding="utf-8", newline=""))) if "csv" in formats else None
            first = True
            for rows in _readable_rows(split):
                if jsonl is not None:
                    _write_jsonl(rows, jsonl)
                if table is not None:
                    _write_csv(rows, table, header=first)
                if "rasa" in formats:
                    rasa += rows
                first = first and not rows  # the CSV header goes before the first row
        written += [f"{name}.{fmt}" for fmt in ("jsonl", "csv") if fmt in formats]
    if "rasa" in formats:
        from textsynth.export.rasa import write_rasa_nlu

        report.rasa_skipped = write_rasa_nlu(rasa, list(layout.labels), stage / RASA_FILE)
        written.append(RASA_FILE)
    if layout.export.save_rejects:
        written += _write_rejects(layout.labels, store, stage, formats)
    return written


def _reject_files() -> tuple[tuple[str, str], ...]:
    from textsynth.quality.rejects import REJECTS_SPLIT

    return (("arrow", REJECTS_SPLIT), ("parquet", f"{REJECTS_SPLIT}.parquet"),
            ("jsonl", f"{REJECTS_SPLIT}.jsonl"), ("csv", f"{REJECTS_SPLIT}.csv"))


def output_names(export: ExportSpec) -> list[str]:
    """The names an export may write at the top of its folder, the card too."""
    formats = set(export.formats)
    names = [CARD]
    names += [DATASET_DIR] if "arrow" in formats else []
    names += [PARQUET_DIR] if "parquet" in formats else []
    names += [f"{split}.{fmt}" for split in export.splits for fmt in ("jsonl", "csv")
              if fmt in formats]
    names += [RASA_FILE.split("/")[0]] if "rasa" in formats else []
    if export.save_rejects:
        names += [name for fmt, name in _reject_files() if fmt in formats]
    return names


def _files(stage: Path, written: list[str]) -> set[str]:
    """Every file under the written entries, checked to lie inside the staging folder."""
    root = stage.resolve()
    files: set[str] = set()
    for name in {w.split("/")[0] for w in written}:
        path = (stage / name).resolve()
        if path.parent != root or name in ("", ".", ".."):
            raise ExportError(f"refusing to write {name!r}: it is not a plain file name")
        if path.is_dir():
            files.update(p.relative_to(root).as_posix() for p in path.rglob("*")
                         if not p.is_dir())
        else:
            files.add(name)
    return files


def _check_no_run_inside(path: Path) -> None:
    """Refuse to replace a folder that holds another run's store (its paid answers)."""
    if path.is_dir() and not path.is_symlink():
        held = next(path.rglob(STORE_NAME), None)
        if held is not None:
            raise ExportError(f"{path} holds another run's store ({held}), which the export "
                              "would delete: move that run out of it")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextlib.contextmanager
def _quiet_datasets() -> Iterator[None]:
    """``datasets`` draws a progress bar per file; ours is enough."""
    from datasets.utils import logging as ds_logging

    was = ds_logging.is_progress_bar_enabled()
    ds_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            ds_logging.enable_progress_bar()


def export_dataset(layout: DatasetLayout, store: Store, out_dir: Path,
                   overwrite: bool = False) -> ExportedDataset:
    """Write the stored rows in every format the layout's export settings ask for into
    ``out_dir``; return its splits.

    The result maps split names to ``datasets.Dataset`` objects, built on first use.

    Files of an earlier export are replaced; anything else of the same name stops the
    export with an :class:`ExportError` unless ``overwrite``. What was exported (files,
    split sizes, near-duplicate groups, rows Rasa cannot express) is kept in the store
    as meta ``export`` for the dataset card.
    """
    out = Path(out_dir)
    report = ExportReport()
    rows = example_rows(store.examples())  # the stored examples are not kept as well
    if not rows:  # every split would be empty, and an empty split cannot be loaded
        raise ExportError(f"no row was accepted, so there is nothing to export to {out}")
    with malloc_pool():
        ds = _build(layout, rows, report)
    del rows  # the tables hold the rows now
    release_memory(collect=False)
    try:
        out.mkdir(parents=True, exist_ok=True)
        stage = staging_folder(out)
    except OSError as exc:
        raise ExportError(f"cannot write the dataset to {out}: {exc}") from exc
    try:
        with malloc_pool():
            written = _write_all(layout, ds, store, stage, report)
        release_memory(collect=False)
        files = _files(stage, written) | {CARD}  # the card follows the data
        names = {f.split("/")[0] for f in files}
        old = read_manifest(out)
        for name in names - {CARD}:
            _check_no_run_inside(out / name)
        claim(out, names, files, overwrite)
        remove_stale(out, old, files)
        for name in names - {CARD}:
            _remove(out / name)
            os.replace(stage / name, out / name)
        write_manifest(out, files)
    except OSError as exc:
        raise ExportError(f"cannot write the dataset to {out}: {exc}") from exc
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    report.files = sorted(written)
    store.set_meta("export", asdict(report))
    return ds


def _write_rejects(labels: Sequence[str], store: Store, out: Path, formats: set[Any]
                   ) -> list[str]:
    """The rejected candidates as their own split ``rejected``, beside the dataset.

    Kept out of ``data/`` so that loading the dataset never mixes rejects in.
    """
    with _quiet_datasets():
        return _write_rejects_with_datasets(labels, store, out, formats)


def _write_rejects_with_datasets(labels: Sequence[str], store: Store, out: Path,
                                 formats: set[Any]) -> list[str]:
    from datasets import ClassLabel, Dataset, Features, Value

    from textsynth.quality.rejects import reject_rows

    rows = reject_rows(store.rejects())
    names = ("text", "label", "language", "reason", "detail", "request_id")
    features = Features({n: ClassLabel(names=list(labels)) if n == "label"
                         else Value("string") for n in names})
    split = Dataset.from_dict({n: [r[n] for r in rows] for n in names}, features=features)
    written = []
    for fmt, name in _reject_files():
        if fmt not in formats:
            continue
        if fmt == "arrow":
            split.save_to_disk(str(out / name))
        elif fmt == "parquet":
            split.to_parquet(str(out / name))
        elif fmt == "jsonl":
            split.to_json(str(out / name), force_ascii=False, lines=True)
        else:
            split.to_csv(str(out / name), index=False)
        written.append(name)
    return written
