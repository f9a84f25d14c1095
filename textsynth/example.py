"""The row type: one accepted example, as the store keeps it and the export writes it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Example"]


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
