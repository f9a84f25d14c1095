"""Label names as words: the one reading of a label in prompts, judges and matching."""

from __future__ import annotations

import re

__all__ = ["readable_label"]

_WORD_START = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_SEPARATORS = re.compile(r"[\s_\-.:/]+")


def readable_label(label: str) -> str:
    """A label as words: the one reading of a label name in prompts, judges and matching.

    >>> readable_label("AddToPlaylist"), readable_label("set_alarm"), readable_label("HTTPError")
    ('add to playlist', 'set alarm', 'http error')
    """
    return _SEPARATORS.sub(" ", _WORD_START.sub(" ", label)).strip().lower()
