"""Filters: rules that judge one candidate on its own (or against the seeds)."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal

from textsynth.errors import RecipeError
from textsynth.example import Example
from textsynth.quality.base import KEEP, Rule, Verdict
from textsynth.quality.meta import MetaTextFilter
from textsynth.quality.normalize import word_tokens
from textsynth.schemas import import_reference

__all__ = [
    "CustomFilter",
    "LanguageFilter",
    "LengthFilter",
    "MetaTextFilter",
    "PIIFilter",
    "RegexFilter",
    "SeedLeakFilter",
    "load_callable",
]

_log = logging.getLogger("textsynth")


class LengthFilter(Rule):
    """Bounds on words and characters (a word of an unspaced script is one character)."""

    name = "length"

    def __init__(self, min_words: int = 1, max_words: int = 60, min_chars: int = 1,
                 max_chars: int = 400):
        super().__init__()
        self.min_words, self.max_words = min_words, max_words
        self.min_chars, self.max_chars = min_chars, max_chars

    def check(self, example: Example) -> Verdict:
        words = len(example.text.split())
        if words < self.min_words:  # "明天北京的天气怎么样" is one spaced word, ten words
            words = max(words, len(word_tokens(example.text)))
        chars = len(example.text)
        if words < self.min_words or chars < self.min_chars:
            return Verdict(False, "too_short", f"{words} words, {chars} chars")
        if words > self.max_words or chars > self.max_chars:
            return Verdict(False, "too_long", f"{words} words, {chars} chars")
        return KEEP


def compile_patterns(patterns: Sequence[str], field: str) -> list[re.Pattern[str]]:
    """Compile regexes, naming the recipe field of any that is invalid."""
    out = []
    for i, pattern in enumerate(patterns):
        try:
            out.append(re.compile(pattern))
        except re.error as exc:
            raise RecipeError(f"not a valid regular expression {pattern!r}: {exc}",
                              field=f"{field}.{i}") from None
    return out


class RegexFilter(Rule):
    """``deny``: drop what matches any pattern; ``allow``: keep only what matches one."""

    name = "regex"

    def __init__(self, allow: Sequence[str] = (), deny: Sequence[str] = ()):
        super().__init__()
        self.allow = compile_patterns(allow, "quality.allow")
        self.deny = compile_patterns(deny, "quality.deny")

    def check(self, example: Example) -> Verdict:
        for pattern in self.deny:
            match = pattern.search(example.text)
            if match:
                return Verdict(False, "denied", f"{pattern.pattern!r} matched {match.group(0)!r}")
        if self.allow and not any(p.search(example.text) for p in self.allow):
            return Verdict(False, "not_allowed", "matches no allow pattern")
        return KEEP


class LanguageFilter(Rule):
    """The candidate must be in its slot's language (lingua); short texts are not judged,
    nor are the rows of a language lingua does not know (``unchecked``, said once in the
    log): Amharic or Malayalam rows are kept as they are, where a code that is no
    language at all ("ge") is a :class:`RecipeError`."""

    name = "language"

    def __init__(self, languages: Iterable[str], min_ratio: float = 0.5, min_words: int = 3):
        from textsynth.languages import LANGUAGE_NAMES, base_code, language_name
        from textsynth.quality.language import LanguageIdentifier, identifiable

        super().__init__()
        self.min_words = min_words
        self.min_ratio = min_ratio
        self._identifiers: dict[str, LanguageIdentifier] = {}
        self.unchecked: set[str] = set()
        for code in languages:  # built now, so an unknown code fails before generation
            if base_code(code) in LANGUAGE_NAMES and not identifiable(code):
                if code not in self.unchecked:
                    _log.warning("quality.language_id: language identification does not know "
                                 "%s (%s): its rows are not checked for their language",
                                 language_name(code), code)
                self.unchecked.add(code)
            else:
                self._identifier(code)

    def _identifier(self, code: str) -> Any:
        from textsynth.quality.language import LanguageIdentifier

        if code not in self._identifiers:
            self._identifiers[code] = LanguageIdentifier([code], self.min_ratio)
        return self._identifiers[code]

    def check(self, example: Example) -> Verdict:
        if len(word_tokens(example.text)) < self.min_words or example.language in self.unchecked:
            return KEEP
        guess = self._identifier(example.language).guess(example.text)
        if guess.best == example.language.split("-")[0].lower():
            return KEEP
        if guess.expected_score >= self.min_ratio * guess.best_score:
            return KEEP
        return Verdict(False, "wrong_language",
                       f"looks like '{guess.best}' ({guess.best_score:.2f}), "
                       f"expected '{example.language}' ({guess.expected_score:.2f})")


class PIIFilter(Rule):
    """E-mail addresses, phone, card and account numbers, IBANs: reject or mask."""

    name = "pii"

    def __init__(self, mode: Literal["reject", "mask"] = "reject"):
        super().__init__()
        self.mode = mode

    def check(self, example: Example) -> Verdict:
        from textsynth.quality.pii import find_pii, mask_pii

        found = find_pii(example.text)
        if not found:
            return KEEP
        kinds = ", ".join(sorted({m.kind for m in found}))
        if self.mode == "mask":
            return Verdict(True, "pii_masked", kinds, text=mask_pii(example.text, found))
        return Verdict(False, "pii", kinds)


class SeedLeakFilter(Rule):
    """No seed (real) example may be copied: drops candidates too close to any seed.

    Too close means ROUGE-L F1 at or above ``threshold``, or a seed of five words
    or more found, in order, inside the candidate. The reason's detail names the
    seed by label and position, never by its text, so the rejects do not repeat it.
    """

    name = "seed_leak"

    def __init__(self, seeds: Mapping[str, Sequence[str]], threshold: float = 0.8,
                 contained_words: int = 5):
        from textsynth.quality.rouge import RougePool

        super().__init__()
        self.threshold = threshold
        self.contained_words = contained_words
        self._where = [(label, i) for label, texts in seeds.items() for i in range(len(texts))]
        self.pool = RougePool([t for texts in seeds.values() for t in texts])

    def check(self, example: Example) -> Verdict:
        match = self.pool.closest(example.text, cutoff=self.threshold)
        if match is None:
            match = self.pool.covering(example.text, self.contained_words, recall=1.0)
        if match is None:
            return KEEP
        label, i = self._where[match.index]
        return Verdict(False, "seed_leak",
                       f"ROUGE-L {match.f1:.2f} with seed #{i + 1} of '{label}'")


CheckFunction = Callable[[Example], Any]


def load_callable(ref: str, field: str = "quality.custom") -> CheckFunction:
    """Import ``module:function`` (a RecipeError names the field if that fails)."""
    target = import_reference(ref, field, "function")
    if not callable(target):
        raise RecipeError(f"{ref!r} is not callable", field=field)
    check: CheckFunction = target
    return check


class CustomFilter(Rule):
    """A user function ``f(example)``: True/None keeps; False or a reason string drops;
    a :class:`Verdict` is used as is."""

    def __init__(self, function: CheckFunction, name: str | None = None,
                 field: str = "quality.custom"):
        super().__init__()
        self.function = function
        self.field = field
        self.label: str = name or str(getattr(function, "__name__", "custom"))

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"custom:{self.label}"

    def check(self, example: Example) -> Verdict:
        try:
            result = self.function(example)
        except Exception as exc:  # a bug in the user's check: the run stops and says so
            raise RecipeError(f"custom check {self.label} raised {type(exc).__name__}: {exc} "
                              f"(on the {example.label!r} text {example.text[:60]!r}); fix it "
                              "and run again: the completions are kept",
                              field=self.field) from None
        if isinstance(result, Verdict):
            return result
        if result is None or result is True:
            return KEEP
        if result is False:
            return Verdict(False, self.label)
        if isinstance(result, str):
            return Verdict(False, result)
        raise RecipeError(f"custom filter {self.label} returned {type(result).__name__}; "
                          "expected bool, str, None or Verdict", field=self.field)
