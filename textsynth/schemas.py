"""Output schemas: what a completion should contain, and how to read it.

Small models rarely emit clean JSON, so every schema reads JSON, JSON in code
fences, and (for text lists) numbered or bulleted lists, quoted lines and
chatty preambles. What cannot be read becomes a reject with a reason.
"""

from __future__ import annotations

import inspect
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import import_module
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ValidationError

from textsynth.errors import RecipeError

if TYPE_CHECKING:
    from textsynth.recipe import Recipe

__all__ = [
    "Example",
    "LabeledText",
    "OutputSchema",
    "Parsed",
    "PydanticSchema",
    "UtteranceList",
    "extract_json",
    "load_schema",
    "split_list",
]


@dataclass
class Example:
    """One dataset row: the text, its label, structured fields and provenance."""

    text: str
    label: str
    language: str = "en"
    fields: dict[str, Any] = field(default_factory=dict)
    template: str = ""
    template_sha: str = ""
    model: str = ""
    attributes: dict[str, str] = field(default_factory=dict)
    seed: int = 0
    request_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The row as a plain dict (shallow: ``fields`` and ``attributes`` are shared)."""
        return dict(self.__dict__)


@dataclass
class Parsed:
    """One candidate read from a completion, or the reason it could not be read."""

    text: str
    fields: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    label: str | None = None


_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.S)
_BULLET = re.compile(r"^\s*(?:[-*•·‣◦]|\(?\d{1,3}[.):]|\(?[a-zA-Z][.)])\s+")
_PREAMBLE = re.compile(
    r"^(sure|certainly|of course|okay|ok|here (are|is)|below (are|is)|absolutely|great)\b",
    re.I,
)
_QUOTES = "\"'“”‘’«»„`"


def extract_json(text: str) -> Any | None:
    """The first JSON value in ``text`` (fenced or bare), or ``None``."""
    chunks = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    decoder = json.JSONDecoder()
    for chunk in chunks:
        chunk = chunk.strip()
        try:
            return json.loads(chunk)
        except ValueError:
            pass
        for i, ch in enumerate(chunk):
            if ch in "[{":
                try:
                    value, _ = decoder.raw_decode(chunk, i)
                    return value
                except ValueError:
                    continue
    return None


def _clean_line(line: str) -> str:
    line = _BULLET.sub("", line.strip())
    line = line.strip().rstrip(",").strip()
    if len(line) >= 2 and line[0] in _QUOTES and line[-1] in _QUOTES:
        line = line[1:-1].strip()
    return line.strip(_QUOTES + " ").strip()


def split_list(text: str) -> list[str]:
    """Items of a plain-text list: numbered, bulleted or one per line; preambles dropped."""
    text = _FENCE.sub(lambda m: m.group(1), text)
    items: list[str] = []
    for raw in text.splitlines():
        if not raw.strip():
            continue
        line = _clean_line(raw)
        if not line:
            continue
        if _PREAMBLE.match(line) and (line.endswith(":") or (len(items) == 0 and "!" in line)):
            continue
        if line.endswith(":") and not _BULLET.match(raw):
            continue
        items.append(line)
    return items


def _texts_from_json(value: Any) -> list[Any] | None:
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        for v in value.values():
            if isinstance(v, list):
                return v
        if "text" in value:
            return [value]
    return None


class OutputSchema(ABC):
    """Turns one completion into candidates."""

    name: ClassVar[str] = ""

    @abstractmethod
    def json_schema(self) -> dict[str, Any]:
        """JSON schema sent to backends that support structured output."""

    @abstractmethod
    def parse(self, text: str) -> list[Parsed]:
        """Candidates in ``text``; unreadable parts become ``Parsed(error=...)``."""

    def for_recipe(self, recipe: Recipe) -> OutputSchema:
        """This schema bound to a recipe (its labels, slot types); most need nothing."""
        return self


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
                err = exc.errors()[0]
                where = ".".join(str(p) for p in err["loc"])
                raw = item.get("text", "") if isinstance(item, dict) else str(item)
                out.append(Parsed(str(raw), error=f"invalid: {where}: {err['msg']}"))
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
    from textsynth.slots import SlotSchema

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
