"""Compact state for the dedup rules: hash tables of item numbers, and spilled records.

At millions of accepted candidates the gate's state must stay small: a Python
dict entry costs about 100 bytes, a Python string 50 plus its text. Here

* :class:`KeyTable` maps 64-bit keys to item numbers with open addressing and
  stores only the item number (4 bytes a slot); each item's key lives once in
  an append-only ``array('Q')`` owned by the caller, so a lookup compares full
  64-bit keys and gives exactly what a dict would;
* :class:`SpillFile` appends records (texts, signatures) to an unnamed temporary
  file and keeps only their offsets (8 bytes each) in memory; a record is read
  back with one ``pread`` when a rule needs it (a match, not every candidate).
  The file lives in the temporary folder (``TMPDIR``) and disappears when the
  process ends.
"""

from __future__ import annotations

import os
import tempfile
from array import array
from typing import IO

__all__ = ["KeyTable", "SpillFile"]


class KeyTable:
    """Open-addressing (linear probing) table from 64-bit keys to item numbers.

    ``keys`` holds the key of every item, ``stride`` keys an item with this
    table's at ``offset`` (several tables can share one array, as MinHash bands
    do). Like ``dict.setdefault``, the first item stored under a key keeps it.

    >>> keys = array("Q", [7, 9])
    >>> table = KeyTable(keys)
    >>> table.setdefault(7, 0), table.setdefault(9, 1), table.get(9), table.get(8)
    (0, 1, 1, None)
    """

    def __init__(self, keys: array[int], stride: int = 1, offset: int = 0,
                 capacity: int = 1024, max_load: float = 0.6):
        if capacity & (capacity - 1):
            raise ValueError("capacity must be a power of two")
        self._keys = keys
        self._stride = stride
        self._offset = offset
        self._max_load = max_load
        self._slots = array("I", bytes(4 * capacity))  # item + 1; 0 is an empty slot
        self._mask = capacity - 1
        self._limit = int(capacity * max_load)
        self.count = 0

    @property
    def capacity(self) -> int:
        return self._mask + 1

    @property
    def nbytes(self) -> int:
        return len(self._slots) * self._slots.itemsize

    def get(self, key: int) -> int | None:
        """The item stored under ``key``, or None."""
        slots, keys, stride, offset, mask = (self._slots, self._keys, self._stride,
                                             self._offset, self._mask)
        i = key & mask
        while True:
            item = slots[i]
            if not item:
                return None
            if keys[(item - 1) * stride + offset] == key:
                return item - 1
            i = (i + 1) & mask

    def setdefault(self, key: int, item: int) -> int:
        """Store ``item`` under ``key`` unless another item has it; returns the stored one.

        ``keys`` must already hold ``item``'s key.
        """
        slots, keys, stride, offset, mask = (self._slots, self._keys, self._stride,
                                             self._offset, self._mask)
        i = key & mask
        while True:
            stored = slots[i]
            if not stored:
                break
            if keys[(stored - 1) * stride + offset] == key:
                return stored - 1
            i = (i + 1) & mask
        slots[i] = item + 1
        self.count += 1
        if self.count > self._limit:
            self._grow()
        return item

    def replace(self, key: int, item: int) -> int | None:
        """Store ``item`` under ``key``; returns the item that had it before, or None
        (a chain of items with equal keys can then run through the caller's arrays).

        ``keys`` must already hold ``item``'s key.
        """
        slots, keys, stride, offset, mask = (self._slots, self._keys, self._stride,
                                             self._offset, self._mask)
        i = key & mask
        while True:
            stored = slots[i]
            if not stored:
                break
            if keys[(stored - 1) * stride + offset] == key:
                slots[i] = item + 1
                return stored - 1
            i = (i + 1) & mask
        slots[i] = item + 1
        self.count += 1
        if self.count > self._limit:
            self._grow()
        return None

    def _grow(self) -> None:
        """Twice the capacity; the stored items are placed again in a few numpy passes."""
        import numpy as np

        old = np.frombuffer(self._slots, dtype=np.uint32)
        items = old[old != 0].astype(np.int64) - 1
        keys = np.frombuffer(self._keys, dtype=np.uint64)[items * self._stride + self._offset]
        capacity = 2 * (self._mask + 1)
        mask = capacity - 1
        slots = np.zeros(capacity, dtype=np.uint32)
        pos = (keys & np.uint64(mask)).astype(np.int64)
        pending = np.arange(len(items))
        while len(pending):  # every key is distinct: only empty slots are contended
            where = pos[pending]
            free = slots[where] == 0
            _, first = np.unique(where, return_index=True)
            winner = np.zeros(len(pending), dtype=bool)
            winner[first] = True
            placed = free & winner
            slots[where[placed]] = items[pending[placed]] + 1
            pending = pending[~placed]
            pos[pending] = (pos[pending] + 1) & mask
        self._slots = array("I")
        self._slots.frombytes(slots.data.cast("B"))  # one copy, no bytes in between
        self._mask = mask
        self._limit = int(capacity * self._max_load)


class SpillFile:
    """Append-only records on disk; only their offsets (8 bytes each) stay in memory.

    The newest records wait in a small buffer and are written a block at a time.

    >>> log = SpillFile()
    >>> log.append(b"play some jazz"), log.append(b"what's the weather")
    (0, 1)
    >>> log.get(1)
    b"what's the weather"
    """

    def __init__(self, buffer_bytes: int = 1 << 20):
        self._offsets = array("Q", [0])  # record i is bytes offsets[i]:offsets[i + 1]
        self._buffer: list[bytes] = []
        self._buffered = 0  # bytes in the buffer
        self._flushed = 0  # records on disk
        self._buffer_bytes = buffer_bytes
        self._file: IO[bytes] | None = None

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def append(self, record: bytes) -> int:
        """Store ``record``; returns its number (0, 1, 2 ...)."""
        self._buffer.append(record)
        self._buffered += len(record)
        self._offsets.append(self._offsets[-1] + len(record))
        if self._buffered >= self._buffer_bytes:
            self.flush()
        return len(self._offsets) - 2

    def get(self, number: int) -> bytes:
        """Record ``number``."""
        if number >= self._flushed:
            return self._buffer[number - self._flushed]
        start = self._offsets[number]
        assert self._file is not None
        return os.pread(self._file.fileno(), self._offsets[number + 1] - start, start)

    def flush(self) -> None:
        """Write the buffered records to the file."""
        if not self._buffer:
            return
        if self._file is None:
            # unnamed, removed when closed or when the process ends
            self._file = tempfile.TemporaryFile(prefix="textsynth-gate-", buffering=0)  # noqa: SIM115
        os.pwrite(self._file.fileno(), b"".join(self._buffer), self._offsets[self._flushed])
        self._flushed += len(self._buffer)
        self._buffer.clear()
        self._buffered = 0

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
