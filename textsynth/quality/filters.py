"""Filters: rules that judge one candidate on its own."""

from __future__ import annotations

import re

from textsynth.quality.base import KEEP, Rule, Verdict
from textsynth.schemas import Example

__all__ = ["AssistantSpeakFilter", "LengthFilter"]


class LengthFilter(Rule):
    """Bounds on words and characters."""

    name = "length"

    def __init__(self, min_words: int = 1, max_words: int = 60, min_chars: int = 1,
                 max_chars: int = 400):
        super().__init__()
        self.min_words, self.max_words = min_words, max_words
        self.min_chars, self.max_chars = min_chars, max_chars

    def check(self, example: Example) -> Verdict:
        words = len(example.text.split())
        chars = len(example.text)
        if words < self.min_words or chars < self.min_chars:
            return Verdict(False, "too_short", f"{words} words, {chars} chars")
        if words > self.max_words or chars > self.max_chars:
            return Verdict(False, "too_long", f"{words} words, {chars} chars")
        return KEEP


_ASSISTANT = re.compile(
    r"\b(as an ai|i'?m an ai|i am an ai|language model|i'?m (here|ready) to (help|assist)"
    r"|i can(not|'t) (help|assist)|i'?m sorry,? but|sure,? here|here (are|is) (some|a few|\d+)"
    r"|let me know if|feel free to|hope this helps|how can i (help|assist)"
    r"|upgrade to the latest version)\b",
    re.I,
)


class AssistantSpeakFilter(Rule):
    """Drops replies that talk like an assistant instead of like a user."""

    name = "assistant_speak"

    def check(self, example: Example) -> Verdict:
        match = _ASSISTANT.search(example.text)
        if match:
            return Verdict(False, "assistant_speak", match.group(0))
        return KEEP
