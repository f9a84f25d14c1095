"""Quality rules: filters and deduplicators that run while a dataset is generated."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textsynth.quality.base import KEEP, QualityGate, Rule, Verdict
from textsynth.quality.dedup import ExactDedup
from textsynth.quality.filters import AssistantSpeakFilter, LengthFilter

if TYPE_CHECKING:
    from textsynth.recipe import Recipe

__all__ = ["KEEP", "QualityGate", "Rule", "Verdict", "build_gate"]


def build_gate(recipe: Recipe) -> QualityGate:
    """The rules a recipe asks for, cheapest first."""
    q = recipe.quality
    rules: list[Rule] = [LengthFilter(q.min_words, q.max_words, q.min_chars, q.max_chars)]
    if q.assistant_speak:
        rules.append(AssistantSpeakFilter())
    rules.append(ExactDedup())
    return QualityGate(rules)
