"""Rasa NLU training data (YAML, format version 3.1) with ``[value](entity)`` annotations.

Rasa reads an example line by finding ``[text](entity)`` with a regular expression
and has no escape character, so a text that already contains ``[...]`` followed by
``(`` or ``{`` would be read as an entity that is not there; such rows are left out
(and counted) rather than written wrong.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from textsynth.errors import ExportError

__all__ = [
    "RASA_VERSION",
    "NluExample",
    "annotate",
    "rasa_nlu_yaml",
    "read_rasa_nlu",
    "write_rasa_nlu",
]

RASA_VERSION = "3.1"

# the shape Rasa's entities parser matches: [entity_text](entity[:value]) or [text]{json}
_ENTITY = re.compile(
    r"\[(?P<text>[^\]]+?)\](\((?P<entity>[^:)]+?)(?::(?P<value>[^)]+))?\)|\{(?P<dict>[^}]+?)\})")
_BAD_TYPE = re.compile(r"[\s:()\[\]{}]")


@dataclass
class NluExample:
    """One Rasa training example: plain text, its intent and entity spans."""

    text: str
    intent: str
    entities: list[dict[str, Any]] = field(default_factory=list)


def annotate(text: str, entities: Sequence[dict[str, Any]]) -> str | None:
    """``text`` with Rasa markup, or ``None`` if Rasa would misread it.

    >>> annotate("play road trip", [{"start": 5, "end": 14, "entity": "playlist"}])
    'play [road trip](playlist)'
    """
    if "\n" in text or "\r" in text or _ENTITY.search(text):
        return None
    out, pos = [], 0
    for span in sorted(entities, key=lambda s: s["start"]):
        value = text[span["start"]:span["end"]]
        if "]" in value or _BAD_TYPE.search(span["entity"]):
            return None
        out += [text[pos:span["start"]], f"[{value}]({span['entity']})"]
        pos = span["end"]
    out.append(text[pos:])
    marked = "".join(out)
    # nothing outside our spans may look like markup once brackets are next to each other
    return marked if len(_ENTITY.findall(marked)) == len(entities) else None


def rasa_nlu_yaml(rows: Iterable[dict[str, Any]], intents: Sequence[str]) -> tuple[str, int]:
    """The NLU file for ``rows`` (``text``, ``label`` name, ``entities``) and how many
    rows were left out because Rasa's markup cannot express them."""
    lines: dict[str, list[str]] = {name: [] for name in intents}
    skipped = 0
    for row in rows:
        marked = annotate(row["text"].strip(), row.get("entities") or [])
        if marked is None or not marked:
            skipped += 1
            continue
        lines.setdefault(row["label"], []).append(marked)
    out = [f'version: "{RASA_VERSION}"', "nlu:"]
    for intent, examples in lines.items():
        if not examples:
            continue
        out.append(f"- intent: {_scalar(intent)}")
        out.append("  examples: |")
        out += [f"    - {example}" for example in examples]
    return "\n".join(out) + "\n", skipped


def _scalar(value: str) -> str:
    """A plain YAML scalar when safe, else a quoted one."""
    dumped = yaml.safe_dump(value, default_flow_style=True, width=10_000,
                           allow_unicode=True).strip()
    return dumped.removesuffix("\n...").strip()


def write_rasa_nlu(rows: Iterable[dict[str, Any]], intents: Sequence[str], path: Path) -> int:
    """Write ``nlu.yml``; returns the number of rows left out."""
    text, skipped = rasa_nlu_yaml(rows, intents)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ExportError(f"cannot write the Rasa NLU file {path}: {exc}") from exc
    return skipped


def read_rasa_nlu(source: str | Path) -> list[NluExample]:
    """Read intents and entity spans back the way Rasa's YAML reader does."""
    text = Path(source).read_text(encoding="utf-8") if isinstance(source, Path) else source
    data = yaml.safe_load(text) or {}
    out = []
    for item in data.get("nlu") or []:
        intent = item.get("intent")
        if not intent:
            continue
        for line in str(item.get("examples", "")).splitlines():
            if not line.startswith("-"):
                continue
            out.append(_parse_example(line[1:].strip("\n\r "), str(intent)))
    return out


def _parse_example(example: str, intent: str) -> NluExample:
    entities, offset = [], 0
    for match in _ENTITY.finditer(example):
        start = match.start() - offset
        end = start + len(match.group("text"))
        offset += len(match.group(0)) - len(match.group("text"))
        entities.append({"start": start, "end": end, "entity": match.group("entity"),
                         "value": match.group("value") or match.group("text")})
    plain = _ENTITY.sub(lambda m: m.group("text"), example)
    return NluExample(plain, intent, entities)
