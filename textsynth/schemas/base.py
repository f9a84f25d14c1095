"""The schema interface: :class:`Parsed`, :class:`OutputSchema`, and the tolerant readers
(JSON in fences, numbered lists). The row type, :class:`~textsynth.example.Example`, has
its own module."""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from textsynth._json import valid_text

if TYPE_CHECKING:
    from textsynth.recipe import Recipe

__all__ = ["OutputSchema", "Parsed", "extract_json", "split_list"]


@dataclass
class Parsed:
    """One candidate read from a completion, or the reason it could not be read."""

    text: str
    fields: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    label: str | None = None


_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.S)
_DECODER = json.JSONDecoder()  # stateless: one for every answer read
_BULLET = re.compile(r"^\s*(?:[-*•·‣◦]|\(?\d{1,3}[.):]|\(?[a-zA-Z][.)])\s+")
_PREAMBLE = re.compile(
    r"^(sure|certainly|of course|okay|ok|here (are|is)|below (are|is)|absolutely|great)\b",
    re.I,
)
_QUOTES = "\"'“”‘’«»„`"


def _valid(value: Any, raw: str) -> Any:
    """``value`` without lone surrogates: a model's ``"\\ud83d"`` escape, alone, decodes
    to one, which cannot be stored (only text with such an escape is walked)."""
    return valid_text(value) if "\\u" in raw else value


def extract_json(text: str) -> Any | None:
    """The first JSON value in ``text`` (fenced or bare), or ``None``."""
    chunks = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    decoder = _DECODER
    for chunk in chunks:
        chunk = chunk.strip()
        try:
            return _valid(json.loads(chunk), chunk)
        except ValueError:
            pass
        for i, ch in enumerate(chunk):
            if ch in "[{":
                try:
                    value, _ = decoder.raw_decode(chunk, i)
                    return _valid(value, chunk)
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

    def ends_list(self, text: str) -> bool:
        """Whether ``text`` shows where its list ended, so that its last item is whole
        even when the completion was cut off by ``max_tokens`` (a continued list)."""
        return False

    def for_recipe(self, recipe: Recipe) -> OutputSchema:
        """This schema bound to a recipe (its labels, slot types); most need nothing."""
        return self
