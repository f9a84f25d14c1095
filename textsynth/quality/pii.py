"""Personal data in generated text: e-mail, phone, card and account numbers, IBAN.

Patterns are checked with validators where one exists (Luhn for cards, mod-97
for IBANs), so dates, times, prices and quantities are not mistaken for numbers
that identify a person.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["PIIMatch", "find_pii", "mask_pii"]


@dataclass(frozen=True)
class PIIMatch:
    kind: str
    start: int
    end: int


_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[^\W\d_]{2,}(?!\w)")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,30}\b")
_DIGITS = re.compile(r"(?<![\w+])\+?\d(?:[\d \-.()/]{6,26})\d(?!\w)")
_ACCOUNT = re.compile(
    r"\b(?:account|acct|a/c|konto|compte|cuenta|conto)\b[^\d\n]{0,24}(\d[\d \-]{4,22}\d)", re.I)
_SSN = re.compile(r"\b\d{3}-\d{2}-\d{4}\b")
_DATE_LIKE = re.compile(r"^\d{1,4}([./-])\d{1,2}\1\d{1,4}$")
_PHONE_WORD = re.compile(
    r"(call|phone|tel|mobile|cell|ring|text|whatsapp|fax|number|telefon|téléphone|teléfono"
    r"|telefono|电话|電話|номер)", re.I)
_DATE_INSIDE = re.compile(
    r"\b(1[89]|20)\d\d-[01]\d-[0-3]\d\b|\b[0-3]?\d[./][01]?\d[./](19|20)?\d\d\b")
_YEAR = re.compile(r"^(1[89]|20|21)\d\d$")
_HAS_DIGIT = re.compile(r"\d")

MASKS = {"email": "[EMAIL]", "iban": "[IBAN]", "card": "[CARD_NUMBER]",
         "account": "[ACCOUNT_NUMBER]", "ssn": "[SSN]", "phone": "[PHONE]"}


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _iban_ok(raw: str) -> bool:
    iban = raw.replace(" ", "")
    if not 15 <= len(iban) <= 34:
        return False
    moved = iban[4:] + iban[:4]
    number = "".join(str(int(c, 36)) for c in moved)
    return int(number) % 97 == 1


def _number_kind(raw: str, before: str) -> str | None:
    """``card`` or ``phone`` for a run of digits and separators, or None.

    A bare run of digits is a phone number only after a word such as "call" or
    "phone" (``before`` is the text in front of it): "code 2142000759" is not.
    """
    digits = re.sub(r"\D", "", raw)
    if _DATE_LIKE.match(raw.strip()) or _DATE_INSIDE.search(raw):
        return None
    if 13 <= len(digits) <= 19 and _luhn(digits) and not raw.startswith("+"):
        return "card"
    if raw.startswith("+") and 8 <= len(digits) <= 15:
        return "phone"
    groups = [g for g in re.split(r"[ \-.()/]+", raw) if g]
    if all(_YEAR.match(g) for g in groups):
        return None  # "1990 2000 2010" is a list of years
    if 9 <= len(digits) <= 15 and len(groups) >= 2:
        return "phone"
    if 10 <= len(digits) <= 15 and _PHONE_WORD.search(before[-30:]):
        return "phone"
    return None


def find_pii(text: str) -> list[PIIMatch]:
    """Non-overlapping personal-data spans in ``text``, left to right."""
    found: list[PIIMatch] = []
    has_at = "@" in text
    if not has_at and not _HAS_DIGIT.search(text):
        return found  # every kind needs an "@" or a digit: most utterances have neither

    def free(start: int, end: int) -> bool:
        return all(end <= m.start or start >= m.end for m in found)

    for m in _EMAIL.finditer(text) if has_at else ():
        found.append(PIIMatch("email", m.start(), m.end()))
    for m in _IBAN.finditer(text):
        if free(m.start(), m.end()) and _iban_ok(m.group(0)):
            found.append(PIIMatch("iban", m.start(), m.end()))
    for m in _SSN.finditer(text):
        if free(m.start(), m.end()):
            found.append(PIIMatch("ssn", m.start(), m.end()))
    for m in _ACCOUNT.finditer(text):
        if free(m.start(1), m.end(1)) and len(re.sub(r"\D", "", m.group(1))) >= 6:
            found.append(PIIMatch("account", m.start(1), m.end(1)))
    for m in _DIGITS.finditer(text):
        kind = _number_kind(m.group(0), text[: m.start()])
        if kind and free(m.start(), m.end()):
            found.append(PIIMatch(kind, m.start(), m.end()))
    return sorted(found, key=lambda m: m.start)


def mask_pii(text: str, matches: list[PIIMatch] | None = None) -> str:
    """``text`` with each personal-data span replaced by a tag such as ``[EMAIL]``.

    >>> mask_pii("mail jo@example.org or call +44 20 7946 0958")
    'mail [EMAIL] or call [PHONE]'
    """
    matches = find_pii(text) if matches is None else matches
    for m in sorted(matches, key=lambda m: m.start, reverse=True):
        text = text[: m.start] + MASKS[m.kind] + text[m.end:]
    return text
