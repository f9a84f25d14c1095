"""The feature types of an exported dataset: small stand-ins for ``datasets``' own.

``Value``, ``ClassLabel`` and ``List`` have the JSON form (``feature_dict``) and the repr
of the ``datasets`` classes of those names: the export writes Arrow and Parquet with
pyarrow alone, so a run never imports ``datasets`` (about 1 s and 100 MB with pandas)
unless the caller asks for a ``DatasetDict``. This module imports nothing of textsynth,
so that schemas can declare their columns without an import cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["ClassLabel", "List", "Value", "feature_dict", "from_dict"]


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
