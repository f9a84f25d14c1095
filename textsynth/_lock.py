"""The exclusive lock of a run store: one run per output folder.

The lock belongs to an open file (``flock``), so the operating system frees it when
its process dies, and the lock of a killed run is simply taken over. The file says
who holds it (pid, host, start time) so that a second run can tell the user. One
process may take the same lock more than once (it is counted).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from pathlib import Path

from textsynth.errors import StoreError

__all__ = ["FolderLock"]

_HELD: dict[str, list[int]] = {}  # lock file -> [fd, openers in this process]
_HELD_LOCK = threading.Lock()


def _try_lock(fd: int) -> bool:
    """Take the exclusive lock without waiting; ``False`` if another process holds it."""
    if sys.platform == "win32":
        import msvcrt

        os.lseek(fd, 1 << 20, os.SEEK_SET)  # a byte past the holder text, which stays readable
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        info = json.loads(os.read(fd, 4096).decode("utf-8"))
        return f"pid {info['pid']} on {info['host']}, started {info['started']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "holder unknown"


class FolderLock:
    """The exclusive lock on a run store, shared by every opener in this process."""

    def __init__(self, path: Path):
        self.path = path
        self._key = str(path.resolve())
        self._held = False

    def acquire(self) -> None:
        with _HELD_LOCK:
            held = _HELD.get(self._key)
            if held is not None:
                held[1] += 1
                self._held = True
                return
            fd = self._take()
            _HELD[self._key] = [fd, 1]
            self._held = True

    def _take(self) -> int:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreError(f"cannot lock the run store ({self.path}): {exc.strerror or exc}",
                             path=str(self.path)) from exc
        try:
            if not _try_lock(fd):
                raise StoreError(
                    f"{self.path.parent} is in use by another textsynth run ({_holder(fd)}): "
                    "wait for it to end, or choose another output folder", path=str(self.path))
            started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
            info = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                               "started": started}).encode()
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, info)
        except OSError as exc:
            os.close(fd)
            raise StoreError(f"cannot lock the run store ({self.path}): {exc.strerror or exc}",
                             path=str(self.path)) from exc
        except BaseException:
            os.close(fd)
            raise
        return fd

    def renew(self) -> None:
        """Lock the file at :attr:`path` again after it was deleted (with its folder,
        during a run): the old lock is on a file no other run can find any more."""
        with _HELD_LOCK:
            held = _HELD.get(self._key)
            if held is None:
                return
            try:
                if os.path.samestat(os.fstat(held[0]), os.stat(self.path)):
                    return
            except OSError:
                pass  # gone: take a new one
            fd = self._take()
            os.close(held[0])
            held[0] = fd

    def release(self) -> None:
        with _HELD_LOCK:
            if not self._held:
                return
            self._held = False
            held = _HELD[self._key]
            held[1] -= 1
            if held[1] == 0:
                del _HELD[self._key]
                os.close(held[0])  # frees the lock; the file stays (removing it would race)
