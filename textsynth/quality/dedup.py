"""Deduplicators: rules that judge a candidate against what was already accepted."""

from __future__ import annotations

from textsynth.quality.base import KEEP, Rule, Verdict
from textsynth.quality.normalize import normalize
from textsynth.schemas import Example

__all__ = ["ExactDedup"]


class ExactDedup(Rule):
    """Normalised exact duplicates across the whole run (every label)."""

    name = "dedup"

    def __init__(self) -> None:
        super().__init__()
        self.seen: dict[str, str] = {}

    def check(self, example: Example) -> Verdict:
        owner = self.seen.get(normalize(example.text))
        if owner is None:
            return KEEP
        if owner == example.label:
            return Verdict(False, "duplicate")
        return Verdict(False, "cross_label_duplicate", f"already under '{owner}'")

    def add(self, example: Example) -> None:
        self.seen.setdefault(normalize(example.text), example.label)
