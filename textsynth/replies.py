"""Made-up answers for the test server (:class:`~textsynth.testing.FaultServer`): texts
unique per request and choice and stable across calls, which the quality gate keeps (no
reply says a word twice, which the form rule rejects); :func:`letters` makes unique
words without digits, for replies the PII rule must not take for numbers."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

__all__ = ["body_key", "continued_reply", "default_reply", "letters"]

_WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
          "juliet", "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo",
          "sierra", "tango", "uniform", "victor", "whiskey", "xray"]


def body_key(body: Mapping[str, Any]) -> str:
    """A stable hash of a request body: equal bodies are the same request."""
    raw = json.dumps(body, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def default_reply(body: Mapping[str, Any], choice: int, items: int = 1,
                  key: str | None = None) -> str:
    """A JSON list of ``items`` texts, unique per request and choice, stable across calls."""
    digest = hashlib.sha256(f"{key or body_key(body)}:{choice}".encode()).digest()
    texts = []
    for i in range(items):
        words = _distinct_words(digest[i * 4:] + digest[:i * 4], 4)
        texts.append(f"please check {' '.join(words)} {digest.hex()[:8]}{i}")
    return json.dumps(texts)


def _distinct_words(digest: bytes, count: int) -> list[str]:
    """``count`` different words picked by the bytes of ``digest`` in order (a word said
    twice would make the text one the form rule rejects)."""
    words: list[str] = []
    for byte in digest:
        word = _WORDS[byte % len(_WORDS)]
        if word not in words:
            words.append(word)
            if len(words) == count:
                break
    return words


def continued_reply(body: Mapping[str, Any], choice: int, items: int = 1,
                    key: str | None = None) -> str:
    """The continuation of a ``- `` list (a text completion): ``items`` unique lines."""
    texts = json.loads(default_reply(body, choice, items, key))
    return " " + "\n- ".join(texts) + "\n"


def letters(n: int) -> str:
    """A distinct word of letters for each number (0 -> "a", 26 -> "ab"): unique reply
    texts without digits, which the PII rule would take for numbers."""
    out = ""
    while True:
        n, r = divmod(n, 26)
        out += chr(97 + r)
        if not n:
            return out
