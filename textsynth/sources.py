"""Reading labeled text from anywhere: one loader for eval, report and augmentation.

Accepted inputs:

- a textsynth output folder (its ``dataset/`` folder, else ``data/*.parquet``, else
  ``*.jsonl``),
- a folder written by ``datasets``' ``save_to_disk`` (a ``Dataset`` or ``DatasetDict``),
- a JSONL, JSON (a list of objects), CSV/TSV or Parquet file.

``ClassLabel`` integers become their names, so every row's label is a string.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textsynth._json import valid_text
from textsynth.errors import DataError
from textsynth.quality.rejects import REJECTS_SPLIT  # beside the data: not data

__all__ = ["LabeledSet", "load_labeled"]

TEXT_COLUMNS = ("text", "utterance", "sentence", "content")
LABEL_COLUMNS = ("label", "intent", "category", "class")


@dataclass
class LabeledSet:
    """Rows with a ``text`` and a string ``label``, plus whatever other columns they had.

    Each row also carries ``split`` (its split, or ``""``) and ``row_id`` (a stable
    id: ``split:index`` or ``line N``), so derived rows can point back at it.
    """

    rows: list[dict[str, Any]]
    name: str = ""
    label_names: list[str] = field(default_factory=list)
    skipped: int = 0  # rows without a text or a label

    @property
    def texts(self) -> list[str]:
        return [r["text"] for r in self.rows]

    @property
    def labels(self) -> list[str]:
        return [r["label"] for r in self.rows]

    @property
    def languages(self) -> list[str]:
        return [str(r.get("language") or "") for r in self.rows]

    def label_counts(self) -> Counter[str]:
        return Counter(self.labels)

    def __len__(self) -> int:
        return len(self.rows)

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, str]], name: str = "") -> LabeledSet:
        """A set built in memory from ``(text, label)`` pairs."""
        rows = [{"text": t, "label": lab, "split": "", "row_id": f"row {i}"}
                for i, (t, lab) in enumerate(pairs)]
        return cls(rows, name, sorted({r["label"] for r in rows}))


def load_labeled(source: str | Path | LabeledSet, *, split: str | Sequence[str] | None = None,
                 text_column: str | None = None, label_column: str | None = None
                 ) -> LabeledSet:
    """Load labeled rows from a file or folder (see the module docstring).

    ``split`` keeps only the named split(s) of a multi-split input; by default every
    split is read. Raises :class:`DataError` with the path and what was wrong.

    >>> data = load_labeled("output/smart-home-intents")  # doctest: +SKIP
    >>> data.texts[:2], data.labels[:2]  # doctest: +SKIP
    """
    if isinstance(source, LabeledSet):
        return source
    path = Path(source)
    if not path.exists():
        raise DataError("no such file or folder", source=str(path))
    tables, names = _read(path)
    tables.pop(REJECTS_SPLIT, None)  # candidates the run rejected are not data
    wanted = [split] if isinstance(split, str) else list(split or [])
    if wanted:
        missing = [s for s in wanted if s not in tables]
        if missing:
            raise DataError(f"no split {missing[0]!r} (splits: {', '.join(tables) or 'none'})",
                            source=str(path))
        tables = {s: tables[s] for s in wanted}
    rows: list[dict[str, Any]] = []
    total = 0
    for split_name, table in tables.items():
        total += len(table)
        rows.extend(_normalise(table, split_name, names, path, text_column, label_column))
    if not rows:
        raise DataError("no rows with a text and a label", source=str(path))
    label_names = names or sorted({r["label"] for r in rows})
    return LabeledSet(rows, str(path), list(label_names), total - len(rows))


def _read(path: Path) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    """Tables by split name, and the ``ClassLabel`` names if the input had any."""
    if path.is_dir():
        if (path / "dataset").is_dir():
            return _read_saved(path / "dataset")
        parquet = sorted((path / "data").glob("*.parquet")) if (path / "data").is_dir() else []
        if parquet:
            return _read_files(parquet, by_split=True)
        if (path / "dataset_dict.json").is_file() or (path / "dataset_info.json").is_file():
            return _read_saved(path)
        jsonl = sorted(path.glob("*.jsonl"))
        if jsonl:
            return _read_files(jsonl, by_split=True)
        raise DataError("not a dataset folder (no dataset/, data/*.parquet, *.jsonl or "
                        "save_to_disk files)", source=str(path))
    return _read_files([path])


def _read_saved(folder: Path) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    from datasets import Dataset, DatasetDict, load_from_disk

    try:
        loaded = load_from_disk(str(folder))
    except (OSError, ValueError, FileNotFoundError) as exc:
        raise DataError(f"cannot load the saved dataset: {exc}", source=str(folder)) from exc
    parts: dict[str, Dataset] = (dict(loaded) if isinstance(loaded, DatasetDict)
                                 else {"": loaded})
    names: list[str] = []
    tables = {}
    for split_name, ds in parts.items():
        feature = ds.features.get("label")
        names = list(getattr(feature, "names", None) or names)
        tables[split_name] = ds.to_list()
    return tables, names


def _split_of(path: Path) -> str:
    # "train-00000-of-00001.parquet" -> "train"; "test.jsonl" -> "test"
    return path.name.split(".")[0].split("-")[0]


def _read_files(paths: list[Path], by_split: bool = False
                ) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    """Rows by split; in an output folder the split is in each file's name."""
    tables: dict[str, list[dict[str, Any]]] = {}
    names: list[str] = []
    for p in paths:
        key = _split_of(p) if by_split else ""
        suffix = p.suffix.lower()
        if suffix in (".jsonl", ".json"):
            rows = _read_json(p)
        elif suffix in (".csv", ".tsv"):
            rows = _read_csv(p)
        elif suffix == ".parquet":
            rows, found = _read_parquet(p)
            names = found or names
        else:
            raise DataError("unknown file type (expected .jsonl, .json, .csv, .tsv or .parquet)",
                            source=str(p))
        tables.setdefault(key, []).extend(rows)
    return tables, names


def _read_json(path: Path) -> list[dict[str, Any]]:
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read: {exc}", source=str(path)) from exc
    stripped = raw.lstrip()
    if stripped.startswith("["):
        try:
            value = json.loads(stripped)
        except ValueError as exc:
            raise DataError(f"not valid JSON: {exc}", source=str(path)) from None
        if not all(isinstance(v, dict) for v in value):
            raise DataError("a JSON file must hold a list of objects", source=str(path))
        return list(valid_text(value))
    rows = []
    for number, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as exc:
            raise DataError(f"line {number} is not valid JSON: {exc.args[0]}",
                            source=str(path)) from None
        if not isinstance(value, dict):
            raise DataError(f"line {number} is not a JSON object", source=str(path))
        rows.append(valid_text(value) if "\\u" in line else value)
    return rows


def _read_csv(path: Path) -> list[dict[str, Any]]:
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            sample = fh.read(4096)
            fh.seek(0)
            delimiter = "\t" if path.suffix.lower() == ".tsv" or (
                "\t" in sample and "," not in sample.splitlines()[0]) else ","
            return [dict(r) for r in csv.DictReader(fh, delimiter=delimiter)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read the CSV file: {exc}", source=str(path)) from exc


def _read_parquet(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    from datasets import Dataset

    try:
        ds = Dataset.from_parquet(str(path))
    except Exception as exc:  # pyarrow raises many types for a bad file
        raise DataError(f"cannot read the Parquet file: {exc}", source=str(path)) from exc
    feature = ds.features.get("label")
    return ds.to_list(), list(getattr(feature, "names", None) or [])


def _pick(columns: Iterable[str], wanted: str | None, candidates: tuple[str, ...], what: str,
          path: Path) -> str:
    cols = list(columns)
    if wanted:
        if wanted not in cols:
            raise DataError(f"no column {wanted!r} (columns: {', '.join(cols)})", source=str(path))
        return wanted
    for name in candidates:
        if name in cols:
            return name
    raise DataError(f"no {what} column (looked for {', '.join(candidates)}; columns: "
                    f"{', '.join(cols)})", source=str(path))


def _normalise(table: list[dict[str, Any]], split_name: str, names: list[str], path: Path,
               text_column: str | None, label_column: str | None) -> list[dict[str, Any]]:
    if not table:
        return []
    text_col = _pick(table[0], text_column, TEXT_COLUMNS, "text", path)
    label_col = _pick(table[0], label_column, LABEL_COLUMNS, "label", path)
    out = []
    for index, row in enumerate(table):
        text, label = row.get(text_col), row.get(label_col)
        if not isinstance(text, str) or not text.strip() or label is None or label == "":
            continue
        if isinstance(label, int) and not isinstance(label, bool) and names:
            if not 0 <= label < len(names):
                raise DataError(f"row {index}: label {label} is outside the {len(names)} "
                                "label names", source=str(path))
            label = names[label]
        new = {k: v for k, v in row.items() if k not in (text_col, label_col)}
        row_id = f"{split_name}:{index}" if split_name else f"row {index}"
        new.update(text=text.strip(), label=str(label), split=split_name,
                   row_id=str(row.get("id", row_id)))
        out.append(new)
    return out
