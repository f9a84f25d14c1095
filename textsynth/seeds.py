"""Seed derivation: every random choice of a run follows from the recipe's one seed.

A job's seed, the order of its ``vary`` combinations and a translate/paraphrase
request's seed all come from :func:`derive_seed` over the run's seed and the names of
what is being decided, so they never depend on the order work is done in.

>>> derive_seed(0, "turn_on", "en", 3) == derive_seed(0, "turn_on", "en", 3)
True
>>> derive_seed(0, "x", bits=31) < 2 ** 31
True
"""

from __future__ import annotations

import hashlib

__all__ = ["derive_seed"]


def derive_seed(*parts: object, bits: int = 63) -> int:
    """A non-negative ``bits``-bit integer from the SHA-256 of ``parts`` (as text).

    ``bits`` is 63 for recipe runs and 31 for translate/paraphrase requests (what each
    has always used, so stored completions and exported datasets stay the same).
    """
    if not 1 <= bits <= 255:
        raise ValueError(f"bits must be from 1 to 255, got {bits}")
    raw = "\x1f".join(map(str, parts)).encode()
    whole = bits // 8 + 1  # whole bytes, then the lowest bits dropped
    return int.from_bytes(hashlib.sha256(raw).digest()[:whole], "big") >> (whole * 8 - bits)
