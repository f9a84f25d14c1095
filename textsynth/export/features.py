"""Dataset features derived from the recipe and its output schema (never from the rows).

``label`` is a ``ClassLabel`` over the recipe's labels; schema fields map to
``Value``/``List``/nested features (a ``slots`` schema adds ``entities`` as a list of
``{start, end, entity, value}``); BIO tags are a list of ``ClassLabel``; provenance
columns come last.

The features are :mod:`textsynth.export.feature_types`' stand-ins for the ``datasets``
classes (the export never imports ``datasets``).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from textsynth.export.feature_types import ClassLabel, List, Value, feature_dict, from_dict
from textsynth.schemas import OutputSchema, PydanticSchema, load_schema
from textsynth.spans import bio_labels

if TYPE_CHECKING:
    from textsynth.recipe import Recipe
    from textsynth.recipe_specs import ExportSpec

__all__ = ["PROVENANCE", "ClassLabel", "DatasetLayout", "List", "Value", "dataset_features",
           "entity_types", "feature_dict", "from_dict", "schema_features"]


@dataclass(frozen=True)
class DatasetLayout:
    """What an export needs: the labels (class ids in this order), the output schema (its
    columns), the ``export:`` settings, the seed of the splits, and the declared entity
    types (none: those found in the rows)."""

    labels: tuple[str, ...]
    schema: OutputSchema
    export: ExportSpec
    seed: int = 0
    entity_types: tuple[str, ...] = ()

    @classmethod
    def of(cls, recipe: Recipe, schema: OutputSchema | None = None) -> DatasetLayout:
        """A recipe's layout (its output schema unless ``schema`` is given)."""
        return cls(tuple(recipe.labels),
                   schema or load_schema(recipe.output_schema).for_recipe(recipe),
                   recipe.export, recipe.seed, tuple(sorted(recipe.slots)))

PROVENANCE = ("template", "template_sha", "model", "attributes", "seed", "request_id")

_SCALARS: dict[type, str] = {str: "string", int: "int64", float: "float64", bool: "bool"}


def _annotation_feature(annotation: Any) -> Any:
    """A feature for a Python type annotation (JSON text when unsure)."""
    origin = typing.get_origin(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin in (typing.Union, types.UnionType) and len(args) == 1:
        return _annotation_feature(args[0])
    if origin is typing.Literal:
        kinds = {type(a) for a in typing.get_args(annotation)}
        return Value(_SCALARS.get(kinds.pop(), "string") if len(kinds) == 1 else "string")
    if origin in (list, tuple, set, frozenset) and len(args) == 1:
        return List(_annotation_feature(args[0]))
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            return {name: _annotation_feature(f.annotation)
                    for name, f in annotation.model_fields.items()}
        if issubclass(annotation, Enum):
            return Value("string")
        for kind in (bool, int, float, str):  # bool first: it is also an int
            if issubclass(annotation, kind):
                return Value(_SCALARS[kind])
    return Value("string")  # anything else is stored as JSON text (see row_converter)


def _ours(name: str, feature: Any) -> Any:
    """A schema's declared feature as one of ours (a schema may use ``datasets``' own)."""
    try:
        return from_dict(feature_dict(feature))
    except (TypeError, KeyError) as exc:
        from textsynth.errors import ExportError

        raise ExportError(f"the output schema declares the column '{name}' as {feature!r}: "
                          f"{exc}") from None


def schema_features(schema: OutputSchema) -> dict[str, Any]:
    """Columns an output schema adds besides ``text`` and ``label``."""
    declared: Callable[[], dict[str, Any]] | None = getattr(schema, "dataset_features", None)
    if declared is not None:
        return {name: _ours(name, f) for name, f in declared().items()}
    if isinstance(schema, PydanticSchema):
        return {name: _annotation_feature(f.annotation)
                for name, f in schema.model.model_fields.items() if name not in ("text", "label")}
    return {}


def entity_types(layout: DatasetLayout, rows: list[dict[str, Any]] | None = None) -> list[str]:
    """The declared entity types; without declared types, every type found in the rows."""
    if layout.entity_types:
        return sorted(layout.entity_types)
    found = {e["entity"] for r in rows or [] for e in r.get("entities") or []}
    return sorted(found)


def dataset_features(layout: DatasetLayout, rows: list[dict[str, Any]] | None = None
                     ) -> dict[str, Any]:
    """The features of the exported dataset (column name to feature), in column order."""
    columns: dict[str, Any] = {
        "text": Value("string"),
        "label": ClassLabel(names=list(layout.labels)),
        "language": Value("string"),
    }
    extra = schema_features(layout.schema)
    columns.update(extra)
    if layout.export.bio_tags and "entities" in extra:
        columns["tokens"] = List(Value("string"))
        columns["tags"] = List(ClassLabel(names=bio_labels(entity_types(layout, rows))))
    columns.update({
        "template": Value("string"), "template_sha": Value("string"), "model": Value("string"),
        "attributes": Value("string"), "seed": Value("int64"), "request_id": Value("string"),
    })
    return columns
