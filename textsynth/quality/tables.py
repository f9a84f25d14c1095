"""Compact state for the dedup rules: hash tables of item numbers, and spilled records.

At millions of accepted candidates the gate's state must stay small: a Python
dict entry costs about 100 bytes, a Python string 50 plus its text. Here

* :class:`KeyTable` maps 64-bit keys to item numbers with open addressing and
  stores only the item number (4 bytes a slot); each item's key lives once in
  an append-only array owned by the caller, so a lookup compares keys and gives
  exactly what a dict would. The array may keep only the low 32 bits of each key
  (``array('I')``, half the memory): two keys that share them are then told apart
  by a ``confirm`` callback that checks the full key (MinHash recomputes a band's
  key from the stored signature), so the answers stay a 64-bit dict's;
* :class:`SpillFile` appends records (texts, signatures) to an unnamed temporary
  file and keeps only their offsets in memory (4 bytes each: the low 32 bits, and
  the few record numbers where the high bits change; none at all for records of
  a fixed size); a record is read back with one ``pread`` when a rule needs it
  (a match, not every candidate). The file lives in the temporary folder
  (``TMPDIR``) and disappears when the process ends.
"""

from __future__ import annotations

import os
import tempfile
from array import array
from bisect import bisect_right
from collections.abc import Callable, Sequence
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

__all__ = ["KeyTable", "SpillFile"]


class KeyTable:
    """Open-addressing (linear probing) table from 64-bit keys to item numbers.

    ``keys`` holds the key of every item, ``stride`` keys an item with this
    table's at ``offset`` (several tables can share one array, as MinHash bands
    do). Like ``dict.setdefault``, the first item stored under a key keeps it.
    With ``key_bits`` below 64 (by default 32 for an ``array('I')``), ``keys`` holds
    only each key's low ``key_bits`` bits; ``confirm(item, key)`` then tells whether
    stored ``item``'s full key is ``key`` (called only when the low bits agree), and
    an item whose low bits collide with another's is stored too.

    >>> keys = array("Q", [7, 9])
    >>> table = KeyTable(keys)
    >>> table.setdefault(7, 0), table.setdefault(9, 1), table.get(9), table.get(8)
    (0, 1, 1, None)
    """

    def __init__(self, keys: array[int], stride: int = 1, offset: int = 0,
                 capacity: int = 1024, max_load: float = 0.6,
                 confirm: Callable[[int, int], bool] | None = None,
                 key_bits: int | None = None):
        if capacity & (capacity - 1):
            raise ValueError("capacity must be a power of two")
        key_bits = key_bits or 8 * keys.itemsize
        if key_bits > 8 * keys.itemsize:
            raise ValueError(f"an array of {keys.itemsize}-byte keys holds {key_bits} bits")
        if key_bits < 64 and confirm is None:
            raise ValueError("keys shorter than 64 bits need a confirm callback")
        self._keys = keys
        self._key_mask = (1 << key_bits) - 1  # the bits of a key the array holds
        self._confirm = confirm if key_bits < 64 else None
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

    def _probe(self, key: int) -> int:
        """The slot of the item stored under ``key``, or the empty slot where it would go."""
        slots, keys, stride, offset, mask, confirm = (self._slots, self._keys, self._stride,
                                                      self._offset, self._mask, self._confirm)
        short = key & self._key_mask
        i = short & mask  # the stored bits place it (as _grow does)
        while True:
            stored = slots[i]
            if not stored or (keys[(stored - 1) * stride + offset] == short and (
                    confirm is None or confirm(stored - 1, key))):
                return i
            i = (i + 1) & mask

    def _fill(self, slot: int, item: int) -> None:
        self._slots[slot] = item + 1
        self.count += 1
        if self.count > self._limit:
            self._grow()

    def get(self, key: int) -> int | None:
        """The item stored under ``key``, or None."""
        stored = self._slots[self._probe(key)]
        return stored - 1 if stored else None

    def setdefault(self, key: int, item: int) -> int:
        """Store ``item`` under ``key`` unless another item has it; returns the stored one.

        ``keys`` must already hold ``item``'s key (its low ``key_bits`` bits).
        """
        slot = self._probe(key)
        stored = self._slots[slot]
        if stored:
            return stored - 1
        self._fill(slot, item)
        return item

    def extend(self, items: Sequence[int]) -> None:
        """Store ``items`` at once, each under its key in ``keys``: keys that no stored item
        and no other of ``items`` has (what ``setdefault`` would store of them one by one),
        placed in a few numpy passes."""
        import numpy as np

        new = np.asarray(items, dtype=np.int64)
        self.count += len(new)
        capacity = self._mask + 1
        while self.count > int(capacity * self._max_load):
            capacity *= 2
        self._place(np.concatenate([self._items(), new]), capacity)

    def _items(self) -> np.ndarray:
        import numpy as np

        old = np.frombuffer(self._slots, dtype=np.uint32)
        items: np.ndarray = old[old != 0].astype(np.int64) - 1
        return items

    def _grow(self) -> None:
        """Twice the capacity; the stored items are placed again in a few numpy passes."""
        self._place(self._items(), 2 * (self._mask + 1))

    def _place(self, items: np.ndarray, capacity: int) -> None:
        """A table of ``capacity`` slots holding ``items`` (every one distinct)."""
        import numpy as np

        dtype = np.uint64 if self._keys.itemsize == 8 else np.uint32
        keys = np.frombuffer(self._keys, dtype=dtype)[items * self._stride + self._offset]
        mask = capacity - 1
        slots = np.zeros(capacity, dtype=np.uint32)
        pos = (keys & dtype(mask)).astype(np.int64)  # the stored bits: the slot get() probes first
        del keys
        pending = np.arange(len(items))
        while len(pending):  # every item is distinct: only empty slots are contended
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
    """Append-only records on disk; only their offsets (4 bytes each, none for records of
    a fixed ``record_size``) stay in memory.

    The newest records wait in a small buffer and are written a block at a time.
    Offsets keep their low 32 bits; ``_wraps`` lists the records from which the high
    bits grow by one (one every 4 GiB written), so record ``i`` starts at
    ``low[i] + (bisect_right(wraps, i) << 32)``.

    >>> log = SpillFile()
    >>> log.append(b"play some jazz"), log.append(b"what's the weather")
    (0, 1)
    >>> log.get(1)
    b"what's the weather"
    """

    def __init__(self, buffer_bytes: int = 1 << 20, record_size: int | None = None):
        self._record_size = record_size
        self._low = array("I", [0])  # record i is bytes offset(i):offset(i + 1)
        self._wraps: list[int] = []
        self._end = 0  # bytes in all records
        self._count = 0
        self._buffer: list[bytes] = []
        self._buffered = 0  # bytes in the buffer
        self._flushed = 0  # records on disk
        self._buffer_bytes = buffer_bytes
        self._file: IO[bytes] | None = None

    def __len__(self) -> int:
        return self._count

    @property
    def nbytes(self) -> int:
        """Bytes of memory the offsets take (the buffer of newest records not counted)."""
        return self._low.itemsize * len(self._low) + 8 * len(self._wraps)

    def _offset(self, number: int) -> int:
        if self._record_size is not None:
            return number * self._record_size
        return self._low[number] + (bisect_right(self._wraps, number) << 32)

    def append(self, record: bytes) -> int:
        """Store ``record``; returns its number (0, 1, 2 ...)."""
        size = len(record)
        end = self._end + size
        if self._record_size is None:
            if (end ^ self._end) >> 32:  # the high bits change from this record's end on
                self._wraps.extend([self._count + 1] * ((end >> 32) - (self._end >> 32)))
            self._low.append(end & 0xFFFFFFFF)
        elif size != self._record_size:
            raise ValueError(f"records are {self._record_size} bytes, not {size}")
        self._buffer.append(record)
        self._buffered += size
        self._end = end
        self._count += 1
        if self._buffered >= self._buffer_bytes:
            self.flush()
        return self._count - 1

    def get(self, number: int) -> bytes:
        """Record ``number``."""
        if number >= self._flushed:
            return self._buffer[number - self._flushed]
        start = self._offset(number)
        assert self._file is not None
        return os.pread(self._file.fileno(), self._offset(number + 1) - start, start)

    def flush(self) -> None:
        """Write the buffered records to the file."""
        if not self._buffer:
            return
        if self._file is None:
            # unnamed, removed when closed or when the process ends
            self._file = tempfile.TemporaryFile(prefix="textsynth-gate-", buffering=0)  # noqa: SIM115
        os.pwrite(self._file.fileno(), b"".join(self._buffer), self._offset(self._flushed))
        self._flushed += len(self._buffer)
        self._buffer.clear()
        self._buffered = 0

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
