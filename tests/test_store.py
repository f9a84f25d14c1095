from __future__ import annotations

import asyncio
import json
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from textsynth import FakeBackend, StoreError, load_recipe
from textsynth.pipeline import generate
from textsynth.store import STORE_NAME, Store

FAKE_LINES = "\n".join(f"{i}. please switch {{label}} item {i} code {{seed}}" for i in range(1, 4))

# a process that holds the store of a folder until its stdin closes
HOLDER = """
import sys
from textsynth.store import Store
store = Store.in_dir(sys.argv[1])
print("ready", flush=True)
sys.stdin.read()
"""

# a run whose files may not grow past argv[1] bytes: a disk that fills up
FULL_DISK = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
from textsynth.cli import main
main(["run", sys.argv[2], "--quiet"])
"""


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "textsynth", *args], capture_output=True,
                          text=True, timeout=timeout)


def _recipe(write_recipe, recipe_dict: dict, **options) -> Path:
    recipe_dict["backend"] = {"type": "fake", "options": {"responses": [FAKE_LINES], **options}}
    recipe_dict["export"]["formats"] = ["jsonl"]
    return write_recipe(recipe_dict)


def _one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return " ".join(proc.stderr.split())  # rich wraps long lines


def _rows(out: Path) -> list[dict]:
    return sorted((json.loads(line) for split in ("train", "validation", "test")
                   if (out / f"{split}.jsonl").exists()
                   for line in (out / f"{split}.jsonl").read_text().splitlines()),
                  key=lambda r: r["request_id"] + r["text"])


# -- one run per output folder ----------------------------------------------------------
@pytest.fixture
def holder(tmp_path: Path):
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / "out")],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def test_a_second_run_on_a_held_folder_names_the_holder_and_exits_2(
        write_recipe, recipe_dict: dict, tmp_path: Path, holder: subprocess.Popen) -> None:
    proc = _cli("run", str(_recipe(write_recipe, recipe_dict)), "--quiet")
    message = _one_line_error(proc)
    assert "in use by another textsynth run" in message
    assert f"pid {holder.pid} on {socket.gethostname()}, started 20" in message
    with pytest.raises(StoreError, match=f"pid {holder.pid}"):  # and from Python too
        Store.in_dir(tmp_path / "out")
    assert not (tmp_path / "out" / "train.jsonl").exists()


def test_a_lock_left_by_a_killed_run_is_taken_over(write_recipe, recipe_dict: dict,
                                                   tmp_path: Path,
                                                   holder: subprocess.Popen) -> None:
    holder.kill()
    holder.wait()
    lock = tmp_path / "out" / f"{STORE_NAME}.lock"
    assert json.loads(lock.read_text())["pid"] == holder.pid  # the dead run's lock is still there
    proc = _cli("run", str(_recipe(write_recipe, recipe_dict)), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert len(_rows(tmp_path / "out")) == 12


def test_one_process_may_open_its_store_twice(tmp_path: Path) -> None:
    with Store.in_dir(tmp_path) as first, Store.in_dir(tmp_path) as second:
        first.set_meta("k", 1)
        assert second.get_meta("k") == 1
    with Store.in_dir(tmp_path) as again:  # the lock went with the last one closed
        assert again.get_meta("k") == 1


# -- errors in the write path end the run -----------------------------------------------
@pytest.mark.skipif(sys.platform == "win32", reason="needs RLIMIT_FSIZE")
@pytest.mark.parametrize("limit", [60_000, 150_000, 300_000])
def test_a_full_disk_ends_the_run_and_a_rerun_resumes_with_nothing_lost(
        write_recipe, recipe_dict: dict, tmp_path: Path, limit: int) -> None:
    recipe_dict["per_label"] = 60
    recipe = _recipe(write_recipe, recipe_dict, batch_size=2, latency=0.005)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-c", FULL_DISK, str(limit), str(recipe)],
                          capture_output=True, text=True, timeout=120)
    message = _one_line_error(proc)  # today: the run idles for ever (or a traceback)
    assert f"the run store {out / STORE_NAME}" in message
    assert "disk I/O error" in message and "run the same command again to resume" in message
    with sqlite3.connect(out / STORE_NAME) as db:  # consistent, and it kept what it stored
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        kept = {row[0] for row in db.execute("SELECT key FROM completions")}
    db.close()

    again = _cli("run", str(recipe), "--quiet")
    assert again.returncode == 0, again.stderr
    with sqlite3.connect(out / STORE_NAME) as db:
        assert kept <= {row[0] for row in db.execute("SELECT key FROM completions")}
    db.close()
    clean = _cli("run", str(recipe), "--quiet", "--out", str(tmp_path / "clean"))
    assert clean.returncode == 0, clean.stderr
    assert _rows(out) == _rows(tmp_path / "clean") and len(_rows(out)) == 120


def test_a_failed_completion_write_ends_the_run(recipe_dict: dict, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    recipe_dict["export"]["formats"] = ["jsonl"]
    recipe_dict["per_label"] = 30  # 20 requests
    recipe = load_recipe(recipe_dict)
    real = Store.put_completion
    calls = {"n": 0}

    def full(self: Store, *args, **kwargs) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise self.error("write", sqlite3.OperationalError("database or disk is full"))
        real(self, *args, **kwargs)

    monkeypatch.setattr(Store, "put_completion", full)
    fake = FakeBackend({"batch_size": 1, "latency": 0.01}, responses=[FAKE_LINES])
    with pytest.raises(StoreError, match=r"cannot write the run store .*: database or disk is"):
        asyncio.run(asyncio.wait_for(generate(recipe, backend=fake), 60))  # today: hangs
    assert len(fake.requests) <= 5  # nothing more was sent once the store failed
    with Store.in_dir(tmp_path / "out") as store:
        # the failed group (the third answer and any that arrived with it) was rolled
        # back; what was committed before it stays
        assert 1 <= store.completion_count() <= 2


# -- a store deleted or replaced while its run goes on -----------------------------------------
def _deleting_backend(out: Path, after: int, replace_with: bytes | None = None) -> FakeBackend:
    """A fake backend whose ``after``-th call deletes the output folder (``rm -r out``),
    or puts ``replace_with`` where the store was."""
    import shutil

    from textsynth.backends.base import Request

    calls = {"n": 0}

    def answer(request: Request) -> str:
        calls["n"] += 1
        if calls["n"] == after:
            if replace_with is None:
                shutil.rmtree(out)
            else:
                (out / STORE_NAME).unlink()
                (out / STORE_NAME).write_bytes(replace_with)
        label = str(request.metadata["slot"]).split("/")[0]
        return FAKE_LINES.replace("{label}", label).replace("{seed}", f"s{request.seed}")

    return FakeBackend({"batch_size": 1, "latency": 0.005}, handler=answer)


def test_a_store_deleted_during_its_run_is_written_back_and_nothing_is_paid_twice(
        recipe_dict: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    from textsynth import store as store_module

    monkeypatch.setattr(store_module, "_WATCH_SECONDS", 0.0, raising=False)
    recipe_dict["export"]["formats"] = ["jsonl"]
    recipe_dict["per_label"] = 30
    recipe = load_recipe(recipe_dict)
    out = tmp_path / "out"
    fake = _deleting_backend(out, after=8)
    result = asyncio.run(asyncio.wait_for(generate(recipe, backend=fake), 60))
    assert result.accepted == 60
    assert "was deleted while the run went on; it was written back" in caplog.text
    with sqlite3.connect(out / STORE_NAME) as db:  # before: the folder was gone after exit 0
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        stored = db.execute("SELECT COUNT(*) FROM completions").fetchone()[0]
    db.close()
    assert stored == len(fake.requests)  # every answer paid for, the early ones included
    again = FakeBackend({"batch_size": 1}, responses=[FAKE_LINES])
    rerun = asyncio.run(asyncio.wait_for(generate(recipe, backend=again), 60))
    assert again.requests == [] and rerun.accepted == 60  # before: all sent again
    assert _rows(out) and len(_rows(out)) == 60


def test_a_written_back_store_is_locked_again(tmp_path: Path) -> None:
    import shutil

    out = tmp_path / "out"
    with Store.in_dir(out) as store:
        store.set_meta("k", 1)
        shutil.rmtree(out)  # the lock file goes too: another run could take the folder
        store.watch(now=True)
        opener = subprocess.run(
            [sys.executable, "-c", "import sys\nfrom textsynth.store import Store\n"
             "Store.in_dir(sys.argv[1])", str(out)], capture_output=True, text=True, timeout=60)
        assert "is in use by another textsynth run" in opener.stderr
        assert store.get_meta("k") == 1
    with Store.in_dir(out) as again:
        assert again.get_meta("k") == 1


def test_a_store_replaced_during_its_run_is_left_alone_and_the_answers_saved_aside(
        recipe_dict: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from textsynth import store as store_module

    monkeypatch.setattr(store_module, "_WATCH_SECONDS", 0.0, raising=False)
    recipe_dict["per_label"] = 30
    recipe = load_recipe(recipe_dict)
    out = tmp_path / "out"
    fake = _deleting_backend(out, after=8, replace_with=b"someone else's file")
    with pytest.raises(StoreError, match=r"was replaced by another file while the run went on; "
                                         r"it is left as it is, and this run's answers are "
                                         r"saved in .*textsynth\.db\.saved-"):
        asyncio.run(asyncio.wait_for(generate(recipe, backend=fake), 60))
    assert (out / STORE_NAME).read_bytes() == b"someone else's file"
    (aside,) = out.glob(f"{STORE_NAME}.saved-*")
    with sqlite3.connect(aside) as db:
        saved = db.execute("SELECT COUNT(*) FROM completions").fetchone()[0]
    db.close()
    assert saved >= 7
    aside.replace(out / STORE_NAME)  # as the message says: the next run resumes from it
    again = FakeBackend({"batch_size": 1}, responses=[FAKE_LINES])
    assert asyncio.run(generate(recipe, backend=again)).accepted == 60
    def jobs(backend: FakeBackend) -> set[tuple[str, int]]:
        return {(r.metadata["slot"], r.metadata["index"]) for r in backend.requests}

    assert not jobs(again) & jobs(fake)  # nothing saved aside is paid for again


# -- a store that is not one ----------------------------------------------------------------
def _garbage_pages(db: Path) -> None:
    data = bytearray(db.read_bytes())
    data[4096:] = b"\x5a" * (len(data) - 4096)  # every page after the header page
    db.write_bytes(bytes(data))


def test_a_damaged_store_is_one_line(write_recipe, recipe_dict: dict, tmp_path: Path) -> None:
    recipe = _recipe(write_recipe, recipe_dict)
    assert _cli("run", str(recipe), "--quiet").returncode == 0
    _garbage_pages(tmp_path / "out" / STORE_NAME)
    message = _one_line_error(_cli("run", str(recipe), "--quiet"))
    assert "damaged" in message or "not a textsynth run store" in message


@pytest.mark.parametrize("content", [b"", b"hello, this is not a database" * 100])
def test_an_empty_or_foreign_file_is_not_taken_for_a_new_run(
        write_recipe, recipe_dict: dict, tmp_path: Path, content: bytes) -> None:
    db = tmp_path / "out" / STORE_NAME
    db.parent.mkdir()
    db.write_bytes(content)
    message = _one_line_error(_cli("run", str(_recipe(write_recipe, recipe_dict)), "--quiet"))
    assert ("empty (0 bytes): it was truncated" in message if not content
            else "not a textsynth run store" in message)
    assert db.read_bytes() == content  # left as it was for the user to look at
    assert not (tmp_path / "out" / "train.jsonl").exists()


def test_another_applications_database_is_refused_and_left_alone(
        write_recipe, recipe_dict: dict, tmp_path: Path) -> None:
    db = tmp_path / "out" / STORE_NAME
    db.parent.mkdir()
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE meta (id INTEGER, note TEXT)")
        con.execute("CREATE TABLE users (name TEXT)")
    con.close()
    before = db.read_bytes()
    message = _one_line_error(_cli("run", str(_recipe(write_recipe, recipe_dict)), "--quiet"))
    assert "an SQLite database of another application (its tables are meta, users)" in message
    assert db.read_bytes() == before


def test_a_store_without_the_application_id_is_still_opened(tmp_path: Path) -> None:
    with Store.in_dir(tmp_path) as store:
        store.set_meta("k", "v")
        store._db.execute("PRAGMA application_id = 0")  # as written before the id was set
    with Store.in_dir(tmp_path) as store:
        assert store.get_meta("k") == "v"


def test_only_the_store_touches_sqlite() -> None:
    """The store hides its connection: no other module opens the database itself
    (``_store_file.py`` is the store's own: its tables, error hints and ``peek_meta``)."""
    import ast

    package = Path(__file__).resolve().parent.parent / "textsynth"
    users = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            if any(name.split(".")[0] == "sqlite3" for name in names):
                users.append(path.relative_to(package).as_posix())
    assert users == ["_store_file.py", "store.py"]


def test_peek_meta_reads_a_finished_run_without_opening_its_store(tmp_path: Path) -> None:
    from textsynth.store import STORE_NAME, peek_meta

    with Store.in_dir(tmp_path) as store:
        store.set_meta("export", {"files": ["dataset"]})
    before = sorted(p.name for p in tmp_path.iterdir())
    assert peek_meta(tmp_path, "export") == {"files": ["dataset"]}
    assert peek_meta(tmp_path, "missing") is None
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no -wal, -shm or lock
    assert peek_meta(tmp_path / "nowhere", "export") is None
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / STORE_NAME).write_bytes(b"not a database at all" * 100)
    assert peek_meta(tmp_path / "other", "export") is None  # unreadable: nothing to say


def test_peek_meta_reads_without_a_lock_and_writes_nothing(tmp_path: Path) -> None:
    from textsynth.store import STORE_NAME, peek_meta

    assert peek_meta(tmp_path, "recipe") is None  # no store
    with Store.in_dir(tmp_path) as store:
        store.set_meta("recipe", {"export": {"hub": {"repo_id": "me/data"}},
                                  "backend": {"options": {"api_key": "sk-abcdefghijklmnopqrstu"}}})
    with Store.in_dir(tmp_path):  # a run holds the lock: a look-up reads all the same
        recipe = peek_meta(tmp_path, "recipe")
    assert recipe["export"]["hub"]["repo_id"] == "me/data"
    assert recipe["backend"]["options"]["api_key"] == "<redacted>"
    before = sorted(p.name for p in tmp_path.iterdir())
    assert peek_meta(tmp_path, "no such key") is None
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no -wal/-shm left
    (tmp_path / STORE_NAME).write_bytes(b"not a database at all" * 100)
    assert peek_meta(tmp_path, "recipe") is None


def test_a_fresh_store_looks_up_only_the_completions_it_wrote(tmp_path: Path) -> None:
    """A run on a new folder asks the store for every request's completion: a store that
    held none when opened answers from what it wrote since, without a query; one that
    held some when opened (a resumed run) looks every key up."""
    from textsynth.backends.base import Completion, Request

    request = Request(messages=({"role": "user", "content": "hi"},))
    with Store.in_dir(tmp_path) as store:
        queries: list[str] = []
        store._db.set_trace_callback(queries.append)
        assert store.get_completion("k1") is None and not queries
        store.put_completion("k1", "a/en", 0, request, Completion(texts=["one"]))
        assert store.get_completion("k1").texts == ["one"]
        assert store.get_completion("k2") is None
        assert sum(q.startswith("SELECT") for q in queries) == 1
    with Store.in_dir(tmp_path) as store:
        queries = []
        store._db.set_trace_callback(queries.append)
        assert store.get_completion("k1").texts == ["one"]
        assert store.get_completion("k2") is None
        assert sum(q.startswith("SELECT") for q in queries) == 2
