"""The exported splits as pyarrow tables, written in the layouts ``datasets`` reads.

The run writes its dataset with pyarrow alone: ``save_to_disk``'s folder (an Arrow
stream file, ``dataset_info.json`` and ``state.json`` per split, ``dataset_dict.json``)
for ``datasets.load_from_disk``, and Parquet shards whose schema carries the
features (the ``huggingface`` metadata key) for ``datasets.load_dataset``. Importing
``datasets`` (with pandas) costs a run about a second of CPU and 100 MB of memory;
:class:`ExportedDataset` builds the ``DatasetDict`` only when a caller asks for it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textsynth._json import to_json
from textsynth.export.feature_types import ClassLabel, List, Value, feature_dict

if TYPE_CHECKING:  # imported where used: a run loads pyarrow only when it exports
    import pyarrow as pa

__all__ = ["ExportedDataset", "ExportedSplit", "arrow_type", "features_yaml", "malloc_pool",
           "release_memory", "split_table", "write_parquet", "write_saved_dataset"]


@contextlib.contextmanager
def malloc_pool() -> Iterator[None]:
    """Arrow allocates from malloc meanwhile: its default pool (jemalloc or mimalloc)
    keeps freed pages, which at 10,000 rows adds 20-40 MB to the run's peak memory.

    Where pyarrow is not loaded yet, its default pool is made the system one before it
    loads (unless ``ARROW_DEFAULT_MEMORY_POOL`` is set): the Parquet writer allocates
    from the pool Arrow started with whatever the current one is, and mimalloc's
    first use alone holds 12 MB.
    """
    if "pyarrow" not in sys.modules:
        os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    import pyarrow as pa

    previous = pa.default_memory_pool()
    pa.set_memory_pool(pa.system_memory_pool())
    try:
        yield
    finally:
        pa.set_memory_pool(previous)


def release_memory(collect: bool = True) -> None:
    """Hand the heap that Python and Arrow freed back to the system (glibc's
    ``malloc_trim``), so that the next step's memory does not come on top of it; a
    no-op where the C library is not glibc. ``collect``: collect cycles first (a full
    collection: tens of milliseconds; rows and tables are freed without one)."""
    import ctypes
    import gc

    if collect:
        gc.collect()
    # not glibc: the memory is reused, not returned
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def arrow_type(feature: Any) -> pa.DataType:
    """The Arrow type that holds ``feature`` (class labels are int64 ids)."""
    import pyarrow as pa

    if isinstance(feature, Value):
        return pa.type_for_alias(feature.dtype)
    if isinstance(feature, ClassLabel):
        return pa.int64()
    if isinstance(feature, List):
        return pa.list_(arrow_type(feature.feature))
    if isinstance(feature, dict):
        return pa.struct([(name, arrow_type(sub)) for name, sub in feature.items()])
    raise TypeError(f"not a dataset feature: {feature!r}")


def _encoder(feature: Any) -> Any:
    """A function from a row's value to what the Arrow column holds: class names become
    ids, and a value a string column cannot hold becomes JSON text."""
    if isinstance(feature, ClassLabel):
        ids = {name: i for i, name in enumerate(feature.names)}

        def label(value: Any) -> Any:
            if isinstance(value, str):
                if value not in ids:
                    raise ValueError(f"{value!r} is not one of the class names {list(ids)}")
                return ids[value]
            return value
        return label
    if isinstance(feature, List):
        item = _encoder(feature.feature)
        return lambda value: None if value is None else [item(v) for v in value]
    if isinstance(feature, dict):
        parts = {name: _encoder(sub) for name, sub in feature.items()}
        return lambda value: None if value is None else {
            name: encode(value.get(name)) for name, encode in parts.items()}
    if isinstance(feature, Value) and feature.dtype == "string":
        return lambda value: value if value is None or isinstance(value, str) else \
            json.dumps(value, ensure_ascii=False, default=str)
    return lambda value: value


def _schema(features: dict[str, Any]) -> pa.Schema:
    import pyarrow as pa

    info = {"info": {"features": {name: feature_dict(f) for name, f in features.items()}}}
    return pa.schema([(name, arrow_type(f)) for name, f in features.items()],
                     metadata={"huggingface": json.dumps(info)})


def split_table(rows: Sequence[dict[str, Any]], features: dict[str, Any]) -> pa.Table:
    """The rows as a table of ``features`` (the columns and their order).

    The rows go through Arrow's JSON reader with the schema given: ``pa.array`` on
    Python lists imports pandas (to look for pandas objects), which this avoids.
    """
    import pyarrow as pa
    import pyarrow.json as pj

    schema = _schema(features)
    if not rows:
        return schema.empty_table()
    encoders = {name: _encoder(feature) for name, feature in features.items()}
    try:
        lines = b"".join(to_json({name: encode(r.get(name)) for name, encode in encoders.items()})
                         .encode("utf-8") + b"\n" for r in rows)
        table = pj.read_json(
            pa.BufferReader(lines),
            read_options=pj.ReadOptions(use_threads=False, block_size=max(1 << 20, len(lines))),
            parse_options=pj.ParseOptions(explicit_schema=schema))
    except (UnicodeEncodeError, pa.ArrowInvalid) as exc:  # a lone surrogate ...
        from textsynth.errors import ExportError

        raise ExportError(f"a row cannot be written as Arrow data: {exc}") from None
    table = table.select(schema.names)
    if table.schema.equals(schema, check_metadata=False):  # the usual case: no cast, and
        return table.replace_schema_metadata(schema.metadata)  # no pyarrow.compute (9 MB)
    return table.cast(schema)


class ExportedSplit:
    """One split: its table and features; ``split["text"]`` is a column as a list."""

    def __init__(self, data: pa.Table, features: dict[str, Any]):
        self.data = data
        self.features = features

    def __len__(self) -> int:
        return int(self.data.num_rows)

    @property
    def num_rows(self) -> int:
        return len(self)

    def __getitem__(self, column: str) -> list[Any]:
        return list(self.data.column(column).to_pylist())

    def to_list(self) -> list[dict[str, Any]]:
        return list(self.data.to_pylist())


class ExportedDataset(Mapping[str, Any]):
    """The exported splits; indexing gives ``datasets.Dataset`` objects, built on first use.

    ``splits`` holds the pyarrow tables (no ``datasets`` import); ``to_datasets()`` is the
    ``DatasetDict``, and any other attribute is looked up on it.
    """

    def __init__(self, splits: dict[str, ExportedSplit]):
        self.splits = splits
        self._datasets: Any = None

    def to_datasets(self) -> Any:
        """The splits as a ``datasets.DatasetDict`` (the tables are shared, not copied)."""
        if self._datasets is None:
            from datasets import Dataset, DatasetDict, DatasetInfo, Features
            from datasets.table import InMemoryTable

            self._datasets = DatasetDict({
                name: Dataset(InMemoryTable(split.data), info=DatasetInfo(
                    features=Features.from_dict({k: feature_dict(f)
                                                 for k, f in split.features.items()})),
                    split=name)
                for name, split in self.splits.items()})
        return self._datasets

    def __getitem__(self, name: str) -> Any:
        if name not in self.splits:
            raise KeyError(name)
        return self.to_datasets()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.splits)

    def __len__(self) -> int:
        return len(self.splits)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name == "splits":
            raise AttributeError(name)
        return getattr(self.to_datasets(), name)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{name}: {len(split)} rows" for name, split in self.splits.items())
        return f"ExportedDataset({sizes})"


def write_saved_dataset(splits: dict[str, ExportedSplit], folder: Path) -> None:
    """``DatasetDict.save_to_disk``'s layout, one Arrow file a split."""
    import pyarrow as pa

    folder.mkdir(parents=True)
    for name, split in splits.items():
        part = folder / name
        part.mkdir()
        data_file = "data-00000-of-00001.arrow"
        with pa.OSFile(str(part / data_file), "wb") as sink, \
                pa.ipc.new_stream(sink, split.data.schema) as writer:
            writer.write_table(split.data)
        digest = hashlib.blake2b(digest_size=8)
        with (part / data_file).open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        info = {"citation": "", "description": "",
                "features": {k: feature_dict(f) for k, f in split.features.items()},
                "homepage": "", "license": ""}
        state: dict[str, Any] = {
            "_data_files": [{"filename": data_file}], "_fingerprint": digest.hexdigest(),
            "_format_columns": None, "_format_kwargs": {}, "_format_type": None,
            "_output_all_columns": False, "_split": None}
        (part / "dataset_info.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
        (part / "state.json").write_text(json.dumps(state, indent=2), encoding="utf-8")
    (folder / "dataset_dict.json").write_text(json.dumps({"splits": list(splits)}),
                                              encoding="utf-8")


def write_parquet(split: ExportedSplit, name: str, folder: Path,
                  rows_per_shard: int) -> list[Path]:
    """Contiguous shards of at most ``rows_per_shard`` rows, named as the Hub expects."""
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    total = len(split)
    shards = max(1, -(-total // rows_per_shard))
    size, extra = divmod(total, shards)  # the sizes ``Dataset.shard(contiguous=True)`` gives
    written, start = [], 0
    for i in range(shards):
        length = size + (1 if i < extra else 0)
        file = folder / f"{name}-{i:05d}-of-{shards:05d}.parquet"
        pq.write_table(split.data.slice(start, length), str(file))
        written.append(file)
        start += length
    return written


def features_yaml(features: dict[str, Any]) -> list[dict[str, Any]]:
    """The features as the card's ``dataset_info.features`` list (``datasets``'
    ``Features._to_yaml_list``)."""

    def inner(feature: Any) -> dict[str, Any]:
        if isinstance(feature, dict) and "_type" not in feature:
            return {"struct": [{"name": k, **inner(v)} for k, v in feature.items()]}
        kind = feature["_type"]
        if kind == "Value":
            return {"dtype": feature["dtype"]}
        if kind == "ClassLabel":
            return {"dtype": {"class_label": {"names": {
                str(i): n for i, n in enumerate(feature["names"])}}}}
        if kind == "List":
            item = inner(feature["feature"])
            if list(item) in (["dtype"], ["struct"]):
                item = next(iter(item.values()))
            return {"list": item}
        raise TypeError(f"no YAML form for the feature {feature!r}")

    return [{"name": name, **inner(feature_dict(f))} for name, f in features.items()]
