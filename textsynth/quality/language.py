"""Language identification with lingua, tuned for short utterances.

Short texts are ambiguous ("play Daft Punk" is as German as it is English), so a
candidate is dropped only when another language is clearly more likely than
every expected one; scripts decide at once (a Chinese sentence is not English).
The detector knows the expected languages plus the world's most written ones,
loaded lazily, which keeps memory near 300 MB instead of 1.3 GB for all 75.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from textsynth._deps import require
from textsynth.errors import RecipeError
from textsynth.languages import LANGUAGE_NAMES, base_code

__all__ = ["COMMON_LANGUAGES", "LanguageGuess", "LanguageIdentifier", "identifiable"]

COMMON_LANGUAGES = (
    "en", "es", "fr", "de", "it", "pt", "nl", "ru", "zh", "ja", "ko", "ar", "hi", "tr", "pl",
    "sv", "id", "vi", "uk",
)


def _lingua() -> Any:
    return require("lingua", "language identification")


@functools.lru_cache(maxsize=8)
def _detector(codes: tuple[str, ...]) -> Any:
    lingua = _lingua()
    languages = {_language(lingua, code) for code in codes}
    return lingua.LanguageDetectorBuilder.from_languages(*languages).build()


# codes lingua knows under another name: plain Norwegian is mostly written as Bokmål
_LINGUA_CODES = {"no": "nb"}


def identifiable(code: str) -> bool:
    """Whether lingua knows the language of ``code`` (it knows 75; Amharic, Burmese,
    Malayalam, Nepali and some 30 more of :data:`~textsynth.languages.LANGUAGE_NAMES` it
    does not)."""
    base = base_code(code)
    lingua = _lingua()
    return hasattr(lingua.IsoCode639_1, _LINGUA_CODES.get(base, base).upper())


def _language(lingua: Any, code: str) -> Any:
    base = base_code(code)
    try:
        iso = getattr(lingua.IsoCode639_1, _LINGUA_CODES.get(base, base).upper())
        return lingua.Language.from_iso_code_639_1(iso)
    except (AttributeError, ValueError):
        known = "" if base in LANGUAGE_NAMES else " and not a language code textsynth knows"
        raise RecipeError(f"language '{code}' is not known to language identification"
                          f"{known} (use an ISO 639-1 code such as 'de', or set "
                          "quality.language_id: false)", field="language") from None


class LanguageGuess:
    """The most likely language and how the expected ones compare to it."""

    def __init__(self, best: str, best_score: float, expected_score: float):
        self.best = best
        self.best_score = best_score
        self.expected_score = expected_score

    def __repr__(self) -> str:
        return (f"LanguageGuess({self.best!r}, {self.best_score:.2f}, "
                f"expected {self.expected_score:.2f})")


class LanguageIdentifier:
    """Decides whether a text is in one of the ``expected`` languages (ISO 639-1 codes).

    >>> LanguageIdentifier(["en"]).matches("Wie wird das Wetter morgen?")  # doctest: +SKIP
    False
    """

    def __init__(self, expected: Sequence[str], min_ratio: float = 0.5):
        self.expected = [_LINGUA_CODES.get(base_code(c), base_code(c)) for c in expected]
        self.min_ratio = min_ratio
        self._codes = tuple(sorted({*self.expected, *COMMON_LANGUAGES}))
        lingua = _lingua()
        self._expected = {_language(lingua, c) for c in self.expected}

    def guess(self, text: str) -> LanguageGuess:
        values = _detector(self._codes).compute_language_confidence_values(text)
        best = values[0]
        expected = max((v.value for v in values if v.language in self._expected), default=0.0)
        return LanguageGuess(best.language.iso_code_639_1.name.lower(), best.value, expected)

    def matches(self, text: str) -> bool:
        """True unless another language is clearly (``min_ratio``) more likely."""
        g = self.guess(text)
        return g.best in self.expected or g.expected_score >= self.min_ratio * g.best_score
