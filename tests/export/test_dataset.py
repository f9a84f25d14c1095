from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Literal

import pytest
from datasets import ClassLabel, Features, List, Value, load_dataset, load_from_disk
from pydantic import BaseModel
from slots_fixtures import run_slots

from textsynth import ExportError, load_recipe
from textsynth.example import Example
from textsynth.export import dataset as dataset_module
from textsynth.export.dataset import DatasetLayout, build_dataset, export_dataset
from textsynth.export.features import dataset_features, feature_dict
from textsynth.export.split import masked_text, near_duplicate_groups, stratified_split
from textsynth.result import RunResult
from textsynth.schemas import PydanticSchema
from textsynth.store import Store

SPAN = List({"start": Value("int32"), "end": Value("int32"), "entity": Value("string"),
             "value": Value("string")})


def test_hub_layout_loads_with_features_and_splits(slots_run: RunResult) -> None:
    out = slots_run.out_dir
    ds = load_dataset(str(out))
    assert set(ds) == {"train", "validation", "test"}
    features = ds["train"].features
    assert features["label"] == ClassLabel(names=["turn_on", "play_music"])
    assert features["entities"] == SPAN
    assert features["tags"] == List(ClassLabel(names=["O", "B-artist", "I-artist", "B-room",
                                                      "I-room"]))
    for column in ("template", "template_sha", "model", "attributes", "seed", "request_id"):
        assert column in features
    assert {k: len(v) for k, v in ds.items()} == {k: len(v) for k, v in slots_run.dataset.items()}
    saved = load_from_disk(str(out / "dataset"))
    assert saved["train"].features == features
    assert list(saved["train"]["text"]) == list(ds["train"]["text"])


def test_every_span_and_tag_agrees_with_the_text(slots_run: RunResult) -> None:
    rows = [r for split in slots_run.dataset.values() for r in split]
    assert len(rows) == 16
    names = slots_run.dataset["train"].features["tags"].feature.names
    for row in rows:
        assert row["entities"]
        for span in row["entities"]:
            assert row["text"][span["start"]:span["end"]] == span["value"]
        assert row["tokens"] == row["text"].split()
        begins = [names[t] for t in row["tags"] if names[t].startswith("B-")]
        assert sorted(b[2:] for b in begins) == sorted(e["entity"] for e in row["entities"])


def test_jsonl_and_csv_carry_label_names_and_nested_spans(slots_run: RunResult) -> None:
    out = slots_run.out_dir
    rows = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    assert len(rows) == len(slots_run.dataset["train"])
    assert {r["label"] for r in rows} == {"turn_on", "play_music"}
    assert all(r["tags"][0] in ("O", "B-room", "B-artist") for r in rows)
    with (out / "train.csv").open() as fh:
        table = list(csv.DictReader(fh))
    assert [r["text"] for r in table] == [r["text"] for r in rows]
    assert json.loads(table[0]["entities"]) == rows[0]["entities"]


def test_parquet_is_sharded_and_stale_shards_are_replaced(slots_recipe_dict: dict) -> None:
    slots_recipe_dict["export"]["rows_per_shard"] = 5
    first = run_slots(slots_recipe_dict)
    shards = sorted(p.name for p in (first.out_dir / "data").iterdir())
    assert shards[:3] == ["test-00000-of-00001.parquet", "train-00000-of-00003.parquet",
                          "train-00001-of-00003.parquet"]
    assert sum(len(s) for s in load_dataset(str(first.out_dir)).values()) == 16

    slots_recipe_dict["export"]["rows_per_shard"] = 100
    second = run_slots(slots_recipe_dict)
    assert sorted(p.name for p in (second.out_dir / "data").iterdir()) == [
        "test-00000-of-00001.parquet", "train-00000-of-00001.parquet",
        "validation-00000-of-00001.parquet"]


def test_failed_export_keeps_the_previous_one(slots_run: RunResult, slots_recipe_dict: dict,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    out = slots_run.out_dir
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*")
              if p.is_file() and "textsynth.db" not in p.name}
    real = dataset_module._write_jsonl

    def disk_full(rows: list, fh: Any) -> None:
        real(rows[:1], fh)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(dataset_module, "_write_jsonl", disk_full)
    with Store.in_dir(out) as store, pytest.raises(ExportError, match="No space left"):
        export_dataset(DatasetLayout.of(load_recipe(slots_recipe_dict)), store, out)
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*")
             if p.is_file() and "textsynth.db" not in p.name}
    assert after == before


def test_rows_written_a_batch_at_a_time_are_the_same_files(
        slots_run: RunResult, slots_recipe_dict: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """JSONL and CSV are written from a few rows at a time (not a Python copy of the whole
    split): batches of 3 give the same bytes as one batch."""
    out = slots_run.out_dir
    texts = ("train.jsonl", "train.csv", "test.jsonl", "validation.csv")
    whole = {name: (out / name).read_bytes() for name in texts}
    assert whole["train.jsonl"].count(b"\n") > 3  # several batches below
    monkeypatch.setattr(dataset_module, "_READABLE_BATCH", 3)
    with Store.in_dir(out) as store:
        export_dataset(DatasetLayout.of(load_recipe(slots_recipe_dict)), store, out)
    assert {name: (out / name).read_bytes() for name in texts} == whole


class Review(BaseModel):
    class Aspect(BaseModel):
        name: str
        score: float

    text: str
    stars: int
    verified: bool | None = None
    tags: list[str] = []
    aspects: list[Aspect] = []
    tone: Literal["positive", "negative"] = "positive"
    extra: dict[str, int] = {}


def test_features_come_from_a_pydantic_schema(recipe_dict: dict) -> None:
    recipe = load_recipe(recipe_dict)
    schema = PydanticSchema(Review)
    layout = DatasetLayout.of(recipe, schema)
    features = {k: feature_dict(f) for k, f in dataset_features(layout).items()}
    expected = Features({"stars": Value("int64"), "verified": Value("bool"),
                         "tags": List(Value("string")),
                         "aspects": List({"name": Value("string"), "score": Value("float64")}),
                         "tone": Value("string"), "extra": Value("string")}).to_dict()
    assert {k: features[k] for k in expected} == expected
    examples = [Example(f"text {i}", "turn_on", fields={
        "stars": i, "verified": None, "tags": ["a"], "aspects": [{"name": "x", "score": 0.5}],
        "tone": "positive", "extra": {"n": i}}) for i in range(10)]
    ds = build_dataset(DatasetLayout.of(recipe, schema), examples)
    row = ds["train"][0]
    assert json.loads(row["extra"]) == {"n": row["stars"]}
    assert row["aspects"] == [{"name": "x", "score": 0.5}]


def test_ungrouped_split_is_stratified_and_deterministic() -> None:
    labels = ["a"] * 20 + ["b"] * 10
    ratios = {"train": 0.8, "validation": 0.1, "test": 0.1}
    split = stratified_split(labels, ratios, seed=3)
    assert split == stratified_split(labels, ratios, seed=3)
    assert split != stratified_split(labels, ratios, seed=4)
    assert [sum(labels[i] == "a" for i in split[s]) for s in ratios] == [16, 2, 2]
    assert [sum(labels[i] == "b" for i in split[s]) for s in ratios] == [8, 1, 1]


def test_near_duplicates_never_straddle_splits() -> None:
    rooms = ["kitchen", "garage", "bedroom", "office", "attic"]
    texts, spans = [], []
    for skeleton in ("turn on the {} lights", "switch the {} lamp on now",
                     "could you light up the {} please", "I need light in the {}"):
        for room in rooms:
            text = skeleton.format(room)
            start = text.index(room)
            texts.append(text)
            spans.append([{"start": start, "end": start + len(room), "entity": "room"}])
    keys = [masked_text(t, s) for t, s in zip(texts, spans, strict=True)]
    groups = near_duplicate_groups(keys, 0.85)
    assert len(set(groups)) == 4
    split = stratified_split(["on"] * len(texts), {"train": 0.5, "test": 0.5}, 0, groups)
    where = {i: name for name, idx in split.items() for i in idx}
    for g in set(groups):
        assert len({where[i] for i, gg in enumerate(groups) if gg == g}) == 1
    assert sorted(len(v) for v in split.values()) == [10, 10]
    # without grouping the same skeleton lands on both sides
    plain = stratified_split(["on"] * len(texts), {"train": 0.5, "test": 0.5}, 0)
    where = {i: name for name, idx in plain.items() for i in idx}
    assert any(len({where[i] for i, gg in enumerate(groups) if gg == g}) > 1 for g in set(groups))


def test_a_group_spanning_labels_stays_in_one_split() -> None:
    labels = ["on", "off"] * 10
    groups = [0] * 4 + list(range(1, 17))  # rows 0-3 (both labels) are near-duplicates
    split = stratified_split(labels, {"train": 0.5, "test": 0.5}, 1, groups)
    assert any({0, 1, 2, 3} <= set(idx) for idx in split.values())
    for name in split:
        assert sum(labels[i] == "on" for i in split[name]) == 5


def test_export_reports_groups_in_the_store(slots_recipe_dict: dict) -> None:
    slots_recipe_dict["export"]["group_near_duplicates"] = True
    outcome = run_slots(slots_recipe_dict)
    with Store.in_dir(outcome.out_dir) as store:
        report = store.get_meta("export")
    assert report["near_duplicate_groups"] >= 2
    assert report["splits"] == {k: len(v) for k, v in outcome.dataset.items()}
    assert "near-duplicates" in (outcome.out_dir / "README.md").read_text()


def test_rejects_are_saved_with_their_reasons_when_asked(slots_recipe_dict: dict) -> None:
    slots_recipe_dict["export"]["save_rejects"] = True
    outcome = run_slots(slots_recipe_dict)
    rows = [json.loads(line) for line in
            (outcome.out_dir / "rejected.jsonl").read_text().splitlines()]
    assert len(rows) == sum(outcome.stats.rejected.values())
    assert {r["reason"] for r in rows} == set(outcome.stats.rejected)
    assert {"label", "text", "detail"} <= set(rows[0])
    slots_recipe_dict["export"]["save_rejects"] = False
    assert not (run_slots(slots_recipe_dict).out_dir / "rejected.jsonl").exists()


def test_exporting_no_rows_is_a_clear_error(slots_recipe_dict: dict, tmp_path: Path) -> None:
    recipe = load_recipe(slots_recipe_dict)
    with Store(tmp_path / "empty.db") as store, \
            pytest.raises(ExportError, match="no row was accepted"):
        export_dataset(DatasetLayout.of(recipe), store, tmp_path / "out")
    assert not (tmp_path / "out" / "dataset").exists()


def test_translate_paraphrase_and_run_export_one_entities_feature(
        slots_run: RunResult, tmp_path: Path) -> None:
    from textsynth import FakeBackend, Request
    from textsynth.augment import paraphrase, translate
    from textsynth.export.rasa import rasa_nlu_yaml, read_rasa_nlu

    source = tmp_path / "seeds.jsonl"
    source.write_text(json.dumps({"text": "play [Queen](artist) in the [kitchen](room)",
                                  "label": "play_music"}) + "\n", encoding="utf-8")

    def answer(request: Request) -> str:  # keeps the markup of the source row
        prompt = request.messages[-1]["content"]
        marked = next(line for line in prompt.splitlines() if "[Queen](artist)" in line)
        return "1. please " + marked.split(": ", 1)[-1]

    outputs = {
        "run": slots_run.dataset,
        "translate": translate(source, ["de"], tmp_path / "de",
                               backend=FakeBackend(handler=answer),
                               quality={"language_id": False}).dataset,
        "paraphrase": paraphrase(source, 1, tmp_path / "para",
                                 backend=FakeBackend(handler=answer)).dataset,
    }
    for name, ds in outputs.items():
        assert ds["train"].features["entities"] == SPAN, name
        assert "slots" not in ds["train"].features, name
    rows = [r for split in outputs["translate"].values() for r in split]
    assert [(e["entity"], e["value"]) for e in rows[0]["entities"]] == [
        ("artist", "Queen"), ("room", "kitchen")]
    assert all(r["text"][e["start"]:e["end"]] == e["value"]
               for r in rows for e in r["entities"])
    # the Rasa file of a translation carries its entities like a slots run's
    nlu, skipped = rasa_nlu_yaml([{**r, "label": "play_music"} for r in rows], ["play_music"])
    assert skipped == 0
    parsed = read_rasa_nlu(nlu)[0]
    assert [(e["entity"], e["value"]) for e in parsed.entities] == [
        ("artist", "Queen"), ("room", "kitchen")]
    card = (tmp_path / "de" / "README.md").read_text(encoding="utf-8")
    assert "## Entities" in card and "`[value](entity)` markup" in card
