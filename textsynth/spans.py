"""Entity spans: one model and one matcher for every command.

A span is an entity value inside a text (``artist`` = "Queen" at characters 18-23), with
``text[start:end] == value``. The ``slots`` schema places the values a model names
(:func:`locate_spans`, :func:`find_values`); translate and paraphrase carry a source
row's spans through ``[value](entity)`` markup (:func:`markup`) and find them again in
the model's answer (:func:`relocate`). Every one of them matches a value the same way
(:func:`find_value`): whole words only, exact casing first, never over a span already
placed. Every command exports the spans as the typed ``entities`` column
(:data:`ENTITY_FEATURE`), optionally with BIO tags (:func:`bio_tags`).

>>> locate_spans("play road trip by Queen", [("playlist", "road trip"), ("artist", "Queen")])
[Span(start=5, end=14, entity='playlist', value='road trip'), Span(start=18, end=23, \
entity='artist', value='Queen')]
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "ENTITIES",
    "Span",
    "SpanError",
    "bio_labels",
    "bio_tags",
    "entities_feature",
    "find_value",
    "find_values",
    "locate_spans",
    "markup",
    "parse_markup",
    "relocate",
    "relocate_spans",
    "spans_from_row",
]

ENTITIES = "entities"  # the exported column, for every command
_MARKUP = re.compile(r"\[([^\[\]\n]+?)\]\(([^()\n]+?)\)")
_BARE = re.compile(r"\[([^\[\]\n]+?)\](?!\()")
_TOKEN = re.compile(r"\S+")


@dataclass(frozen=True)
class Span:
    """One entity: ``text[start:end] == value`` (``end`` is exclusive)."""

    start: int
    end: int
    entity: str
    value: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class SpanError(ValueError):
    """An entity cannot be placed in the text; ``reason`` is a short tag."""

    def __init__(self, reason: str, detail: str = ""):
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


def entities_feature() -> Any:
    """The feature of the ``entities`` column."""
    from textsynth.export.feature_types import List, Value

    return List({"start": Value("int32"), "end": Value("int32"),
                 "entity": Value("string"), "value": Value("string")})


# -- the matcher -------------------------------------------------------------------------
def _whole_word(text: str, start: int, end: int) -> bool:
    before = start == 0 or not text[start - 1].isalnum()
    after = end == len(text) or not text[end].isalnum()
    return before and after


def _occurrences(text: str, value: str) -> list[tuple[int, int]]:
    """Where ``value`` occurs: exact matches first, then case-insensitive ones.

    Regular expressions keep offsets into ``text`` itself (``str.casefold`` would not:
    "ß" folds to "ss")."""
    exact = [(m.start(), m.end()) for m in re.finditer(re.escape(value), text)]
    folded = [(m.start(), m.end()) for m in re.finditer(re.escape(value), text, re.I)]
    return exact + [o for o in folded if o not in exact]


def _free(spot: tuple[int, int], taken: Iterable[tuple[int, int]]) -> bool:
    return all(spot[1] <= a or spot[0] >= b for a, b in taken)


def find_value(text: str, value: str, taken: Iterable[tuple[int, int]] = ()
               ) -> tuple[int, int] | None:
    """The first whole-word occurrence of ``value`` that overlaps nothing in ``taken``.

    >>> find_value("room and bedroom", "room", [(0, 4)]) is None
    True
    """
    value = value.strip()
    if not value:
        return None
    taken = list(taken)
    return next((o for o in _occurrences(text, value)
                 if _whole_word(text, *o) and _free(o, taken)), None)


def locate_spans(text: str, entities: Iterable[tuple[str, str]]) -> list[Span]:
    """Character spans for ``(entity, value)`` pairs, sorted by start.

    Longer values are placed first, each at its first whole-word occurrence that
    does not overlap a span already placed (so "room" finds its own mention even
    when "living room" is also an entity). A value found only with other casing
    takes the casing of the text. Raises :class:`SpanError` with reason
    ``empty_entity_value``, ``entity_not_in_text``, ``entity_inside_word`` or
    ``overlapping_entities``.
    """
    pairs: list[tuple[str, str]] = []
    for entity, raw in entities:
        value = raw.strip()
        if not value:
            raise SpanError("empty_entity_value", entity)
        if (entity, value) not in pairs:
            pairs.append((entity, value))
    placed: list[Span] = []
    for entity, value in sorted(pairs, key=lambda p: -len(p[1])):
        spot = find_value(text, value, [(s.start, s.end) for s in placed])
        if spot is None:
            found = _occurrences(text, value)
            reason = ("entity_not_in_text" if not found else "overlapping_entities"
                      if any(_whole_word(text, *o) for o in found) else "entity_inside_word")
            raise SpanError(reason, f"{entity}={value!r}")
        placed.append(Span(spot[0], spot[1], entity, text[spot[0]:spot[1]]))
    return sorted(placed, key=lambda s: s.start)


def find_values(text: str, slot_values: Mapping[str, Sequence[str]]) -> list[Span]:
    """Spans for every declared slot value that occurs in ``text`` as whole words.

    Used when a model writes plain utterances instead of entities: longer values win
    over shorter ones they overlap ("living room" over "room"), each mention counts.

    >>> find_values("lights on in the Living Room", {"room": ["room", "living room"]})
    [Span(start=17, end=28, entity='room', value='Living Room')]
    """
    found = [(start, end, entity) for entity, values in slot_values.items() for value in values
             if value.strip() for start, end in _occurrences(text, value.strip())
             if _whole_word(text, start, end)]
    placed: list[Span] = []
    for start, end, entity in sorted(found, key=lambda f: (f[0] - f[1], f[0])):
        if _free((start, end), [(p.start, p.end) for p in placed]):
            placed.append(Span(start, end, entity, text[start:end]))
    return sorted(placed, key=lambda p: p.start)


def relocate_spans(text: str, spans: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Spans that still hold for ``text``; broken ones are placed again by value.

    A quality rule may rewrite a text after its spans were found; entities whose
    value is no longer in the text are dropped rather than pointing at wrong text.
    """
    if all(text[s["start"]:s["end"]] == s["value"] for s in spans):
        return [dict(s) for s in spans]
    kept: list[dict[str, Any]] = []
    for s in spans:
        try:
            trial = locate_spans(text, [(k["entity"], k["value"]) for k in [*kept, s]])
        except SpanError:
            continue
        kept = [t.to_dict() for t in trial]
    return kept


# -- markup: spans through a prompt and back ---------------------------------------------
def parse_markup(text: str) -> tuple[str, list[Span]]:
    """Plain text and spans from ``[value](entity)`` markup."""
    plain: list[str] = []
    spans: list[Span] = []
    pos = length = 0
    for m in _MARKUP.finditer(text):
        before = text[pos:m.start()]
        plain.append(before)
        length += len(before)
        value = m.group(1).strip()
        spans.append(Span(length, length + len(value), m.group(2).strip(), value))
        plain.append(value)
        length += len(value)
        pos = m.end()
    plain.append(text[pos:])
    return "".join(plain), spans


def markup(text: str, spans: Sequence[Span]) -> str:
    """``text`` with each span written as ``[value](entity)``."""
    out, pos = [], 0
    for s in sorted(spans, key=lambda s: s.start):
        out.append(text[pos:s.start])
        out.append(f"[{text[s.start:s.end]}]({s.entity})")
        pos = s.end
    out.append(text[pos:])
    return "".join(out)


def _entity_items(raw: Any) -> list[Any]:
    """An entity column as a list: JSON text, a ``{entity: value}`` mapping or a list."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw) if raw.strip() else None
        except ValueError:
            return []
    if isinstance(raw, dict):
        return [{"entity": k, "value": v} for k, v in raw.items()]
    return raw if isinstance(raw, list) else []


def spans_from_row(row: Mapping[str, Any]) -> tuple[str, list[Span]]:
    """A row's plain text and its spans.

    Spans come from an ``entities`` (or ``slots``) column, as a list of
    ``{entity|name|slot, value, start?, end?}`` or an ``{entity: value}`` mapping
    (JSON text or a value), or from ``[value](entity)`` markup in the text itself.
    Values without offsets are looked up in the text as whole words; ones not found
    are left out.
    """
    text = str(row["text"])
    raw = row.get("entities", row.get("slots"))
    items = _entity_items(raw)
    if not items:
        return parse_markup(text) if _MARKUP.search(text) else (text, [])
    spans: list[Span] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        entity = item.get("entity") or item.get("name") or item.get("slot")
        value = item.get("value")
        if not entity or not isinstance(value, str) or not value.strip():
            continue
        taken = [(s.start, s.end) for s in spans]
        start, end = item.get("start"), item.get("end")
        spot: tuple[int, int] | None = (start, end) if (
            isinstance(start, int) and isinstance(end, int) and text[start:end] == value
            and _free((start, end), taken)) else find_value(text, value, taken)
        if spot is not None:
            spans.append(Span(spot[0], spot[1], str(entity), text[spot[0]:spot[1]]))
    return text, sorted(spans, key=lambda s: s.start)


def relocate(answer: str, source: Sequence[Span]) -> tuple[str, list[Span], list[str]]:
    """Find the source's entities in a model's answer.

    Returns the plain text, the spans found, and the entity names that could not be
    found (markup with an unknown name counts as plain text). ``[value]`` without a
    name goes to the first missing entity, in source order; an entity without markup
    is looked for by its unchanged value, as whole words.
    """
    text, marked = parse_markup(answer)
    wanted = [s.entity for s in source]
    found: list[Span] = []
    for span in marked:
        if span.entity in wanted:
            wanted.remove(span.entity)
            found.append(span)
    if wanted and _BARE.search(text):
        text, found = _bare_markup(text, found, wanted)
    taken = [(s.start, s.end) for s in found]
    missing = []
    for name in wanted:
        value = next(s.value for s in source if s.entity == name)
        spot = find_value(text, value, taken)
        if spot is None:
            missing.append(name)
            continue
        taken.append(spot)
        found.append(Span(spot[0], spot[1], name, text[spot[0]:spot[1]]))
    return text, sorted(found, key=lambda s: s.start), missing


def _bare_markup(text: str, found: list[Span], wanted: list[str]) -> tuple[str, list[Span]]:
    """Give each ``[value]`` to the next entity in ``wanted`` (which it empties in turn)."""
    pieces: list[str] = []
    rebuilt: list[Span] = []
    shift: list[tuple[int, int]] = []  # (old position, characters removed before it)
    pos = plain_len = 0
    for m in _BARE.finditer(text):
        if not wanted:
            break
        pieces.append(text[pos:m.start()])
        plain_len += m.start() - pos
        value = m.group(1).strip()
        rebuilt.append(Span(plain_len, plain_len + len(value), wanted.pop(0), value))
        pieces.append(value)
        plain_len += len(value)
        shift.append((m.end(), m.end() - m.start() - len(value)))
        pos = m.end()
    pieces.append(text[pos:])
    moved = []
    for span in found:
        delta = sum(n for at, n in shift if at <= span.start)
        moved.append(Span(span.start - delta, span.end - delta, span.entity, span.value))
    return "".join(pieces), moved + rebuilt


# -- BIO tags ----------------------------------------------------------------------------
def bio_labels(entity_types: Iterable[str]) -> list[str]:
    """Tag names: ``O`` then ``B-x``, ``I-x`` for each entity type, sorted."""
    names = ["O"]
    for entity in sorted(set(entity_types)):
        names += [f"B-{entity}", f"I-{entity}"]
    return names


def bio_tags(text: str, spans: Sequence[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """Whitespace tokens of ``text`` and their BIO tags.

    A token belongs to the entity it overlaps (``"Queen,"`` is ``B-artist``); the
    first token of a span is ``B-``, the rest ``I-``.

    >>> bio_tags("play road trip now", [{"start": 5, "end": 14, "entity": "playlist"}])
    (['play', 'road', 'trip', 'now'], ['O', 'B-playlist', 'I-playlist', 'O'])
    """
    tokens, tags = [], []
    begun: set[int] = set()
    for match in _TOKEN.finditer(text):
        tokens.append(match.group())
        tag = "O"
        for i, span in enumerate(spans):
            if match.start() < span["end"] and match.end() > span["start"]:
                tag = f"{'I' if i in begun else 'B'}-{span['entity']}"
                begun.add(i)
                break
        tags.append(tag)
    return tokens, tags
