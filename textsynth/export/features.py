"""Dataset features derived from the recipe and its output schema (never from the rows).

``label`` is a ``ClassLabel`` over the recipe's labels; schema fields map to
``Value``/``List``/nested features (a ``slots`` schema adds ``entities`` as a list of
``{start, end, entity, value}``); BIO tags are a list of ``ClassLabel``; provenance
columns come last.

``Value``, ``ClassLabel`` and ``List`` here are small stand-ins for the ``datasets``
classes of those names, with the same JSON form (``feature_dict``) and repr: the export
writes Arrow and Parquet with pyarrow alone, so a run never imports ``datasets`` (about
1 s and 100 MB with pandas) unless the caller asks for a ``DatasetDict``.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from textsynth.schemas import OutputSchema, PydanticSchema
from textsynth.spans import bio_labels

if TYPE_CHECKING:
    from textsynth.recipe import Recipe

__all__ = ["PROVENANCE", "ClassLabel", "List", "Value", "dataset_features", "entity_types",
           "feature_dict", "from_dict", "schema_features"]

PROVENANCE = ("template", "template_sha", "model", "attributes", "seed", "request_id")

_SCALARS: dict[type, str] = {str: "string", int: "int64", float: "float64", bool: "bool"}


@dataclass(frozen=True)
class Value:
    """A scalar column (``datasets.Value``): ``dtype`` is an Arrow type name."""

    dtype: str

    def __repr__(self) -> str:
        return f"Value({self.dtype!r})"


@dataclass(frozen=True)
class ClassLabel:
    """Integer class ids with names (``datasets.ClassLabel``)."""

    names: tuple[str, ...] | list[str] = field(default_factory=tuple)

    def __repr__(self) -> str:
        return f"ClassLabel(names={list(self.names)!r})"

    @property
    def num_classes(self) -> int:
        return len(self.names)


@dataclass(frozen=True)
class List:
    """A list of ``feature`` (``datasets.List``); a dict feature is a struct."""

    feature: Any

    def __repr__(self) -> str:
        return f"List({self.feature!r})"


def feature_dict(feature: Any) -> Any:
    """The JSON form ``datasets`` gives a feature (``Features.to_dict()``), for ours or its.

    >>> feature_dict(List(ClassLabel(names=["O", "B-room"])))
    {'feature': {'names': ['O', 'B-room'], '_type': 'ClassLabel'}, '_type': 'List'}
    """
    if isinstance(feature, Value):
        return {"dtype": feature.dtype, "_type": "Value"}
    if isinstance(feature, ClassLabel):
        return {"names": list(feature.names), "_type": "ClassLabel"}
    if isinstance(feature, List):
        return {"feature": feature_dict(feature.feature), "_type": "List"}
    if isinstance(feature, dict):
        return {name: feature_dict(sub) for name, sub in feature.items()}
    if type(feature).__module__.startswith("datasets"):  # a schema that declares its own
        from datasets import Features

        return Features({"_": feature}).to_dict()["_"]
    raise TypeError(f"not a dataset feature: {feature!r}")


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


def from_dict(data: Any) -> Any:
    """A feature from its JSON form (``feature_dict``'s inverse) for the types the export
    writes: ``Value``, ``ClassLabel``, ``List`` and structs."""
    if not isinstance(data, dict):
        raise TypeError(f"not a feature: {data!r}")
    kind = data.get("_type")
    if kind is None:
        return {name: from_dict(sub) for name, sub in data.items()}
    if kind == "Value":
        return Value(data["dtype"])
    if kind == "ClassLabel" and "names" in data:
        return ClassLabel(names=list(data["names"]))
    if kind in ("List", "Sequence", "LargeList") and data.get("length", -1) == -1:
        return List(from_dict(data["feature"]))
    raise TypeError(f"the export cannot write a {kind} column")


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


def entity_types(recipe: Recipe, rows: list[dict[str, Any]] | None = None) -> list[str]:
    """The recipe's slot types; without declared types, every type found in the rows."""
    if recipe.slots:
        return sorted(recipe.slots)
    found = {e["entity"] for r in rows or [] for e in r.get("entities") or []}
    return sorted(found)


def dataset_features(recipe: Recipe, schema: OutputSchema,
                     rows: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The features of the exported dataset (column name to feature), in column order."""
    columns: dict[str, Any] = {
        "text": Value("string"),
        "label": ClassLabel(names=list(recipe.labels)),
        "language": Value("string"),
    }
    extra = schema_features(schema)
    columns.update(extra)
    if recipe.export.bio_tags and "entities" in extra:
        columns["tokens"] = List(Value("string"))
        columns["tags"] = List(ClassLabel(names=bio_labels(entity_types(recipe, rows))))
    columns.update({
        "template": Value("string"), "template_sha": Value("string"), "model": Value("string"),
        "attributes": Value("string"), "seed": Value("int64"), "request_id": Value("string"),
    })
    return columns
