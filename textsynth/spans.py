"""Slot spans: read them from a row, mark them up for a prompt, find them in new text.

A span is a slot value inside a text (``artist`` = "Daft Punk" at characters 5-14).
Prompts carry spans as ``[value](name)`` markup (the Rasa training-data style) so a
translation or paraphrase can keep them; :func:`relocate` reads the markup back from
the model's answer, falls back to finding an unchanged value in plain text, and says
which slots were lost.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Span", "markup", "parse_markup", "relocate", "spans_from_row", "spans_to_json"]

_MARKUP = re.compile(r"\[([^\[\]\n]+?)\]\(([^()\n]+?)\)")
_BARE = re.compile(r"\[([^\[\]\n]+?)\](?!\()")


@dataclass(frozen=True)
class Span:
    """One slot value and where it sits in the text (``end`` is exclusive)."""

    name: str
    value: str
    start: int
    end: int


def parse_markup(text: str) -> tuple[str, list[Span]]:
    """Plain text and spans from ``[value](name)`` markup."""
    plain: list[str] = []
    spans: list[Span] = []
    pos = length = 0
    for m in _MARKUP.finditer(text):
        before = text[pos:m.start()]
        plain.append(before)
        length += len(before)
        value = m.group(1).strip()
        spans.append(Span(m.group(2).strip(), value, length, length + len(value)))
        plain.append(value)
        length += len(value)
        pos = m.end()
    plain.append(text[pos:])
    return "".join(plain), spans


def markup(text: str, spans: list[Span]) -> str:
    """``text`` with each span written as ``[value](name)``."""
    out, pos = [], 0
    for s in sorted(spans, key=lambda s: s.start):
        out.append(text[pos:s.start])
        out.append(f"[{text[s.start:s.end]}]({s.name})")
        pos = s.end
    out.append(text[pos:])
    return "".join(out)


def _locate(text: str, value: str, taken: list[tuple[int, int]]) -> tuple[int, int] | None:
    lowered, needle = text.casefold(), value.casefold()
    start = lowered.find(needle)
    while start >= 0:
        end = start + len(value)
        if all(end <= a or start >= b for a, b in taken):
            return start, end
        start = lowered.find(needle, start + 1)
    return None


def spans_from_row(row: dict[str, Any]) -> tuple[str, list[Span]]:
    """A row's plain text and its spans.

    Spans come from a ``slots`` (or ``entities``) column, as a list of
    ``{name|entity|slot, value, start?, end?}`` or a ``{name: value}`` mapping
    (JSON text or a value), or from ``[value](name)`` markup in the text itself.
    Values without offsets are looked up in the text; ones not found are left out.
    """
    text = str(row["text"])
    raw = row.get("slots", row.get("entities"))
    if isinstance(raw, str):
        try:
            raw = json.loads(raw) if raw.strip() else None
        except ValueError:
            raw = None
    if not raw:
        return parse_markup(text) if _MARKUP.search(text) else (text, [])
    items = [{"name": k, "value": v} for k, v in raw.items()] if isinstance(raw, dict) else raw
    spans: list[Span] = []
    taken: list[tuple[int, int]] = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        name = item.get("name") or item.get("entity") or item.get("slot")
        value = item.get("value")
        if not name or not isinstance(value, str) or not value:
            continue
        start, end = item.get("start"), item.get("end")
        if not (isinstance(start, int) and isinstance(end, int) and text[start:end] == value):
            found = _locate(text, value, taken)
            if found is None:
                continue
            start, end = found
        taken.append((start, end))
        spans.append(Span(str(name), text[start:end], start, end))
    return text, sorted(spans, key=lambda s: s.start)


def relocate(answer: str, source: list[Span]) -> tuple[str, list[Span], list[str]]:
    """Find the source's slots in a model's answer.

    Returns the plain text, the spans found, and the names of slots that could not
    be found (markup with an unknown name counts as plain text).
    """
    text, marked = parse_markup(answer)
    wanted = [s.name for s in source]
    found: list[Span] = []
    for span in marked:
        if span.name in wanted:
            wanted.remove(span.name)
            found.append(span)
    # "[value]" without a name: give it to the first missing slot, in source order
    if wanted and _BARE.search(text):
        pieces, pos, plain_len, rebuilt = [], 0, 0, []
        shift: list[tuple[int, int]] = []  # (old position, characters removed before it)
        for m in _BARE.finditer(text):
            if not wanted:
                break
            pieces.append(text[pos:m.start()])
            plain_len += m.start() - pos
            value = m.group(1).strip()
            rebuilt.append(Span(wanted.pop(0), value, plain_len, plain_len + len(value)))
            pieces.append(value)
            plain_len += len(value)
            shift.append((m.end(), m.end() - m.start() - len(value)))
            pos = m.end()
        pieces.append(text[pos:])
        found = [_shift(s, shift) for s in found] + rebuilt
        text = "".join(pieces)
    taken = [(s.start, s.end) for s in found]
    missing = []
    for name in wanted:  # no markup: look for the unchanged value
        value = next(s.value for s in source if s.name == name)
        spot = _locate(text, value, taken)
        if spot is None:
            missing.append(name)
            continue
        taken.append(spot)
        found.append(Span(name, text[spot[0]:spot[1]], *spot))
    return text, sorted(found, key=lambda s: s.start), missing


def _shift(span: Span, removed: list[tuple[int, int]]) -> Span:
    delta = sum(n for pos, n in removed if pos <= span.start)
    return Span(span.name, span.value, span.start - delta, span.end - delta)


def spans_to_json(spans: list[Span]) -> str:
    return json.dumps([asdict(s) for s in spans], ensure_ascii=False)
