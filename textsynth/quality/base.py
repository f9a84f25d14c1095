"""The quality-rule interface and the gate that runs rules during generation."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

from textsynth.schemas import Example

__all__ = ["KEEP", "QualityGate", "Rule", "Verdict"]


@dataclass(frozen=True)
class Verdict:
    """A rule's decision on one candidate.

    ``reason`` is a short machine-readable tag (``too_short``, ``near_duplicate``);
    ``detail`` is free text for people. ``text``, when set on a kept candidate,
    replaces its text (PII masking).
    """

    keep: bool
    reason: str = ""
    detail: str = ""
    text: str | None = None


KEEP = Verdict(True)


class Rule(ABC):
    """A filter or deduplicator. ``check`` decides; ``add`` learns accepted rows.

    Each rule counts what it kept and what it dropped, by reason.
    """

    name: ClassVar[str] = ""

    def __init__(self) -> None:
        self.kept = 0
        self.dropped: Counter[str] = Counter()

    @abstractmethod
    def check(self, example: Example) -> Verdict:
        """Keep or drop ``example`` (never mutate it)."""

    def add(self, example: Example) -> None:  # noqa: B027 - stateless rules ignore it
        """Remember an accepted example (dedup and novelty rules use this)."""

    def remove_label_conflicts(self) -> set[str]:
        """Texts accepted earlier that must now be withdrawn (cross-label conflicts)."""
        return set()

    def __call__(self, example: Example) -> Verdict:
        verdict = self.check(example)
        if verdict.keep:
            self.kept += 1
        else:
            self.dropped[verdict.reason] += 1
        return verdict


class QualityGate:
    """Runs rules in order (cheap ones first); the first drop wins."""

    def __init__(self, rules: Iterable[Rule]):
        self.rules = list(rules)

    def check(self, example: Example) -> Verdict:
        text = example.text
        for rule in self.rules:
            verdict = rule(example)
            if not verdict.keep:
                return Verdict(False, verdict.reason, verdict.detail)
            if verdict.text is not None and verdict.text != example.text:
                example.text = verdict.text
        return Verdict(True, text=example.text if example.text != text else None)

    def accept(self, example: Example) -> None:
        for rule in self.rules:
            rule.add(example)

    def stats(self) -> dict[str, dict[str, int]]:
        """Per rule: kept and dropped counts by reason."""
        return {
            rule.name or type(rule).__name__: {"kept": rule.kept, **dict(rule.dropped)}
            for rule in self.rules
        }
