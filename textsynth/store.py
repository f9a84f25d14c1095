"""The run store: a SQLite (WAL) file in the output folder.

Every completion is written (and committed) before it is parsed, so an
interrupted run loses nothing it paid for; the next run reads completions back
by request key instead of sending the request again. Accepted and rejected rows
are re-derived on every run (post-processing is not part of the key), so
changing a quality rule re-uses every stored completion.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from textsynth.backends.base import Completion, Request, Usage
from textsynth.errors import ExportError
from textsynth.redact import mask_known, redact, redact_text
from textsynth.schemas import Example

__all__ = ["Store"]

STORE_NAME = "textsynth.db"

_SCHEMA = """
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


class Store:
    """SQLite store of completions (the cache), accepted examples and rejects."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise ExportError(f"cannot open the run store {self.path}: {exc}") from exc

    @classmethod
    def in_dir(cls, folder: str | Path) -> Store:
        return cls(Path(folder) / STORE_NAME)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- completions (write-ahead cache) -----------------------------------------
    def get_completion(self, key: str) -> Completion | None:
        row = self._db.execute(
            "SELECT texts, finish_reason, prompt_tokens, completion_tokens, model, attempts"
            " FROM completions WHERE key = ?",
            (key,),
        ).fetchone()
        if row is None:
            return None
        return Completion(json.loads(row[0]), Usage(row[2], row[3]), row[1] or "stop",
                          row[4] or "", row[5])

    def put_completion(self, key: str, slot: str, job_index: int, request: Request,
                       completion: Completion) -> None:
        """Write one completion and commit it at once (before anyone parses it)."""
        self._db.execute(
            "INSERT OR REPLACE INTO completions VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (key, slot, job_index, json.dumps(list(request.messages), ensure_ascii=False),
             mask_known(json.dumps(completion.texts, ensure_ascii=False)),
             completion.finish_reason, completion.usage.prompt_tokens,
             completion.usage.completion_tokens, mask_known(completion.model),
             completion.attempts, time.time()),
        )

    def completion_count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM completions").fetchone()[0])

    # -- jobs given up before anything was paid for them ---------------------------
    def skip_job(self, key: str, slot: str, job_index: int, reason: str) -> None:
        """Record that a job was replaced by another one, so a resumed run skips it too."""
        self._db.execute("INSERT OR REPLACE INTO skipped VALUES (?,?,?,?,?)",
                         (key, slot, job_index, reason, time.time()))

    def skipped_keys(self) -> set[str]:
        return {row[0] for row in self._db.execute("SELECT key FROM skipped")}

    def usage(self) -> Usage:
        row = self._db.execute(
            "SELECT COALESCE(SUM(prompt_tokens),0), COALESCE(SUM(completion_tokens),0)"
            " FROM completions").fetchone()
        return Usage(int(row[0]), int(row[1]))

    # -- accepted and rejected rows (re-derived each run) -------------------------
    def reset_results(self) -> None:
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM examples")
            self._db.execute("DELETE FROM rejects")

    def add_example(self, seq: int, example: Example) -> None:
        self._db.execute(
            "INSERT INTO examples VALUES (?,?,?,?,?)",
            (seq, example.label, example.language, mask_known(example.text),
             mask_known(json.dumps(example.to_dict(), ensure_ascii=False))),
        )

    def add_reject(self, label: str, language: str, text: str, reason: str, detail: str = "",
                   request_key: str | None = None) -> None:
        self._db.execute(
            "INSERT INTO rejects (label, language, text, reason, detail, request_key)"
            " VALUES (?,?,?,?,?,?)",
            (label, language, mask_known(text), reason, redact_text(detail), request_key),
        )

    def withdraw_example(self, label: str, language: str, text: str, reason: str,
                         detail: str = "") -> bool:
        """Move an accepted example to the rejects (a later conflict showed it is bad)."""
        own = not self._db.in_transaction  # else it joins the caller's transaction
        if own:
            self._db.execute("BEGIN")
        try:
            row = self._db.execute(
                "SELECT seq, data FROM examples WHERE label = ? AND language = ? AND text = ?"
                " ORDER BY seq LIMIT 1", (label, language, text)).fetchone()
            if row is not None:
                self._db.execute("DELETE FROM examples WHERE seq = ?", (row[0],))
                key = json.loads(row[1]).get("request_id")
                self._db.execute(
                    "INSERT INTO rejects (label, language, text, reason, detail, request_key)"
                    " VALUES (?,?,?,?,?,?)", (label, language, text, reason, detail, key))
        except BaseException:
            if own:
                self._db.rollback()
            raise
        if own:
            self._db.commit()
        return row is not None

    def example_count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM examples").fetchone()[0])

    def examples(self) -> Iterator[Example]:
        for (data,) in self._db.execute("SELECT data FROM examples ORDER BY seq"):
            yield Example(**json.loads(data))

    def rejects(self) -> Iterator[dict[str, Any]]:
        cur = self._db.execute(
            "SELECT label, language, text, reason, detail, request_key FROM rejects ORDER BY seq")
        cols = [c[0] for c in cur.description]
        for row in cur:
            yield dict(zip(cols, row, strict=True))

    def reject_counts(self) -> dict[str, int]:
        return dict(self._db.execute(
            "SELECT reason, COUNT(*) FROM rejects GROUP BY reason ORDER BY 2 DESC").fetchall())

    # -- metadata --------------------------------------------------------------------
    def set_meta(self, key: str, value: Any) -> None:
        """Store ``value`` as JSON, with secrets redacted (it may hold the recipe)."""
        value = redact(json.loads(json.dumps(value, ensure_ascii=False, default=str)))
        self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                         (key, json.dumps(value, ensure_ascii=False)))

    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def transaction(self) -> sqlite3.Connection:
        """``with store.transaction(): ...`` groups writes into one commit."""
        self._db.execute("BEGIN")
        return self._db
