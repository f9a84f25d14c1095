from __future__ import annotations

import json
from pathlib import Path

import pytest
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

from textsynth.errors import DataError
from textsynth.sources import load_labeled

ROWS = [{"text": "turn on the lamp", "label": "on"}, {"text": "lights off", "label": "off"}]


def _dataset(rows: list[dict]) -> Dataset:
    features = Features({"text": Value("string"), "label": ClassLabel(names=["off", "on"])})
    return Dataset.from_dict({"text": [r["text"] for r in rows],
                              "label": [["off", "on"].index(r["label"]) for r in rows]},
                             features=features)


def test_jsonl_json_csv_tsv_and_parquet(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text("".join(json.dumps(r) + "\n\n" for r in ROWS))
    (tmp_path / "a.json").write_text(json.dumps(ROWS))
    (tmp_path / "a.csv").write_text("text,label\nturn on the lamp,on\n\"lights, off\",off\n")
    (tmp_path / "a.tsv").write_text("utterance\tintent\nturn on the lamp\ton\n")
    _dataset(ROWS).to_parquet(str(tmp_path / "a.parquet"))
    for name in ("a.jsonl", "a.json", "a.csv", "a.parquet"):
        data = load_labeled(tmp_path / name)
        assert data.labels == ["on", "off"], name
        assert data.texts[0] == "turn on the lamp"
    assert load_labeled(tmp_path / "a.csv").texts[1] == "lights, off"
    tsv = load_labeled(tmp_path / "a.tsv")
    assert tsv.rows[0]["text"] == "turn on the lamp" and tsv.labels == ["on"]


def test_saved_dataset_folders_give_label_names(tmp_path: Path) -> None:
    _dataset(ROWS).save_to_disk(str(tmp_path / "single"))
    DatasetDict({"train": _dataset(ROWS), "test": _dataset(ROWS[:1])}).save_to_disk(
        str(tmp_path / "multi"))
    single = load_labeled(tmp_path / "single")
    assert single.labels == ["on", "off"] and single.label_names == ["off", "on"]
    multi = load_labeled(tmp_path / "multi")
    assert len(multi) == 3 and {r["split"] for r in multi.rows} == {"train", "test"}
    assert [r["row_id"] for r in multi.rows if r["split"] == "test"] == ["test:0"]
    only = load_labeled(tmp_path / "multi", split="test")
    assert only.texts == ["turn on the lamp"]
    with pytest.raises(DataError, match="no split 'dev'"):
        load_labeled(tmp_path / "multi", split="dev")


def test_output_folder_prefers_dataset_then_parquet_then_jsonl(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "data").mkdir(parents=True)
    _dataset(ROWS).to_parquet(str(out / "data" / "train-00000-of-00001.parquet"))
    (out / "train.jsonl").write_text(json.dumps({"text": "other", "label": "on"}) + "\n")
    # rejected candidates (export.save_rejects) sit beside the data but are not data
    (out / "rejected.jsonl").write_text(json.dumps({"text": "junk", "label": "on"}) + "\n")
    _dataset(ROWS[:1]).to_parquet(str(out / "data" / "rejected-00000-of-00001.parquet"))
    data = load_labeled(out)
    assert data.labels == ["on", "off"] and {r["split"] for r in data.rows} == {"train"}
    (out / "data" / "train-00000-of-00001.parquet").unlink()
    (out / "data" / "rejected-00000-of-00001.parquet").unlink()
    assert load_labeled(out).texts == ["other"]


def test_rows_without_text_or_label_are_counted(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [
        *ROWS, {"text": "", "label": "on"}, {"text": "no label"}, {"text": "x", "label": None}]))
    data = load_labeled(path)
    assert len(data) == 2 and data.skipped == 3


@pytest.mark.parametrize(("content", "name", "message"), [
    ('{"text": "a", "label": "b"}\n[1, 2]\n', "a.jsonl", "line 2 is not a JSON object"),
    ('{"text": "a", "label": "b"}\n{oops\n', "a.jsonl", "line 2 is not valid JSON"),
    ('{"prompt": "a", "label": "b"}\n', "a.jsonl", "no text column"),
    ("text,intent_id\nhi,1\n", "a.csv", "no label column"),
    ("", "a.jsonl", "no rows with a text and a label"),
    ("text\tlabel\n", "a.xlsx", "unknown file type"),
])
def test_bad_inputs(tmp_path: Path, content: str, name: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DataError, match=message) as info:
        load_labeled(path)
    assert str(path) in str(info.value)


def test_explicit_columns_and_missing_paths(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps({"q": "hello", "y": "greet", "text": "ignored"}) + "\n")
    data = load_labeled(path, text_column="q", label_column="y")
    assert data.texts == ["hello"] and data.labels == ["greet"]
    with pytest.raises(DataError, match="no column 'z'"):
        load_labeled(path, text_column="z")
    with pytest.raises(DataError, match="no such file or folder"):
        load_labeled(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="not a dataset folder"):
        load_labeled(tmp_path / "empty")

