"""The quality-rule interface and the gate that runs rules during generation."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import ClassVar

from textsynth.example import Example

__all__ = ["KEEP", "QualityGate", "Rule", "Verdict"]


@dataclass(frozen=True)
class Verdict:
    """A rule's decision on one candidate.

    ``reason`` is a short machine-readable tag (``too_short``, ``near_duplicate``);
    ``detail`` is free text for people. ``text``, when set on a kept candidate,
    replaces its text (PII masking). The gate fills in ``rule``, the name of the
    rule that dropped the candidate.
    """

    keep: bool
    reason: str = ""
    detail: str = ""
    text: str | None = None
    rule: str = ""


KEEP = Verdict(True)


class Rule(ABC):
    """A filter or deduplicator. ``check`` decides; ``add`` learns accepted rows.

    Each rule counts what it kept and what it dropped, by reason. A rule that
    needs a model (a judge) sets ``needs_prepare`` and does its async work in
    :meth:`prepare`, which the engine awaits on a batch of candidates before it
    calls ``check`` on each of them.
    """

    name: ClassVar[str] = ""
    needs_prepare: ClassVar[bool] = False

    def __init__(self) -> None:
        self.kept = 0
        self.dropped: Counter[str] = Counter()
        self._withdrawn: list[tuple[str, str]] = []

    @abstractmethod
    def check(self, example: Example) -> Verdict:
        """Keep or drop ``example`` (never mutate it)."""

    def add(self, example: Example) -> None:  # noqa: B027 - stateless rules ignore it
        """Remember an accepted example (dedup and novelty rules use this)."""

    async def prepare(self, examples: Sequence[Example]) -> None:  # noqa: B027 - optional
        """Batch work (model calls) on candidates that ``check`` will see next."""

    def prime(self, texts: Sequence[str]) -> None:  # noqa: B027 - optional
        """Candidates ``check`` may see soon: a rule may compute what it needs of them in
        one batch now (the same values it would compute one by one)."""

    def withdraw(self, label: str, text: str) -> None:
        """Ask for an accepted ``(label, text)`` to be withdrawn (a cross-label conflict)."""
        self._withdrawn.append((label, text))

    def audit(self) -> list[tuple[str, str, str]]:
        """Accepted ``(label, text, why)`` rows to withdraw once every quota is full (an
        end-of-run audit); an empty list when the rule has nothing (more) to say."""
        return []

    def remove_label_conflicts(self) -> list[tuple[str, str]]:
        """Accepted ``(label, text)`` pairs that must now be withdrawn; drains the list."""
        out, self._withdrawn = self._withdrawn, []
        return out

    def __call__(self, example: Example) -> Verdict:
        verdict = self.check(example)
        if verdict.keep:
            self.kept += 1
        else:
            self.dropped[verdict.reason] += 1
        return verdict


class QualityGate:
    """Runs rules in order (cheap ones first); the first drop wins.

    >>> gate = QualityGate([LengthFilter(min_words=2)])  # doctest: +SKIP
    >>> await gate.prepare(candidates)  # needed when gate.needs_prepare  # doctest: +SKIP
    >>> verdict = gate.check(candidate)  # doctest: +SKIP
    >>> if verdict.keep: gate.accept(candidate)  # doctest: +SKIP
    """

    def __init__(self, rules: Iterable[Rule]):
        self.rules = list(rules)

    @property
    def primes(self) -> bool:
        """Whether a rule computes something ahead for candidates to come (:meth:`prime`)."""
        return any(type(rule).prime is not Rule.prime for rule in self.rules)

    def prime(self, texts: Sequence[str]) -> None:
        """Candidates that will be checked soon (answers just arrived): rules that can
        compute what they need of them in one batch do it now."""
        for rule in self.rules:
            rule.prime(texts)

    @property
    def needs_prepare(self) -> bool:
        return any(rule.needs_prepare for rule in self.rules)

    async def prepare(self, examples: Sequence[Example]) -> None:
        """Let model-backed rules judge a batch of candidates in one go.

        Each such rule sees only the candidates that the rules before it would
        keep (checked without counting), so no model call is spent on a
        candidate that a cheap filter drops anyway.
        """
        for position, rule in enumerate(self.rules):
            if not rule.needs_prepare:
                continue
            earlier = self.rules[:position]
            survivors = [e for e in (_survivor(x, earlier) for x in examples) if e is not None]
            if survivors:
                await rule.prepare(survivors)

    def check(self, example: Example) -> Verdict:
        text = example.text
        for rule in self.rules:
            verdict = rule(example)
            if not verdict.keep:
                return Verdict(False, verdict.reason, verdict.detail, rule=_name(rule))
            if verdict.text is not None and verdict.text != example.text:
                example.text = verdict.text
        return Verdict(True, text=example.text if example.text != text else None)

    def accept(self, example: Example) -> None:
        for rule in self.rules:
            rule.add(example)

    def withdrawals(self) -> list[tuple[str, str]]:
        """Accepted ``(label, text)`` pairs to withdraw after the last check (conflicts)."""
        out: list[tuple[str, str]] = []
        for rule in self.rules:
            out.extend(rule.remove_label_conflicts())
        return out

    def audit(self) -> list[tuple[str, str, str, str]]:
        """Accepted rows the rules withdraw once every quota is full:
        ``(rule, label, text, why)``; empty when none has anything (more) to withdraw."""
        return [(_name(rule), label, text, why) for rule in self.rules
                for label, text, why in rule.audit()]

    def stats(self) -> dict[str, dict[str, int]]:
        """Per rule: kept and dropped counts by reason."""
        return {_name(rule): {"kept": rule.kept, **dict(rule.dropped)} for rule in self.rules}


def _name(rule: Rule) -> str:
    return rule.name or type(rule).__name__


def _survivor(example: Example, rules: Sequence[Rule]) -> Example | None:
    """``example`` as ``rules`` would pass it on (masked text), or None if one drops it."""
    for rule in rules:
        verdict = rule.check(example)
        if not verdict.keep:
            return None
        if verdict.text is not None:
            example = replace(example, text=verdict.text)
    return example
