"""The run store's file: its tables, how it is told from other SQLite files, what to do
about an SQLite error, and a look at its metadata without opening it.

Private to :mod:`textsynth.store`, which is the only other module that imports
``sqlite3`` (a test checks it).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any, NoReturn

from textsynth.errors import StoreError

__all__ = ["APPLICATION_ID", "SCHEMA", "STORE_NAME", "TABLES", "file_id", "hint",
           "peek_meta", "save_aside", "use_wal", "write_back"]

STORE_NAME = "textsynth.db"
# PRAGMA application_id of a textsynth store ("TSYN"): tells it from other SQLite files
APPLICATION_ID = 0x5453594E
TABLES = {"completions", "examples", "rejects", "meta", "skipped", "sqlite_sequence"}

SCHEMA = """
CREATE TABLE IF NOT EXISTS completions (
    key TEXT PRIMARY KEY,
    slot TEXT NOT NULL,
    job_index INTEGER NOT NULL,
    messages TEXT NOT NULL,
    texts TEXT NOT NULL,
    finish_reason TEXT,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    model TEXT,
    attempts INTEGER NOT NULL DEFAULT 1,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS examples (
    seq INTEGER PRIMARY KEY,
    label TEXT NOT NULL,
    language TEXT NOT NULL,
    text TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rejects (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    label TEXT NOT NULL,
    language TEXT NOT NULL,
    text TEXT NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    request_key TEXT
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS skipped (
    key TEXT PRIMARY KEY,
    slot TEXT NOT NULL,
    job_index INTEGER NOT NULL,
    reason TEXT NOT NULL,
    created REAL NOT NULL
);
"""

_RESUME = "free some space and run the same command again to resume"
_HINTS = {
    "SQLITE_FULL": f"the disk is full: {_RESUME}",
    "SQLITE_IOERR": f"is the disk full, or the file too large? {_RESUME}",
    "SQLITE_CORRUPT": "the file is damaged: restore it from a backup, or move it away to "
                      "start a new run",
    "SQLITE_NOTADB": "it is not a textsynth run store: move it away, or choose another "
                     "output folder",
    "SQLITE_READONLY": "check the permissions of the file and its folder",
    "SQLITE_CANTOPEN": "check the permissions of the file and its folder",
    "SQLITE_PERM": "check the permissions of the file and its folder",
    "SQLITE_BUSY": "another program has the file open",
    "SQLITE_LOCKED": "another program has the file open",
}


def hint(exc: sqlite3.Error) -> str:
    name = getattr(exc, "sqlite_errorname", "") or ""
    return _HINTS.get(name, _HINTS.get("_".join(name.split("_")[:2]), ""))


def peek_meta(folder: str | Path, key: str) -> Any:
    """Meta ``key`` of the run store in ``folder``, read without a lock and without
    writing anything (no -wal/-shm files); ``None`` when there is no store, no such
    key, or the file cannot be read (a look-up, never a reason to fail). It sees what
    a closed store holds: a run still writing may have newer values in its WAL."""
    db = Path(folder) / STORE_NAME
    if not db.is_file():
        return None
    try:
        con = sqlite3.connect(f"{db.resolve().as_uri()}?immutable=1", uri=True)
        try:
            row = con.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        finally:
            con.close()
        return json.loads(row[0]) if row else None
    except (sqlite3.Error, ValueError):
        return None


def use_wal(db: sqlite3.Connection) -> None:
    """The journal a store is written with: WAL, synced at checkpoints."""
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")


def file_id(path: Path) -> tuple[int, int] | None:
    """(device, inode) of the file at ``path``; ``None`` when there is none."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def _copy_to(db: sqlite3.Connection, target: Path) -> None:
    """Write everything ``db`` holds (its WAL included) to a new database file."""
    copy = sqlite3.connect(target)
    try:
        db.backup(copy)
    finally:
        copy.close()


def write_back(db: sqlite3.Connection, path: Path) -> sqlite3.Connection:
    """Put the database ``db`` holds at ``path`` again (its file was deleted while open)
    and return a connection to it; ``db`` is closed. The copy is staged beside it and
    renamed, so ``path`` never holds half a store."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        staged = path.with_name(f"{path.name}.restoring-{os.getpid()}")
        staged.unlink(missing_ok=True)
        _copy_to(db, staged)
        db.close()  # the deleted file's WAL and shared memory, where left, go with it
        os.replace(staged, path)
        restored = sqlite3.connect(path, isolation_level=None)
        use_wal(restored)
    except (OSError, sqlite3.Error) as exc:
        raise StoreError(f"the run store {path} was deleted while the run went on, and "
                         f"could not be written back: {getattr(exc, 'strerror', None) or exc}",
                         path=str(path)) from exc
    return restored


def save_aside(db: sqlite3.Connection, path: Path) -> NoReturn:
    """The store at ``path`` was replaced by another file: copy what ``db`` holds beside
    it, leave that file alone, and stop the run saying how to resume."""
    aside = path.with_name(f"{path.name}.saved-{time.strftime('%Y%m%d-%H%M%S')}")
    try:
        _copy_to(db, aside)
    except (OSError, sqlite3.Error) as exc:
        raise StoreError(f"the run store {path} was replaced by another file while the "
                         f"run went on, and this run's answers could not be saved: {exc}",
                         path=str(path)) from exc
    raise StoreError(f"the run store {path} was replaced by another file while the run "
                     f"went on; it is left as it is, and this run's answers are saved in "
                     f"{aside}: move that to {path} to resume from them", path=str(path))
