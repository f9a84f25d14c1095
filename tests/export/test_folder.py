"""The output folder: export writes only where it owns, and replaces only what it wrote."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from textsynth import ExportError, FakeBackend, RecipeError, load_recipe
from textsynth.export.dataset import DatasetLayout, export_dataset
from textsynth.export.folder import MANIFEST, staging_folder
from textsynth.pipeline import run_recipe
from textsynth.store import Store

FAKE_LINES = "\n".join(f"{i}. please switch {{label}} item {i} code {{seed}}" for i in range(1, 4))


@pytest.fixture
def recipe(tmp_path: Path) -> dict[str, Any]:
    return {
        "name": "folder-test",
        "labels": {"turn_on": "Switch something on", "turn_off": "Switch something off"},
        "per_label": 6,
        "backend": {"type": "fake", "options": {"responses": [FAKE_LINES]}},
        "export": {"dir": str(tmp_path / "work" / "out"), "formats": ["jsonl"]},
        "quality": {"language_id": False, "near_duplicates": False, "novelty": False,
                    "semantic": False, "classifier": False},
    }


def _run(recipe: dict[str, Any], overwrite: bool = False) -> Any:
    return run_recipe(load_recipe(recipe), backend=FakeBackend(responses=[FAKE_LINES]),
                      overwrite=overwrite)


def _cli(recipe: dict[str, Any], folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return subprocess.run([sys.executable, "-m", "textsynth", "run", str(path), "--quiet",
                           *args], capture_output=True, text=True, timeout=120)


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


# -- names that become paths --------------------------------------------------------------
@pytest.mark.parametrize("splits", [
    {"../../x": 0.5, "train": 0.5},
    {"/tmp/escape": 1.0},
    {"train/../../x": 1.0},
    {"a\\b": 1.0},
    {".": 1.0},
    {"..": 1.0},
    {"": 1.0},
    {".hidden": 1.0},
    {"rejected": 1.0},  # the rejected rows' own files
    {"nul": 1.0},
    {"Train": 0.5, "train": 0.5},
])
def test_a_split_name_that_is_not_a_plain_file_name_is_a_recipe_error(
        recipe: dict[str, Any], splits: dict[str, float]) -> None:
    recipe["export"]["splits"] = splits
    with pytest.raises(RecipeError, match=r"export\.splits: split name"):
        load_recipe(recipe)


def test_a_split_escaping_the_folder_writes_nothing_anywhere(recipe: dict[str, Any],
                                                             tmp_path: Path) -> None:
    victim = tmp_path / "x.jsonl"
    victim.write_text("precious\n")
    recipe["export"]["splits"] = {"../../x": 0.5, "train": 0.5}
    proc = _cli(recipe, tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "split name '../../x' is not allowed" in " ".join(proc.stderr.split())
    assert victim.read_text() == "precious\n"
    assert not (tmp_path / "work").exists()


def test_dotted_split_names_still_work(recipe: dict[str, Any]) -> None:
    recipe["export"]["splits"] = {"train": 0.5, "test.hard": 0.5}
    outcome = _run(recipe)
    assert (outcome.out_dir / "test.hard.jsonl").is_file()


# -- never delete what textsynth did not write ----------------------------------------------
def test_the_users_files_next_to_an_output_survive_a_rerun(recipe: dict[str, Any]) -> None:
    out = _run(recipe).out_dir
    mine = {"data/mine.parquet": b"not ours", "dataset/notes.txt": b"my notes",
            "rasa/domain.yml": b"intents: []", "rejected.jsonl": b"{}", "notes.md": b"hi"}
    for rel, data in mine.items():
        (out / rel).parent.mkdir(exist_ok=True)
        (out / rel).write_bytes(data)
    recipe["per_label"] = 9
    assert len(_run(recipe).dataset["train"]) > 0
    assert all((out / rel).read_bytes() == data for rel, data in mine.items())


def test_dropping_a_format_removes_only_its_files(recipe: dict[str, Any]) -> None:
    recipe["export"]["formats"] = ["jsonl", "parquet", "rasa"]
    out = _run(recipe).out_dir
    ours = sorted(p.name for p in (out / "data").iterdir())
    assert ours and all(name.endswith(".parquet") for name in ours)
    (out / "rasa" / "domain.yml").write_text("mine")
    recipe["export"]["formats"] = ["jsonl", "parquet"]
    _run(recipe)
    assert (out / "rasa" / "domain.yml").read_text() == "mine"
    assert not (out / "rasa" / "nlu.yml").exists()
    recipe["export"]["formats"] = ["jsonl"]
    _run(recipe)
    assert not (out / "data").exists()  # it held only what textsynth wrote
    listed = set(json.loads((out / MANIFEST).read_text())["files"])
    assert {"README.md", "train.jsonl"} <= listed <= {
        "README.md", "train.jsonl", "validation.jsonl", "test.jsonl"}


def test_a_non_empty_folder_that_is_no_output_is_refused(recipe: dict[str, Any],
                                                        tmp_path: Path) -> None:
    out = tmp_path / "work" / "out"
    out.mkdir(parents=True)
    (out / "README.md").write_text("my project")
    (out / "train.jsonl").write_text("my data\n")
    before = _tree(out)
    proc = _cli(recipe, tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    message = " ".join(proc.stderr.split())
    assert "is not empty and is not a textsynth output folder" in message
    assert "--overwrite" in message
    assert _tree(out) == before  # not even a run store was made

    proc = _cli(recipe, tmp_path, "--overwrite")
    assert proc.returncode == 0, proc.stderr
    assert (out / "README.md").read_text().startswith("---")  # the card replaced it
    assert (out / "train.jsonl").read_text() != "my data\n"


def test_a_users_file_in_a_folder_textsynth_writes_is_refused(recipe: dict[str, Any]) -> None:
    recipe["export"]["formats"] = ["jsonl", "parquet"]
    out = _run(recipe).out_dir
    (out / "data" / "mine.txt").write_text("mine")
    with pytest.raises(ExportError, match=r"data was not written by textsynth .*--overwrite"):
        _run(recipe)
    assert (out / "data" / "mine.txt").read_text() == "mine"
    _run(recipe, overwrite=True)
    assert not (out / "data" / "mine.txt").exists()


def test_export_refuses_a_users_readme_even_when_called_directly(recipe: dict[str, Any]) -> None:
    outcome = _run(recipe)
    out = outcome.out_dir
    (out / MANIFEST).write_text(json.dumps({"files": ["train.jsonl", "validation.jsonl",
                                                      "test.jsonl"]}))
    (out / "README.md").write_text("mine")
    with Store.in_dir(out) as store, pytest.raises(ExportError, match=r"README\.md was not"):
        export_dataset(DatasetLayout.of(load_recipe(recipe)), store, out)
    assert (out / "README.md").read_text() == "mine"


@pytest.mark.parametrize("entry", ["../outside.txt", "/tmp/outside.txt", "link/x.txt"])
def test_a_manifest_cannot_point_outside_the_folder(recipe: dict[str, Any], tmp_path: Path,
                                                    entry: str) -> None:
    out = _run(recipe).out_dir
    outside = tmp_path / "work" / "outside.txt"
    outside.write_text("keep")
    (out / "link").symlink_to(tmp_path / "work")
    (tmp_path / "work" / "x.txt").write_text("keep")
    manifest = json.loads((out / MANIFEST).read_text())
    (out / MANIFEST).write_text(json.dumps({"files": [*manifest["files"], entry]}))
    if entry.startswith("link/"):
        _run(recipe)  # a stale entry behind a link is not followed
    else:
        with pytest.raises(ExportError, match="not a list of files textsynth wrote"):
            _run(recipe)
    assert outside.read_text() == "keep" and (tmp_path / "work" / "x.txt").read_text() == "keep"


# -- one export per process ------------------------------------------------------------------
def test_staging_folders_are_per_process_and_dead_ones_are_cleared(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    old = tmp_path / f".textsynth-export-{dead.stdout.strip()}-abc"
    live = tmp_path / f".textsynth-export-{os.getppid()}-abc"  # another process, alive
    old.mkdir()
    live.mkdir()
    first, second = staging_folder(tmp_path), staging_folder(tmp_path)
    assert first != second and first.name.startswith(f".textsynth-export-{os.getpid()}-")
    assert not old.exists() and live.exists()


def test_translate_refuses_a_foreign_folder_unless_overwrite(tmp_path: Path) -> None:
    from textsynth.augment import translate

    source = tmp_path / "source.jsonl"
    source.write_text(json.dumps({"text": "turn on the light", "label": "on"}) + "\n")
    out = tmp_path / "mine"
    out.mkdir()
    (out / "train.jsonl").write_text("my rows\n")
    fake = FakeBackend(responses=["German: mach das Licht an"])
    with pytest.raises(ExportError, match="not a textsynth output folder"):
        translate(source, ["de"], out, backend=fake, quality={"language_id": False})
    assert _tree(out) == {"train.jsonl": b"my rows\n"} and not fake.requests
    outcome = translate(source, ["de"], out, backend=fake, quality={"language_id": False},
                        overwrite=True)
    assert outcome.accepted == 1
    assert (out / "train.jsonl").read_text() != "my rows\n"


def test_an_output_of_an_earlier_version_is_still_owned(recipe: dict[str, Any]) -> None:
    recipe["export"]["formats"] = ["jsonl", "parquet"]
    out = _run(recipe).out_dir
    (out / MANIFEST).unlink()  # earlier versions kept only the store's record of the export
    (out / "notes.md").write_text("mine")
    _run(recipe)
    assert (out / "notes.md").read_text() == "mine"
    assert "data/" in (out / MANIFEST).read_text()
    (out / MANIFEST).unlink()
    with sqlite3.connect(out / "textsynth.db") as db:  # no record of an export: nothing is ours
        db.execute("DELETE FROM meta WHERE key = 'export'")
    db.close()
    with pytest.raises(ExportError, match=r"README\.md was not written by textsynth"):
        _run(recipe)


@pytest.mark.parametrize("inside", ["dataset/inner", "data/inner"])
def test_a_run_inside_another_runs_export_is_refused(recipe: dict[str, Any],
                                                     inside: str) -> None:
    """Its folder would be replaced by the outer run's next export, store and all."""
    out = _run(recipe).out_dir
    inner = dict(recipe, export={"dir": str(out / inside), "formats": ["jsonl"]})
    with pytest.raises(ExportError, match=r"which the run in .* exports and would replace"):
        _run(inner)
    assert not (out / inside).exists()
    beside = dict(recipe, export={"dir": str(out / "experiments" / "b"), "formats": ["jsonl"]})
    assert len(_run(beside).dataset["train"]) > 0  # elsewhere in the folder: allowed


def test_an_export_never_deletes_another_runs_store(recipe: dict[str, Any]) -> None:
    """A run folder moved into the export's dataset/ (as an earlier version allowed) stops
    the export, even with overwrite, before anything is replaced."""
    recipe["export"]["formats"] = ["jsonl", "arrow"]  # a dataset/ folder
    out = _run(recipe).out_dir
    other = _run(dict(recipe, export={"dir": str(out.parent / "other"),
                                      "formats": ["jsonl"]})).out_dir
    os.replace(other, out / "dataset" / "other")
    with pytest.raises(ExportError, match="holds another run's store"):
        _run(dict(recipe, per_label=9), overwrite=True)
    assert (out / "dataset" / "other" / "textsynth.db").is_file()


def test_a_run_into_another_recipes_output_is_refused(recipe: dict[str, Any],
                                                      tmp_path: Path) -> None:
    """It would share that run's store and replace its dataset: one line, nothing
    written, unless --overwrite; the same recipe resumes there as before."""
    out = tmp_path / "work" / "out"
    assert _cli(recipe, tmp_path).returncode == 0
    before = _tree(out)
    other = dict(recipe, name="other-recipe", per_label=4)
    proc = _cli(other, tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    message = " ".join(proc.stderr.split())
    assert f"{out} holds the run of recipe 'folder-test'" in message
    assert "'other-recipe'" in message and "--overwrite" in message
    assert len(proc.stderr.strip().splitlines()) <= 3  # one message, wrapped by the terminal
    assert _tree(out) == before  # its dataset, card and store untouched

    assert _cli(recipe, tmp_path).returncode == 0  # the same recipe: a resume, as before
    assert _tree(out)["train.jsonl"] == before["train.jsonl"]

    proc = _cli(other, tmp_path, "--overwrite")
    assert proc.returncode == 0, proc.stderr
    assert "other-recipe" in (out / "README.md").read_text()
