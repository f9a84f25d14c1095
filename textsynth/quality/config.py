"""The recipe's ``quality:`` section: which rules run and how strict they are."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["QualitySpec"]


class QualitySpec(BaseModel):
    """Quality rules applied to every candidate during generation."""

    model_config = ConfigDict(extra="forbid")

    min_words: int = Field(2, ge=0)
    max_words: int = Field(40, ge=1)
    min_chars: int = Field(3, ge=0)
    max_chars: int = Field(300, ge=1)
    assistant_speak: bool = True
