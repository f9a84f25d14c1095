"""The run store: a SQLite (WAL) file in the output folder, held by one run at a time.

Every completion is written (and committed) before it is parsed, so an
interrupted run loses nothing it paid for; the next run reads completions back
by request key instead of sending the request again. Accepted and rejected rows
are re-derived on every run (post-processing is not part of the key), so
changing a quality rule re-uses every stored completion whose prompt it leaves the same
(all of them when prompts show no accepted rows: ``generation.avoid: 0``, no bootstrap).

Opening a store takes an exclusive lock on its folder (``textsynth.db.lock``, see
:mod:`textsynth._lock`): a second process that opens the same store gets a
:class:`~textsynth.errors.StoreError` naming the holder; the lock of a killed run
is taken over. Within one process the same store may be opened more than once.

Every SQLite failure (disk full, a damaged file, another application's database,
a truncated file) is raised as one readable :class:`StoreError`; a failed write
is rolled back, so the store stays as it was before it.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from textsynth import _store_file as store_file
from textsynth._json import to_json
from textsynth._lock import FolderLock
from textsynth._store_file import APPLICATION_ID, SCHEMA, STORE_NAME, TABLES, hint, peek_meta
from textsynth.backends.base import Completion, Request, Usage
from textsynth.errors import StoreError
from textsynth.example import Example
from textsynth.redact import mask_known, redact, redact_text

__all__ = ["STORE_NAME", "Store", "Transaction", "peek_meta"]

LOCK_SUFFIX = ".lock"
_WATCH_SECONDS = 1.0  # how often a commit looks whether the store's file is still there
log = logging.getLogger(__name__)
_FRESH_KEYS = 250_000  # keys a fresh store remembers (about 25 MB), then it looks them up

P = ParamSpec("P")
R = TypeVar("R")


def _guarded(action: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Raise any SQLite error of a store method as one readable :class:`StoreError`."""
    def wrap(method: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(method)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return method(*args, **kwargs)
            except sqlite3.Error as exc:
                store = args[0]
                assert isinstance(store, Store)
                raise store.error(action, exc) from exc
        return guarded
    return wrap


class Transaction:
    """One write transaction: ``with store.transaction(): ...`` commits at the end, or
    rolls everything back if the block (or the commit) fails. A block begun while a
    transaction is open joins it: its commit (or rollback) covers the writes before it."""

    def __init__(self, store: Store):
        self._store = store

    def commit(self) -> None:
        store = self._store
        try:
            store._db.commit()
        except sqlite3.Error as exc:
            store._rollback()
            raise store.error("write", exc) from exc
        store.watch()

    def rollback(self) -> None:
        self._store._rollback()

    def __enter__(self) -> Transaction:
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        if kind is None:
            self.commit()
        else:
            self.rollback()


class Store:
    """SQLite store of completions (the cache), accepted examples and rejects.

    ``Store(":memory:")`` is a private store that touches no file and takes no lock.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock: FolderLock | None = None
        # a store that held no completion when opened: the keys written since are all it
        # has, so looking up any other key (every request of a fresh run) needs no query
        self._fresh = False
        self._written: set[str] = set()
        self._file: tuple[int, int] | None = None  # (device, inode) of the file opened
        self._watched = 0.0
        if str(path) == ":memory:":
            self._db = sqlite3.connect(":memory:", isolation_level=None)
            self._db.executescript(SCHEMA)
            self._fresh = True
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the folder {self.path.parent}: "
                             f"{exc.strerror or exc}", path=str(self.path)) from exc
        self._lock = FolderLock(self.path.with_name(self.path.name + LOCK_SUFFIX))
        self._lock.acquire()
        try:
            self._check_file()
            self._db = sqlite3.connect(self.path, isolation_level=None)
        except sqlite3.Error as exc:
            self._lock.release()
            raise self.error("open", exc) from exc
        except OSError as exc:
            self._lock.release()
            raise StoreError(f"cannot open the run store {self.path}: {exc.strerror or exc}",
                             path=str(self.path)) from exc
        except BaseException:
            self._lock.release()
            raise
        try:
            self._open()
            self._file = store_file.file_id(self.path)
            self._watched = time.monotonic()
        except BaseException:
            self.close()
            raise

    def _check_file(self) -> None:
        if not self.path.exists():
            return
        if not self.path.is_file():
            raise StoreError(f"the run store {self.path} is not a file: move it away, or "
                             "choose another output folder", path=str(self.path))
        if self.path.stat().st_size == 0:
            raise StoreError(f"the run store {self.path} is empty (0 bytes): it was truncated, "
                             "so the answers it held are gone; restore it from a backup, or "
                             "delete it to start a new run", path=str(self.path))

    @_guarded("open")
    def _open(self) -> None:
        tables = {row[0] for row in self._db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        app_id = self._db.execute("PRAGMA application_id").fetchone()[0]
        # a store written before the application id was set is known by its tables
        ours = app_id == APPLICATION_ID or (not app_id and tables <= TABLES
                                            and (not tables or "completions" in tables))
        if not ours:
            what = f"its tables are {', '.join(sorted(tables))}" if tables else \
                f"its application id is {app_id:#x}"
            raise StoreError(
                f"{self.path} is an SQLite database of another application ({what}), not a "
                "textsynth run store: move it away, or choose another output folder",
                path=str(self.path))
        store_file.use_wal(self._db)
        self._db.executescript(SCHEMA)
        if app_id != APPLICATION_ID:
            self._db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        self._fresh = self._db.execute("SELECT 1 FROM completions LIMIT 1").fetchone() is None

    @classmethod
    def in_dir(cls, folder: str | Path) -> Store:
        return cls(Path(folder) / STORE_NAME)

    def error(self, action: str, exc: sqlite3.Error) -> StoreError:
        """``exc`` as one line that names the file, what failed, and what to do."""
        why = hint(exc)
        return StoreError(f"cannot {action} the run store {self.path}: {exc}"
                          + (f" ({why})" if why else ""), path=str(self.path))

    def watch(self, now: bool = False) -> None:
        """Look (at most once a second, or ``now``) whether the store's file is still the
        one this run writes. A deleted one (``rm -r out``) is written back and the run goes
        on; one replaced by another file is left alone, and the run stops (see
        :func:`~textsynth._store_file.save_aside`)."""
        if self._file is None or self._db.in_transaction:
            return
        clock = time.monotonic()
        if not now and clock - self._watched < _WATCH_SECONDS:
            return
        self._watched = clock
        current = store_file.file_id(self.path)
        if current == self._file:
            return
        if current is None:
            self._restore()
        else:
            self._file = None  # the run stops here: nothing more is written
            store_file.save_aside(self._db, self.path)

    def _restore(self) -> None:
        self._db = store_file.write_back(self._db, self.path)
        self._file = store_file.file_id(self.path)
        if self._lock is not None:
            self._lock.renew()
        log.warning("the run store %s was deleted while the run went on; it was written back "
                    "with the %d answers stored so far, and the run goes on", self.path,
                    self.completion_count())

    def close(self) -> None:
        if self._file is not None and store_file.file_id(self.path) is None:
            with contextlib.suppress(StoreError):  # deleted in the run's last second
                self._restore()
        try:
            self._db.close()
        except sqlite3.Error:
            pass  # closing never fails a run: every write was committed or rolled back
        finally:
            if self._lock is not None:
                self._lock.release()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _rollback(self) -> None:
        if self._db.in_transaction:
            with contextlib.suppress(sqlite3.Error):  # SQLite may have rolled back already
                self._db.rollback()

    # -- completions (write-ahead cache) -----------------------------------------
    @_guarded("read")
    def get_completion(self, key: str) -> Completion | None:
        if self._fresh and key not in self._written:
            return None
        row = self._db.execute(
            "SELECT texts, finish_reason, prompt_tokens, completion_tokens, model, attempts"
            " FROM completions WHERE key = ?",
            (key,),
        ).fetchone()
        if row is None:
            return None
        return Completion(json.loads(row[0]), Usage(row[2], row[3]), row[1] or "stop",
                          row[4] or "", row[5])

    @_guarded("write")
    def put_completion(self, key: str, slot: str, job_index: int, request: Request,
                       completion: Completion) -> None:
        """Write one completion and commit it at once (before anyone parses it)."""
        if self._fresh:
            self._written.add(key)
            if len(self._written) > _FRESH_KEYS:  # memory: look every key up from now on
                self._fresh = False
                self._written.clear()
        self._db.execute(
            "INSERT OR REPLACE INTO completions VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (key, slot, job_index, to_json(_shown(request)),
             mask_known(to_json(completion.texts)),
             completion.finish_reason, completion.usage.prompt_tokens,
             completion.usage.completion_tokens, mask_known(completion.model),
             completion.attempts, time.time()),
        )

    @_guarded("read")
    def completion_count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM completions").fetchone()[0])

    # -- jobs given up before anything was paid for them ---------------------------
    @_guarded("write")
    def skip_job(self, key: str, slot: str, job_index: int, reason: str) -> None:
        """Record that a job was replaced by another one, so a resumed run skips it too."""
        self._db.execute("INSERT OR REPLACE INTO skipped VALUES (?,?,?,?,?)",
                         (key, slot, job_index, reason, time.time()))

    @_guarded("read")
    def skipped_keys(self) -> set[str]:
        return {row[0] for row in self._db.execute("SELECT key FROM skipped")}

    @_guarded("read")
    def usage(self) -> Usage:
        row = self._db.execute(
            "SELECT COALESCE(SUM(prompt_tokens),0), COALESCE(SUM(completion_tokens),0)"
            " FROM completions").fetchone()
        return Usage(int(row[0]), int(row[1]))

    # -- accepted and rejected rows (re-derived each run) -------------------------
    @_guarded("write")
    def reset_results(self) -> None:
        with self.transaction():
            self._db.execute("DELETE FROM examples")
            self._db.execute("DELETE FROM rejects")

    @_guarded("write")
    def add_example(self, seq: int, example: Example) -> None:
        self._db.execute(
            "INSERT INTO examples VALUES (?,?,?,?,?)",
            (seq, example.label, example.language, mask_known(example.text),
             mask_known(to_json(example.to_dict()))),
        )

    @_guarded("write")
    def add_reject(self, label: str, language: str, text: str, reason: str, detail: str = "",
                   request_key: str | None = None) -> None:
        self._db.execute(
            "INSERT INTO rejects (label, language, text, reason, detail, request_key)"
            " VALUES (?,?,?,?,?,?)",
            (label, language, mask_known(text), reason, redact_text(detail), request_key),
        )

    @_guarded("write")
    def retract_example(self, label: str, language: str, text: str, reason: str,
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

    @_guarded("read")
    def example_count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM examples").fetchone()[0])

    def examples(self) -> Iterator[Example]:
        try:
            for (data,) in self._db.execute("SELECT data FROM examples ORDER BY seq"):
                yield Example(**json.loads(data))
        except sqlite3.Error as exc:
            raise self.error("read", exc) from exc

    def rejects(self) -> Iterator[dict[str, Any]]:
        try:
            cur = self._db.execute("SELECT label, language, text, reason, detail, request_key"
                                   " FROM rejects ORDER BY seq")
            cols = [c[0] for c in cur.description]
            for row in cur:
                yield dict(zip(cols, row, strict=True))
        except sqlite3.Error as exc:
            raise self.error("read", exc) from exc

    @_guarded("read")
    def reject_counts(self) -> dict[str, int]:
        return dict(self._db.execute(
            "SELECT reason, COUNT(*) FROM rejects GROUP BY reason ORDER BY 2 DESC").fetchall())

    # -- metadata --------------------------------------------------------------------
    @_guarded("write")
    def set_meta(self, key: str, value: Any) -> None:
        """Store ``value`` as JSON, with secrets redacted (it may hold the recipe)."""
        value = redact(json.loads(json.dumps(value, ensure_ascii=False, default=str)))
        self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                         (key, json.dumps(value, ensure_ascii=False)))

    @_guarded("read")
    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    @property
    def in_transaction(self) -> bool:
        """Whether writes wait for a commit."""
        return self._db.in_transaction

    @_guarded("write")
    def transaction(self) -> Transaction:
        """``with store.transaction(): ...`` groups writes into one commit; it joins the
        transaction already open, if any (one commit for the rows and the answers)."""
        if not self._db.in_transaction:
            self._db.execute("BEGIN")
        return Transaction(self)


def _shown(request: Request) -> list[dict[str, str]]:
    """What was sent, as messages: a raw prompt is one ``continue`` entry."""
    if request.prompt is not None:
        return [{"role": "continue", "content": request.prompt}]
    return list(request.messages)
