"""The run store's file: its tables, how it is told from other SQLite files, what to do
about an SQLite error, and a look at its metadata without opening it.

Private to :mod:`textsynth.store`, which is the only other module that imports
``sqlite3`` (a test checks it).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

__all__ = ["APPLICATION_ID", "SCHEMA", "STORE_NAME", "TABLES", "hint", "peek_meta"]

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
