"""Output schemas: what a completion should contain, and how to read it.

Small models rarely emit clean JSON, so every schema reads JSON, JSON in code
fences, and (for text lists) numbered or bulleted lists, quoted lines and
chatty preambles. What cannot be read becomes a reject with a reason.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from importlib import import_module
from typing import Any

from pydantic import BaseModel, ValidationError

from textsynth.errors import RecipeError
from textsynth.schemas.base import (
    OutputSchema,
    Parsed,
    _clean_line,
    _texts_from_json,
    extract_json,
    split_list,
)
from textsynth.slots import SlotSchema
from textsynth.validation import message

__all__ = [
    "LabeledText",
    "OutputSchema",
    "Parsed",
    "PydanticSchema",
    "UtteranceList",
    "extract_json",
    "load_schema",
    "split_list",
]


class UtteranceList(OutputSchema):
    """A list of utterances for the job's label."""

    name = "utterances"

    def json_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {"utterances": {"type": "array", "items": {"type": "string"}}},
            "required": ["utterances"],
        }

    def parse(self, text: str) -> list[Parsed]:
        if not text.strip():
            return [Parsed("", error="empty_completion")]
        items = _texts_from_json(extract_json(text))
        if items is None:
            items = split_list(text)
        out = []
        for item in items:
            if isinstance(item, dict):
                item = item.get("text") or item.get("utterance")
            if not isinstance(item, str):
                out.append(Parsed(str(item), error="not_a_string"))
                continue
            cleaned = _clean_line(item)
            out.append(Parsed(cleaned) if cleaned else Parsed(item, error="empty_item"))
        return out or [Parsed(text, error="no_items")]


class PydanticSchema(OutputSchema):
    """Objects validated by a pydantic model with a ``text`` field."""

    def __init__(self, model: type[BaseModel], name: str | None = None):
        if "text" not in model.model_fields:
            raise RecipeError(f"schema {model.__name__} needs a 'text' field", field="schema")
        self.model = model
        self.name = name or model.__name__  # type: ignore[misc]

    def json_schema(self) -> dict[str, Any]:
        item = self.model.model_json_schema()
        return {
            "type": "object",
            "properties": {"items": {"type": "array", "items": item}},
            "required": ["items"],
            **({"$defs": item.pop("$defs")} if "$defs" in item else {}),
        }

    def parse(self, text: str) -> list[Parsed]:
        value = extract_json(text)
        items = _texts_from_json(value)
        if items is None:
            return [Parsed(text, error="no_json")]
        out = []
        for item in items:
            if isinstance(item, str):
                item = {"text": item}
            try:
                obj = self.model.model_validate(item)
            except ValidationError as exc:
                raw = item.get("text", "") if isinstance(item, dict) else str(item)
                # the reason counts rejects: it names the field, not the bad value
                out.append(Parsed(str(raw),
                                  error=f"invalid: {message(exc, show_input=False)}"))
                continue
            data = obj.model_dump()
            label = data.pop("label", None)
            out.append(Parsed(str(data.pop("text")).strip(), fields=data, label=label))
        return out or [Parsed(text, error="no_items")]


class _LabeledTextModel(BaseModel):
    text: str
    label: str


class LabeledText(PydanticSchema):
    """One text with the label the model gives it."""

    def __init__(self) -> None:
        super().__init__(_LabeledTextModel, "labeled_text")


def _slot_schema() -> OutputSchema:
    return SlotSchema()


_BUILTIN: dict[str, Callable[[], OutputSchema]] = {
    "utterances": UtteranceList,
    "labeled_text": LabeledText,
    "slots": _slot_schema,
}


def register_schema(name: str, cls: Callable[[], OutputSchema]) -> None:
    _BUILTIN[name] = cls


def import_reference(ref: str, field: str, what: str = "Class") -> Any:
    """The object ``module:name`` (``name`` may be dotted) names; any failure, including
    an error the module raises while it is imported, is a :class:`RecipeError`."""
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name.strip() or not attr.strip():
        raise RecipeError(f"expected 'module:{what}', got {ref!r}", field=field)
    if module_name.startswith("."):
        raise RecipeError(f"{ref!r}: a relative module name needs a package; give the full "
                          "module path", field=field)
    try:
        target: Any = import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise RecipeError(f"cannot import {ref!r}: {exc}", field=field) from None
    except Exception as exc:  # the module itself failed while it was imported
        raise RecipeError(f"cannot import {ref!r}: importing it raised "
                          f"{type(exc).__name__}: {exc}", field=field) from None
    return target


def load_schema(ref: str) -> OutputSchema:
    """A built-in schema by name, or a user pydantic model as ``module:Class``."""
    if ref in _BUILTIN:
        return _BUILTIN[ref]()
    if ":" not in ref:
        known = ", ".join(sorted(_BUILTIN))
        raise RecipeError(f"unknown schema '{ref}' (built-in: {known}; or module:Class)",
                          field="schema")
    target = import_reference(ref, "schema")
    if isinstance(target, type) and inspect.isabstract(target):
        raise RecipeError(f"'{ref}' is an abstract class; name a concrete one", field="schema")
    if isinstance(target, type) and issubclass(target, BaseModel):
        schema: OutputSchema = PydanticSchema(target, ref)
    elif isinstance(target, type) and issubclass(target, OutputSchema):
        try:
            schema = target()
        except Exception as exc:
            raise RecipeError(f"cannot create '{ref}': {type(exc).__name__}: {exc}",
                              field="schema") from None
    else:
        raise RecipeError(f"'{ref}' is not a pydantic model", field="schema")
    try:
        schema.json_schema()
    except Exception as exc:
        raise RecipeError(f"'{ref}' has no JSON schema: {type(exc).__name__}: {exc}",
                          field="schema") from None
    return schema
