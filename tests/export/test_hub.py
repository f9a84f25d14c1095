from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from datasets import load_dataset
from hub_server import TOKEN, FakeHub
from slots_fixtures import run_slots

from textsynth.result import RunResult

REPO = "tester/smart-home"


def _env(tmp_path: Path, endpoint: str, token: str | None = TOKEN) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HF_", "HUGGING_FACE")) and k != "HUGGINGFACE_HUB_CACHE"}
    home = tmp_path / "hf-home"  # no saved login here
    home.mkdir(exist_ok=True)
    env.update(HF_ENDPOINT=endpoint, HF_HOME=str(home), HF_HUB_DISABLE_XET="1",
               HF_HUB_DISABLE_TELEMETRY="1", PYTHONPATH=str(Path(__file__).parents[2]))
    if token is not None:
        env["HF_TOKEN"] = token
    return env


def _push(tmp_path: Path, out: Path, endpoint: str, *args: str, token: str | None = TOKEN
          ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "textsynth", "push", str(out), *args],
                          capture_output=True, text=True, timeout=120,
                          env=_env(tmp_path, endpoint, token))


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_push_uploads_parquet_and_card_loadable_as_a_dataset(
        slots_run: RunResult, tmp_path: Path) -> None:
    out = slots_run.out_dir
    before = _snapshot(out)
    with FakeHub() as hub:
        proc = _push(tmp_path, out, hub.endpoint, REPO, "--message", "first upload")
        assert proc.returncode == 0, proc.stderr
        assert f"{hub.endpoint}/datasets/{REPO}" in proc.stdout
        files = hub.repos[REPO]
        assert sorted(files) == ["README.md", "data/test-00000-of-00001.parquet",
                                 "data/train-00000-of-00001.parquet",
                                 "data/validation-00000-of-00001.parquet"]
        assert files["README.md"] == (out / "README.md").read_bytes()
        header = hub.commits[0]["items"][0]["value"]
        assert header["summary"] == "first upload"
        # Parquet went through LFS, the card inline, as on the real Hub
        kinds = {i["value"]["path"]: i["key"] for i in hub.commits[0]["items"][1:]}
        assert kinds["README.md"] == "file" and kinds["data/train-00000-of-00001.parquet"] == \
            "lfsFile"
        clone = hub.materialize(REPO, tmp_path / "clone")
    pushed = load_dataset(str(clone))
    assert pushed["train"].features == slots_run.dataset["train"].features
    assert {k: v["text"] for k, v in pushed.items()} == \
        {k: v["text"] for k, v in slots_run.dataset.items()}
    assert _snapshot(out) == before
    assert not any(TOKEN in p.read_text(errors="ignore") for p in out.rglob("*") if p.is_file())


def test_repush_removes_stale_shards_and_revision_makes_a_branch(
        slots_recipe_dict: dict, tmp_path: Path) -> None:
    slots_recipe_dict["export"]["rows_per_shard"] = 5
    out = run_slots(slots_recipe_dict).out_dir
    with FakeHub() as hub:
        assert _push(tmp_path, out, hub.endpoint, REPO).returncode == 0
        assert "data/train-00002-of-00003.parquet" in hub.repos[REPO]
        slots_recipe_dict["export"]["rows_per_shard"] = 100
        run_slots(slots_recipe_dict)
        proc = _push(tmp_path, out, hub.endpoint, REPO, "--revision", "v2")
        assert proc.returncode == 0, proc.stderr
        assert "removed 3 old shards" in proc.stdout
        assert hub.commits[-1]["revision"] == "v2" and "v2" in hub.branches[REPO]
        assert sorted(p for p in hub.repos[REPO] if p.startswith("data/train")) == [
            "data/train-00000-of-00001.parquet"]


def test_repo_id_defaults_to_the_recipe_hub_setting(slots_recipe_dict: dict,
                                                    tmp_path: Path) -> None:
    slots_recipe_dict["export"]["hub"] = {"repo_id": "tester/from-recipe"}
    slots_recipe_dict["per_label"] = 2
    recipe_path = tmp_path / "recipe.yaml"
    # one answer for both labels: it names a value of every slot type either label uses
    slots_recipe_dict["backend"] = {"type": "fake", "options": {"responses": [
        '{"text": "could you switch the lamp in the kitchen on for Queen {seed}", '
        '"intent": "{label}", "entities": {"room": "kitchen", "artist": "Queen"}}']}}
    recipe_path.write_text(yaml.safe_dump(slots_recipe_dict))
    out = Path(slots_recipe_dict["export"]["dir"])
    with FakeHub() as hub:
        env = _env(tmp_path, hub.endpoint)
        proc = subprocess.run([sys.executable, "-m", "textsynth", "run", str(recipe_path), "-q"],
                              capture_output=True, text=True, timeout=120, env=env)
        assert proc.returncode == 0, proc.stderr
        assert "pushed to" in proc.stdout
        assert "README.md" in hub.repos["tester/from-recipe"]
        del hub.repos["tester/from-recipe"]
        assert _push(tmp_path, out, hub.endpoint).returncode == 0
        assert "README.md" in hub.repos["tester/from-recipe"]


def test_token_from_the_standard_login_file(slots_run: RunResult, tmp_path: Path) -> None:
    home = tmp_path / "hf-home"
    home.mkdir()
    (home / "token").write_text(TOKEN)  # where 'hf auth login' keeps it under HF_HOME
    with FakeHub() as hub:
        proc = _push(tmp_path, slots_run.out_dir, hub.endpoint, REPO, token=None)
        assert proc.returncode == 0, proc.stderr
        assert "README.md" in hub.repos[REPO]


def _fails(proc: subprocess.CompletedProcess[str], message: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
    assert "Traceback" not in proc.stderr and TOKEN not in proc.stderr


def test_missing_token_is_a_clear_error_before_any_request(slots_run: RunResult,
                                                           tmp_path: Path) -> None:
    before = _snapshot(slots_run.out_dir)
    with FakeHub() as hub:
        proc = _push(tmp_path, slots_run.out_dir, hub.endpoint, REPO, token=None)
        assert hub.calls == []
    _fails(proc, "no Hugging Face token")
    assert _snapshot(slots_run.out_dir) == before


@pytest.mark.parametrize(("mode", "token", "message"), [
    ("ok", "hf_wrong_token_0000000000", "the Hub refused the token (401 Unauthorized)"),
    ("unauthorized", TOKEN, "the Hub refused the token (401 Unauthorized)"),
    ("forbidden", TOKEN, f"no write permission for dataset repo {REPO} (403 Forbidden)"),
    ("readonly", TOKEN, f"no write permission for dataset repo {REPO} (403 Forbidden)"),
])
def test_refused_pushes_are_one_line_and_leave_the_folder_alone(
        slots_run: RunResult, tmp_path: Path, mode: str, token: str, message: str) -> None:
    before = _snapshot(slots_run.out_dir)
    with FakeHub(mode) as hub:
        if mode == "readonly":
            hub.repos[REPO], hub.branches[REPO] = {}, {"main"}
        proc = _push(tmp_path, slots_run.out_dir, hub.endpoint, REPO, token=token)
        assert not hub.repos.get(REPO)
    _fails(proc, message)
    assert token not in proc.stderr
    assert _snapshot(slots_run.out_dir) == before


def test_unreachable_hub_is_a_network_error(slots_run: RunResult, tmp_path: Path) -> None:
    before = _snapshot(slots_run.out_dir)
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    proc = _push(tmp_path, slots_run.out_dir, endpoint, REPO)
    _fails(proc, f"cannot reach the Hub at {endpoint}")
    assert _snapshot(slots_run.out_dir) == before


def test_folder_without_parquet_or_repo_id(slots_recipe_dict: dict, tmp_path: Path) -> None:
    slots_recipe_dict["export"]["formats"] = ["jsonl"]
    out = run_slots(slots_recipe_dict).out_dir
    _fails(_push(tmp_path, out, "http://127.0.0.1:9", REPO), "has no Parquet files under data/")
    proc = _push(tmp_path, out, "http://127.0.0.1:9")
    assert proc.returncode != 0 and "give REPO_ID" in proc.stderr
    _fails(_push(tmp_path, tmp_path / "nowhere", "http://127.0.0.1:9", REPO), "is not a folder")
    _fails(_push(tmp_path, out, "http://127.0.0.1:9", "not a/valid/id"), "not a valid repo id")


@pytest.mark.parametrize(("repo_id", "why"), [
    ("bad name!", r"must use alphanumeric chars"),
    ("a/b/c", r"in the form 'repo_name' or 'namespace/repo_name': 'a/b/c'\.$"),
])
def test_a_recipe_with_a_repo_id_the_hub_refuses_stops_before_the_run(
        recipe_dict: dict, repo_id: str, why: str) -> None:
    """Before: the run paid for every row, exported, and only the push said so."""
    from textsynth.errors import RecipeError
    from textsynth.recipe import load_recipe

    recipe_dict["export"]["hub"] = {"repo_id": repo_id}
    with pytest.raises(RecipeError, match=rf"export\.hub\.repo_id: '{repo_id}' is not a repo "
                                          rf"id \('name' or 'namespace/name'\): .*{why}"):
        load_recipe(recipe_dict)
    recipe_dict["export"]["hub"] = {"repo_id": "my-org/smart_home.v2"}
    assert load_recipe(recipe_dict).export.hub is not None


def test_a_stored_repo_id_the_hub_refuses_is_one_line_and_a_named_repo_replaces_it(
        slots_run: RunResult, tmp_path: Path) -> None:
    """A run stored before repo ids were checked may hold one the Hub refuses."""
    import shutil

    from textsynth.store import Store

    out = tmp_path / "old-run"
    shutil.copytree(slots_run.out_dir, out, ignore=shutil.ignore_patterns("*.lock"))
    store = Store(out / "textsynth.db")
    recipe = store.get_meta("recipe")
    recipe["export"]["hub"] = {"repo_id": "bad name!"}
    with store.transaction():
        store.set_meta("recipe", recipe)
    store.close()
    with FakeHub() as hub:
        _fails(_push(tmp_path, out, hub.endpoint), "the run's export.hub is not valid")
        assert _push(tmp_path, out, hub.endpoint, REPO).returncode == 0
        assert "README.md" in hub.repos[REPO]
