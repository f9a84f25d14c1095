"""The export written with pyarrow alone reads back in ``datasets`` as if it wrote it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from datasets import (
    ClassLabel,
    Dataset,
    DatasetDict,
    Features,
    List,
    Value,
    load_dataset,
    load_from_disk,
)
from datasets.info import DatasetInfosDict
from datasets.splits import SplitDict, SplitInfo
from datasets.utils.metadata import MetadataConfigs
from huggingface_hub import DatasetCardData

from textsynth.export import features as light
from textsynth.export.arrow import ExportedSplit, split_table
from textsynth.export.card import card_data
from textsynth.export.features import feature_dict
from textsynth.result import RunResult

ROOT = Path(__file__).resolve().parents[2]
SPAN = List({"start": Value("int32"), "end": Value("int32"), "entity": Value("string"),
             "value": Value("string")})
TAGS = List(ClassLabel(names=["O", "B-artist", "I-artist", "B-room", "I-room"]))


def _as_datasets(rows: list[dict[str, Any]], features: Features) -> Dataset:
    """The same rows the way the export built them with ``datasets`` before."""
    return Dataset.from_dict({k: [r.get(k) for r in rows] for k in features},
                             features=features)


def test_saved_dataset_loads_with_its_features_and_rows(slots_run: RunResult) -> None:
    saved = load_from_disk(str(slots_run.out_dir / "dataset"))
    assert isinstance(saved, DatasetDict)
    assert list(saved) == ["train", "validation", "test"]
    features = saved["train"].features
    assert features["label"] == ClassLabel(names=["turn_on", "play_music"])
    assert features["entities"] == SPAN
    assert features["tags"] == TAGS
    assert features["seed"] == Value("int64")
    jsonl = [json.loads(line) for line in
             (slots_run.out_dir / "train.jsonl").read_text().splitlines()]
    rows = saved["train"].to_list()
    assert [r["text"] for r in rows] == [r["text"] for r in jsonl]
    names = features["label"].names
    assert [names[r["label"]] for r in rows] == [r["label"] for r in jsonl]
    assert [r["entities"] for r in rows] == [r["entities"] for r in jsonl]
    # the same rows built by datasets itself: identical values and features
    again = _as_datasets(rows, features)
    assert again.to_list() == rows and again.features == features


def test_parquet_shards_restore_the_features(slots_recipe_dict: dict) -> None:
    from slots_fixtures import run_slots

    slots_recipe_dict["export"]["rows_per_shard"] = 5  # train (12 rows) in 3 shards
    outcome = run_slots(slots_recipe_dict)
    files = sorted(p.name for p in (outcome.out_dir / "data").glob("train-*"))
    assert files == [f"train-0000{i}-of-00003.parquet" for i in range(3)]
    ds = load_dataset("parquet", data_files={
        "train": str(outcome.out_dir / "data" / "train-*.parquet")})["train"]
    assert ds.features["label"] == ClassLabel(names=["turn_on", "play_music"])
    assert ds.features["entities"] == SPAN and ds.features["tags"] == TAGS
    assert ds.to_list() == outcome.dataset["train"].to_list()
    sizes = [len(load_dataset("parquet", data_files=str(outcome.out_dir / "data" / f),
                              split="train")) for f in files]
    assert sizes == [4, 4, 4]  # contiguous shards as Dataset.shard(contiguous=True) cuts them


def test_returned_dataset_is_a_datasets_dict_on_use(slots_run: RunResult) -> None:
    ds = slots_run.dataset
    assert len(ds) == 3 and list(ds) == ["train", "validation", "test"]
    assert isinstance(ds["train"], Dataset)
    assert ds["train"].features["tags"] == TAGS
    assert isinstance(ds.to_datasets(), DatasetDict)
    assert ds.num_rows == {"train": 12, "validation": 2, "test": 2}  # DatasetDict's own
    with pytest.raises(KeyError):
        ds["nope"]


def test_card_header_is_what_datasets_writes(slots_run: RunResult) -> None:
    ours = card_data(load_recipe_of(slots_run), slots_run.dataset, slots_run.out_dir)
    ds = slots_run.dataset.to_datasets()
    theirs = DatasetCardData()
    info = ds["train"].info.copy()
    info.splits = SplitDict()
    for name, split in ds.items():
        info.splits.add(SplitInfo(name=name, num_bytes=split.data.nbytes,
                                  num_examples=len(split)))
    parquet = list((slots_run.out_dir / "data").glob("*.parquet"))
    info.download_size = sum(p.stat().st_size for p in parquet)
    info.dataset_size = sum(split.data.nbytes for split in ds.values())
    DatasetInfosDict({"default": info}).to_dataset_card_data(theirs)
    MetadataConfigs({"default": {"data_files": [
        {"split": name, "path": f"data/{name}-*"} for name in ds]}}
    ).to_dataset_card_data(theirs)
    assert ours.to_dict()["dataset_info"] == theirs.to_dict()["dataset_info"]
    assert ours.to_dict()["configs"] == theirs.to_dict()["configs"]


def load_recipe_of(outcome: RunResult) -> Any:
    from textsynth import load_recipe
    from textsynth.store import Store

    with Store.in_dir(outcome.out_dir) as store:
        return load_recipe(store.get_meta("recipe"))


def test_light_features_match_datasets() -> None:
    ours = {"label": light.ClassLabel(names=["a", "b"]),
            "tags": light.List(light.ClassLabel(names=["O", "B-x"])),
            "entities": light.List({"start": light.Value("int32"),
                                    "value": light.Value("string")}),
            "words": light.List(light.Value("string")), "n": light.Value("float64")}
    theirs = Features({"label": ClassLabel(names=["a", "b"]),
                       "tags": List(ClassLabel(names=["O", "B-x"])),
                       "entities": List({"start": Value("int32"), "value": Value("string")}),
                       "words": List(Value("string")), "n": Value("float64")})
    assert {k: feature_dict(f) for k, f in ours.items()} == theirs.to_dict()
    assert [repr(f) for f in ours.values()] == [repr(f) for f in theirs.values()]
    from textsynth.export.arrow import features_yaml

    assert features_yaml(ours) == theirs._to_yaml_list()
    assert features_yaml(theirs) == theirs._to_yaml_list()  # a DatasetDict a caller passes
    assert feature_dict(Value("string")) == {"dtype": "string", "_type": "Value"}


def test_values_a_column_cannot_hold() -> None:
    features = {"label": light.ClassLabel(names=["on", "off"]), "extra": light.Value("string")}
    table = split_table([{"label": "off", "extra": {"n": 1}}, {"label": 0, "extra": None}],
                        features)
    assert ExportedSplit(table, features).to_list() == [
        {"label": 1, "extra": '{"n": 1}'}, {"label": 0, "extra": None}]
    with pytest.raises(ValueError, match="'dim' is not one of the class names"):
        split_table([{"label": "dim"}], features)
    from textsynth import ExportError

    with pytest.raises(ExportError, match="cannot be written as Arrow data"):
        split_table([{"label": "on", "extra": "broken \ud800 text"}], features)
    nan = split_table([{"n": float("nan")}], {"n": light.Value("float64")}).to_pylist()
    assert nan[0]["n"] != nan[0]["n"]  # NaN stays NaN


def test_a_run_does_not_import_datasets_pandas_or_the_hub_client(tmp_path: Path) -> None:
    # nor pyarrow.compute (9 MB of peak memory): the tables are built in their own types
    recipe = {"name": "light", "labels": {"on": "Switch on", "off": "Switch off"},
              "per_label": 4, "backend": {"type": "fake", "options": {"responses": [
                  '["please {label} the thing number {seed} now", "kindly {label} item {seed}"]'
              ]}},
              "export": {"dir": str(tmp_path / "out"),
                         "formats": ["arrow", "parquet", "jsonl", "csv"]},
              "quality": {"language_id": False, "near_duplicates": False, "novelty": False,
                          "semantic": False, "classifier": False}}
    code = ("import json, sys\n"
            "from textsynth import load_recipe\n"
            "from textsynth.pipeline import run_recipe\n"
            f"outcome = run_recipe(load_recipe(json.loads({json.dumps(recipe)!r})))\n"
            "print(sorted(m for m in ('datasets', 'pandas', 'huggingface_hub.hf_api',\n"
            "                         'pyarrow.compute')\n"
            "             if m in sys.modules))\n"
            "print(sum(len(s) for s in outcome.dataset.splits.values()))\n"
            "import pyarrow\n"
            "print(pyarrow.default_memory_pool().backend_name)\n")
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, check=False, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # Arrow started on the system allocator: mimalloc's first use holds 12 MB more
    assert proc.stdout.split("\n")[:3] == ["[]", "8", "system"]
    assert load_from_disk(str(tmp_path / "out" / "dataset"))["train"].num_rows > 0


class _Declared:
    """An output schema that declares its columns with ``datasets``' own features."""

    def __init__(self, base: Any, features: dict[str, Any]):
        self._base, self._features = base, features

    def __getattr__(self, name: str) -> Any:
        return getattr(self._base, name)

    def dataset_features(self) -> dict[str, Any]:
        return self._features


def test_a_schema_may_declare_datasets_features(recipe_dict: dict) -> None:
    from textsynth import ExportError, load_recipe
    from textsynth.example import Example
    from textsynth.export.dataset import DatasetLayout, build_dataset
    from textsynth.schemas import load_schema

    recipe = load_recipe(recipe_dict)
    base = load_schema(recipe.output_schema).for_recipe(recipe)
    declared = _Declared(base, {"score": Value("int32"), "words": List(Value("string"))})
    examples = [Example(f"text {i}", "turn_on", fields={"score": i, "words": ["a", str(i)]})
                for i in range(10)]
    ds = build_dataset(DatasetLayout.of(recipe, declared), examples)
    assert ds["train"].features["score"] == Value("int32")
    assert ds["train"][0]["words"][0] == "a"
    from datasets import Array2D

    grid = _Declared(base, {"grid": Array2D((2, 2), "int32")})
    with pytest.raises(ExportError, match=r"declares the column 'grid' as .*cannot write"):
        build_dataset(DatasetLayout.of(recipe, grid), examples)
