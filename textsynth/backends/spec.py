"""Which backend a recipe (or a quality judge) uses: its type and options."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, SerializationInfo, field_serializer

from textsynth.redact import redact

__all__ = ["BackendSpec"]


class BackendSpec(BaseModel):
    """Which backend generates, and its options (checked against the backend's ``Options``).

    Secrets (API keys, tokens, authorization headers) never leave as JSON: a JSON
    dump, as written to the run store and the dataset card, shows them redacted.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    type: str = "openvino"
    options: dict[str, Any] = {}

    @field_serializer("options")
    def _redact(self, options: dict[str, Any], info: SerializationInfo) -> dict[str, Any]:
        return redact(options) if info.mode == "json" else options
