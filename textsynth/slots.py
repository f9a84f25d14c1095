"""Utterances with slots: text, intent, and entities located as character spans.

The model names each entity by type and value; textsynth finds the value in the
text (:func:`textsynth.spans.locate_spans`) and stores ``(start, end, entity, value)``
with ``text[start:end] == value``. A candidate whose values are missing from the
text, sit inside a word, or overlap one another is rejected with that reason, never
stored with a guessed span.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from textsynth.schemas.base import OutputSchema, Parsed, split_list
from textsynth.spans import SpanError, entities_feature, find_values, locate_spans

if TYPE_CHECKING:
    from textsynth.recipe import Recipe

__all__ = ["SlotSchema"]

_TEXT_KEYS = ("text", "utterance", "sentence")
_ENTITY_KEYS = ("entities", "slots", "entity")
_TYPE_KEYS = ("entity", "type", "name", "slot")
_INNER_NUMBER = re.compile(r"^\s*\d{1,3}[.)]\s+")
_LABELLED_LINE = re.compile(
    r"^(?:(?:example|request|utterance|sentence)\s*\d*\s*[:.)-]|\[\d{1,3}\])\s*", re.I)


def _json_values(text: str) -> list[Any]:
    """Every top-level JSON object or array in ``text`` (JSON, JSON lines, fenced)."""
    decoder = json.JSONDecoder()
    values: list[Any] = []
    pos = 0
    while True:
        starts = [i for i in (text.find("{", pos), text.find("[", pos)) if i >= 0]
        if not starts:
            return values
        start = min(starts)
        try:
            value, end = decoder.raw_decode(text, start)
        except ValueError:
            pos = start + 1
            continue
        values.append(value)
        pos = end


def _items(values: list[Any]) -> list[Any]:
    items: list[Any] = []
    for value in values:
        if isinstance(value, list):
            items.extend(value)
        elif isinstance(value, dict) and not any(k in value for k in _TEXT_KEYS):
            nested = [v for v in value.values() if isinstance(v, list)]
            items.extend(nested[0] if nested else [value])
        else:
            items.append(value)
    return items


def _pairs(raw: Any) -> list[tuple[str, str]]:
    """Entities as ``(type, value)``: a mapping, or a list of objects or pairs."""
    if raw is None:
        return []
    if isinstance(raw, dict):
        if any(k in raw for k in _TYPE_KEYS) and "value" in raw:
            raw = [raw]
        else:
            out = []
            for key, value in raw.items():
                values = value if isinstance(value, list) else [value]
                out += [(str(key), _scalar(v)) for v in values]
            return out
    if not isinstance(raw, list):
        raise SpanError("bad_entities", type(raw).__name__)
    out = []
    for item in raw:
        if isinstance(item, dict):
            kind = next((item[k] for k in _TYPE_KEYS if k in item), None)
            value = item.get("value", item.get("text"))
            if kind is None or value is None:
                raise SpanError("bad_entities", json.dumps(item, ensure_ascii=False)[:80])
            out.append((str(kind), _scalar(value)))
        elif isinstance(item, list | tuple) and len(item) == 2:
            out.append((str(item[0]), _scalar(item[1])))
        else:
            raise SpanError("bad_entities", str(item)[:80])
    return out


def _scalar(value: Any) -> str:
    if isinstance(value, dict | list):
        raise SpanError("bad_entities", f"value {value!r}")
    return str(value)


def _intent_key(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


class SlotSchema(OutputSchema):
    """Built-in ``slots`` schema: ``{"text", "intent", "entities"}`` per utterance.

    Entities may come as ``{"room": "kitchen"}`` or ``[{"entity": "room", "value":
    "kitchen"}]``. Bound to a recipe (:meth:`for_recipe`), entity types must be the
    recipe's slot types and an intent is matched to the recipe's labels; an intent
    that names no label is ignored (the job's label stands).

    Small models often answer with a plain list of utterances instead of JSON; then
    (and for an object without ``entities``) each utterance is annotated with the
    declared slot values it contains, and one that contains none is rejected
    (``no_entity_found``), so no row carries a mention left unannotated by guesswork.
    """

    name = "slots"

    def __init__(self, slots: Mapping[str, Sequence[str]] | Sequence[str] = (),
                 labels: Sequence[str] = ()):
        self.slot_values: dict[str, Sequence[str]] = (
            dict(slots) if isinstance(slots, Mapping) else {key: () for key in slots})
        self.slot_types = list(self.slot_values)
        self.labels = {_intent_key(label): label for label in labels}

    def for_recipe(self, recipe: Recipe) -> SlotSchema:
        return SlotSchema(recipe.slots, list(recipe.labels))

    def json_schema(self) -> dict[str, Any]:
        entity: dict[str, Any] = {"type": "string"}
        if self.slot_types:
            entity["enum"] = self.slot_types
        item = {
            "type": "object",
            "properties": {
                "text": {"type": "string"},
                "intent": {"type": "string"},
                "entities": {"type": "array", "items": {
                    "type": "object",
                    "properties": {"entity": entity, "value": {"type": "string"}},
                    "required": ["entity", "value"]}},
            },
            "required": ["text", "entities"],
        }
        return {"type": "object", "properties": {"items": {"type": "array", "items": item}},
                "required": ["items"]}

    def dataset_features(self) -> dict[str, Any]:
        """Columns this schema adds to a dataset (``datasets`` features)."""
        return {"entities": entities_feature()}

    def parse(self, text: str) -> list[Parsed]:
        if not text.strip():
            return [Parsed("", error="empty_completion")]
        items = _items(_json_values(text))
        if any(isinstance(item, dict) for item in items) or not any(self.slot_values.values()):
            return [self._candidate(item) for item in items] or [Parsed(text, error="no_json")]
        # a plain list (or a JSON list of strings): annotate with the declared values
        lines = [i.strip() for i in items if isinstance(i, str) and i.strip()]
        if not lines:
            plain = "\n".join(_LABELLED_LINE.sub("", ln.strip()) for ln in text.splitlines())
            lines = split_list(plain)
        return [self._annotated(line) for line in lines] or [Parsed(text, error="no_items")]

    def _annotated(self, utterance: str) -> Parsed:
        # leftovers of list markup: "2. 2. text", '"1. text"', "**1. text**"
        utterance = _INNER_NUMBER.sub("", utterance.strip("*_ ")).strip("*_ ")
        spans = find_values(utterance, self.slot_values)
        if not spans:
            return Parsed(utterance, error="no_entity_found")
        return Parsed(utterance, fields={"entities": [s.to_dict() for s in spans]})

    def _candidate(self, item: Any) -> Parsed:
        if not isinstance(item, dict):
            return Parsed(str(item), error="not_an_object")
        raw_text = next((item[k] for k in _TEXT_KEYS if isinstance(item.get(k), str)), None)
        if raw_text is None or not raw_text.strip():
            return Parsed(json.dumps(item, ensure_ascii=False), error="no_text")
        utterance = raw_text.strip()
        if not any(k in item for k in _ENTITY_KEYS) and any(self.slot_values.values()):
            found = self._annotated(utterance)
            found.label = self._label(item.get("intent"))
            return found
        try:
            pairs = _pairs(next((item[k] for k in _ENTITY_KEYS if k in item), None))
            unknown = sorted({t for t, _ in pairs} - set(self.slot_types))
            if self.slot_types and unknown:
                raise SpanError("unknown_entity_type", ", ".join(unknown))
            spans = locate_spans(utterance, pairs)
        except SpanError as exc:
            return Parsed(utterance, error=exc.reason)
        return Parsed(utterance, fields={"entities": [s.to_dict() for s in spans]},
                      label=self._label(item.get("intent")))

    def _label(self, intent: Any) -> str | None:
        if not isinstance(intent, str) or not intent.strip():
            return None
        key = _intent_key(intent)
        return self.labels.get(key, None if self.labels else key)
