"""Text normalisation shared by the dedup rules."""

from __future__ import annotations

import re
import unicodedata

__all__ = ["normalize"]

_PUNCT = re.compile(r"[^\w\s]", re.UNICODE)
_SPACE = re.compile(r"\s+")


def normalize(text: str) -> str:
    """Case-folded, accent-preserving, punctuation-free, single-spaced text.

    >>> normalize("  Turn ON the Lights! ")
    'turn on the lights'
    """
    text = unicodedata.normalize("NFKC", text).casefold()
    text = _PUNCT.sub(" ", text)
    return _SPACE.sub(" ", text).strip()
