"""Recipes: what to generate, how, and where to put it."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializationInfo,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)

from textsynth.errors import RecipeError
from textsynth.quality.config import QualitySpec

__all__ = [
    "BackendSpec",
    "BudgetSpec",
    "ExportSpec",
    "GenerationSpec",
    "HubSpec",
    "LabelSpec",
    "Recipe",
    "load_recipe",
    "redact_secrets",
]

ExportFormat = Literal["arrow", "parquet", "jsonl", "csv", "rasa"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class LabelSpec(_Strict):
    """One label: what it means, and optional real seed examples for few-shot prompts."""

    description: str = ""
    examples: list[str] = []
    slots: list[str] | None = Field(None, description="slot types this label uses (default: all)")


class BackendSpec(_Strict):
    """Which backend generates, and its options (checked against the backend's ``Options``).

    Secrets (API keys, tokens, authorization headers) never leave as JSON: a JSON
    dump, as written to the run store and the dataset card, shows them redacted.
    """

    type: str = "transformers"
    options: dict[str, Any] = {}

    @field_serializer("options")
    def _redact(self, options: dict[str, Any], info: SerializationInfo) -> dict[str, Any]:
        return redact_secrets(options) if info.mode == "json" else options


class GenerationSpec(_Strict):
    temperature: float = Field(0.9, ge=0.0, le=2.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    max_tokens: int = Field(160, ge=1)
    examples_per_request: int = Field(5, ge=1, le=100)
    n: int = Field(1, ge=1, le=16)
    batch_size: int | None = Field(None, ge=1)
    concurrency: int | None = Field(None, ge=1)
    fewshot: int = Field(3, ge=0)
    bootstrap: bool = Field(False, description=(
        "a label without seed examples is shown `fewshot` of its own accepted rows instead"))
    avoid: int = Field(8, ge=0, description="already-accepted examples shown as 'do not repeat'")
    max_attempts: int | None = Field(None, ge=1, description="requests per label at most")


class BudgetSpec(_Strict):
    """Stop cleanly (and resumably) once the run has used this much."""

    max_tokens: int | None = Field(None, ge=1)
    max_cost: float | None = Field(None, gt=0)
    input_price: float = Field(0.0, ge=0, description="price per million prompt tokens")
    output_price: float = Field(0.0, ge=0, description="price per million completion tokens")


class HubSpec(_Strict):
    repo_id: str
    private: bool = False
    revision: str | None = None


class ExportSpec(_Strict):
    dir: str | None = None
    splits: dict[str, float] = {"train": 0.8, "validation": 0.1, "test": 0.1}
    formats: list[ExportFormat] = ["arrow", "parquet", "jsonl"]
    save_rejects: bool = False
    hub: HubSpec | None = None
    bio_tags: bool = Field(False, description="add whitespace tokens and BIO tags for entities")
    group_near_duplicates: bool = Field(
        False, description="keep near-duplicate texts in one split (no train/test leakage)")
    near_duplicate_threshold: float = Field(0.85, gt=0.0, le=1.0)
    rows_per_shard: int = Field(100_000, ge=1, description="rows per Parquet file")

    @field_validator("splits")
    @classmethod
    def _ratios(cls, v: dict[str, float]) -> dict[str, float]:
        if not v:
            raise ValueError("at least one split is needed")
        if any(r <= 0 for r in v.values()):
            raise ValueError("split ratios must be positive")
        if not math.isclose(sum(v.values()), 1.0, abs_tol=1e-6):
            raise ValueError(f"split ratios must add up to 1 (they add up to {sum(v.values()):g})")
        return v


class Recipe(_Strict):
    """A complete, validated description of one dataset.

    >>> Recipe(name="demo", labels={"greet": "Say hello"}, per_label=10)  # doctest: +SKIP
    """

    name: str = Field(min_length=1)
    description: str = ""
    language: str = "en"
    languages: list[str] | None = None
    license: str | None = None
    labels: dict[str, LabelSpec] = Field(min_length=1)
    per_label: int = Field(ge=1)
    template: str = "utterances"
    output_schema: str = Field("utterances", alias="schema")
    vary: dict[str, list[str]] = {}
    slots: dict[str, list[str]] = {}
    backend: BackendSpec = BackendSpec()
    generation: GenerationSpec = GenerationSpec()
    quality: QualitySpec = QualitySpec()
    export: ExportSpec = ExportSpec()
    budget: BudgetSpec = BudgetSpec()
    seed: int = 0

    # where the recipe came from: relative template paths resolve against it
    source: Path | None = Field(None, exclude=True)

    @field_validator("labels", mode="before")
    @classmethod
    def _labels(cls, v: Any) -> Any:
        if isinstance(v, list):
            return {str(name): {} for name in v}
        if isinstance(v, dict):
            return {
                str(k): ({"description": d} if isinstance(d, str) else ({} if d is None else d))
                for k, d in v.items()
            }
        return v

    @field_validator("vary", "slots")
    @classmethod
    def _non_empty_lists(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        for key, values in v.items():
            if not values:
                raise ValueError(f"'{key}' needs at least one value")
        return v

    @model_validator(mode="after")
    def _check_label_slots(self) -> Recipe:
        for name, spec in self.labels.items():
            unknown = sorted(set(spec.slots or []) - set(self.slots))
            if unknown:
                raise ValueError(f"labels.{name}.slots: {', '.join(unknown)} not declared "
                                 "under slots")
        return self

    @model_validator(mode="after")
    def _check_backend_options(self) -> Recipe:
        from textsynth.backends import get_backend

        cls = get_backend(self.backend.type)
        try:
            cls.Options(**self.backend.options)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            raise ValueError(f"backend.options.{loc}: {err['msg']}") from exc
        return self

    @property
    def base_dir(self) -> Path:
        return self.source.parent if self.source else Path.cwd()

    @property
    def output_dir(self) -> Path:
        return Path(self.export.dir) if self.export.dir else Path("output") / _slug(self.name)

    @property
    def max_attempts(self) -> int:
        """The most requests sent for one label (and language) before giving up on it."""
        if self.generation.max_attempts:
            return self.generation.max_attempts
        per_request = self.generation.examples_per_request * self.generation.n
        return 10 * math.ceil(self.per_label / per_request) + 10

    @property
    def all_languages(self) -> list[str]:
        return list(self.languages) if self.languages else [self.language]

    def with_overrides(self, **changes: Any) -> Recipe:
        """A copy with command-line overrides applied (``None`` values are ignored).

        Keys: ``out``, ``per_label``, ``seed``, ``backend``, ``model`` and any
        backend option (``base_url`` ...).
        """
        data = self.model_dump(by_alias=True)
        data["source"] = self.source
        changes = {k: v for k, v in changes.items() if v is not None}
        if "out" in changes:
            data["export"]["dir"] = str(changes.pop("out"))
        for key in ("per_label", "seed"):
            if key in changes:
                data[key] = changes.pop(key)
        if "backend" in changes:
            new_type = changes.pop("backend")
            if new_type != data["backend"]["type"]:
                data["backend"] = {"type": new_type, "options": {}}
        data["backend"]["options"].update(changes)
        return _validate(data, str(self.source) if self.source else None)


_SECRET_NAME = re.compile(
    r"(^|[_-])(api[_-]?key|key|token|secret|password|authorization|cookie)$", re.I)


def redact_secrets(value: Any) -> Any:
    """``value`` with every entry whose name looks secret replaced by ``"***"``."""
    if isinstance(value, dict):
        return {k: "***" if v and _SECRET_NAME.search(str(k)) else redact_secrets(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [redact_secrets(v) for v in value]
    return value


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name.strip().lower()) or "run"


def _validate(data: Any, file: str | None) -> Recipe:
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "missing":
            msg = "required field is missing"
        elif "input" in err and err["type"] not in ("value_error", "assertion_error"):
            msg = f"{msg} (got {err['input']!r})"
        raise RecipeError(msg, file=file, field=loc or None) from None


def load_recipe(source: str | Path | dict[str, Any]) -> Recipe:
    """Load and validate a recipe from a YAML file or a mapping.

    Errors raise :class:`RecipeError` naming the file, the field path and what was
    expected; nothing is loaded or sent before the recipe is valid.
    """
    if isinstance(source, dict):
        return _validate(source, None)
    path = Path(source)
    if not path.is_file():
        raise RecipeError("recipe file not found", file=str(path))
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else None
        raise RecipeError(f"not valid YAML: {getattr(exc, 'problem', exc)}", file=str(path),
                          field=where) from None
    if not isinstance(data, dict):
        raise RecipeError("a recipe must be a YAML mapping", file=str(path))
    data["source"] = path.resolve()
    return _validate(data, str(path))
