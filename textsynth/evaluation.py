"""Train on synthetic, test on real: is the generated data any good for a classifier?

:func:`evaluate` trains the same classifier on several training sets and scores
each on the same real test set, so the figures are comparable:

- ``synthetic``: the generated rows;
- ``label names``: one row per label, its readable name (the floor: what you get
  knowing only the label names, which is all a synthetic recipe started from);
- ``real`` (with ``train_real``): real training rows (the ceiling to compare with);
- ``real + synthetic`` (with ``train_real``): the augmentation gain.

Classifiers: TF-IDF (word 1-2 grams + char_wb 2-5 grams, sublinear tf) with
logistic regression, always; and logistic regression on all-MiniLM-L6-v2 sentence
embeddings (:mod:`textsynth.embeddings`) when the embedded model is installed. Both
are deterministic.

With ``judge_real`` (a real labeled training set), :func:`evaluate` also reports the
synthetic set's *fidelity*: the share of its rows that a classifier trained on the real
set puts under their own label (see :mod:`textsynth.fidelity`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textsynth._deps import require
from textsynth.classifiers import (
    EMBEDDINGS,
    MAX_ITER,
    TFIDF,
    _map_labels,
    _tfidf_classifier,
    embeddings_available,
    load_label_names,
    missing_embedder_error,
    parse_label_map,
    readable_label,
)
from textsynth.embeddings import Embedder
from textsynth.errors import DataError
from textsynth.sources import LabeledSet, load_labeled

if TYPE_CHECKING:
    from textsynth.fidelity import Fidelity

__all__ = [
    "EvalResult",
    "Evaluation",
    "evaluate",
    "load_label_names",
    "parse_label_map",
    "readable_label",
]

# a word as the TF-IDF classifier's word features count one (scikit-learn's default)
_WORD = re.compile(r"(?u)\b\w\w+\b")
SYNTHETIC, LABEL_NAMES, REAL, REAL_PLUS = "synthetic", "label names", "real", "real + synthetic"


@dataclass
class EvalResult:
    """One classifier trained on one training set, scored on the real test set."""

    train_set: str
    classifier: str
    n_train: int
    accuracy: float
    macro_f1: float
    per_label_f1: dict[str, float]


@dataclass
class Evaluation:
    """Every result of one :func:`evaluate` call; ``accuracy`` and ``macro_f1`` are the
    synthetic set's with the TF-IDF classifier (when there was a test set), ``fidelity``
    the real-data judge's verdict (when there was a judge set)."""

    results: list[EvalResult]
    labels: list[str]
    n_test: int
    label_map: dict[str, str] = field(default_factory=dict)
    unmapped: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    fidelity: Fidelity | None = None

    def result(self, train_set: str = SYNTHETIC, classifier: str = TFIDF) -> EvalResult:
        for r in self.results:
            if r.train_set == train_set and r.classifier == classifier:
                return r
        raise KeyError((train_set, classifier))

    @property
    def accuracy(self) -> float:
        return self.result().accuracy

    @property
    def macro_f1(self) -> float:
        return self.result().macro_f1

    @property
    def per_label_f1(self) -> dict[str, float]:
        return self.result().per_label_f1

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.results:
            out.update(accuracy=self.accuracy, macro_f1=self.macro_f1,
                       per_label_f1=self.per_label_f1, n_train=self.result().n_train)
        out.update(n_test=self.n_test, labels=self.labels,
                   results=[asdict(r) for r in self.results], label_map=self.label_map,
                   unmapped=self.unmapped, notes=self.notes)
        if self.fidelity is not None:
            out["fidelity"] = self.fidelity.to_dict()
        return out


def _score(name: str, classifier: str, train: tuple[list[str], list[str]], test: LabeledSet,
           labels: list[str], embed: Embedder | None) -> EvalResult:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score

    texts, y = train
    if classifier == TFIDF:
        # label names such as "0" and "1" have no word of two letters to count
        words = any(_WORD.search(text) for text in texts)
        predicted = _tfidf_classifier(words=words).fit(texts, y).predict(test.texts)
    else:
        assert embed is not None
        model = LogisticRegression(C=10.0, max_iter=MAX_ITER).fit(embed(texts), y)
        predicted = model.predict(embed(test.texts))
    per_label = f1_score(test.labels, predicted, labels=labels, average=None, zero_division=0)
    return EvalResult(
        train_set=name, classifier=classifier, n_train=len(texts),
        accuracy=round(float(accuracy_score(test.labels, predicted)), 4),
        macro_f1=round(float(f1_score(test.labels, predicted, labels=labels, average="macro",
                                      zero_division=0)), 4),
        per_label_f1={lab: round(float(f), 4) for lab, f in zip(labels, per_label, strict=True)},
    )


def _overlap_notes(name: str, train: Sequence[str], test: Sequence[str]) -> list[str]:
    """A warning when test texts also appear (ignoring case and spacing) in a training set."""
    def norm(text: str) -> str:
        return " ".join(text.casefold().split())

    seen = {norm(t) for t in train}
    shared = sum(norm(t) in seen for t in test)
    if not shared:
        return []
    return [f"train and test overlap: {shared} of {len(test)} test texts "
            f"({shared / len(test):.0%}) are also in the {name} training set, so its scores "
            "are inflated (is the test file the training data?)"]


def evaluate(synthetic: str | Path | LabeledSet, test: str | Path | LabeledSet | None = None,
             *, train_real: str | Path | LabeledSet | None = None,
             label_names: str | Path | Mapping[str, str] | None = None,
             label_map: str | Path | Mapping[str, str] | None = None,
             embeddings: bool | None = None, split: str | None = None,
             judge_real: str | Path | LabeledSet | None = None) -> Evaluation:
    """Train on ``synthetic`` (every split, or ``split``), score on the real ``test`` set;
    with ``judge_real``, also judge each synthetic row with a classifier trained on it.

    Labels are matched by name, ignoring case and separators (``add_to_playlist`` =
    ``AddToPlaylist``), or through ``label_map`` (synthetic -> test). ``embeddings``:
    ``None`` runs the embedding classifier when it is installed, ``True`` requires it.
    Either ``test`` or ``judge_real`` must be given.

    >>> ev = evaluate("output/snips", "shared/eval/snips/test.jsonl",
    ...               judge_real="shared/eval/snips/train.jsonl")  # doctest: +SKIP
    >>> ev.accuracy, ev.macro_f1, ev.fidelity.fidelity  # doctest: +SKIP
    """
    require("sklearn", "textsynth eval", extra="eval")
    if test is None and judge_real is None:
        raise DataError("nothing to measure: give a real test set (--test) or a real set "
                        "for the judge (--judge-real)")
    fidelity = None
    if judge_real is not None:
        from textsynth.fidelity import judge_fidelity

        fidelity = judge_fidelity(synthetic, judge_real, label_map=label_map,
                                  embeddings=embeddings, split=split)
    if test is None:
        assert fidelity is not None
        return Evaluation([], sorted(fidelity.per_label), 0, fidelity.label_map,
                          fidelity.unmapped, list(fidelity.notes), fidelity)
    ev = _train_on_synthetic(synthetic, test, train_real=train_real, label_names=label_names,
                             label_map=label_map, embeddings=embeddings, split=split)
    if fidelity is not None:
        ev.fidelity = fidelity
        ev.notes += fidelity.notes
    return ev


def _train_on_synthetic(synthetic: str | Path | LabeledSet, test: str | Path | LabeledSet, *,
                        train_real: str | Path | LabeledSet | None,
                        label_names: str | Path | Mapping[str, str] | None,
                        label_map: str | Path | Mapping[str, str] | None,
                        embeddings: bool | None, split: str | None) -> Evaluation:
    syn = load_labeled(synthetic, split=split)
    real_test = load_labeled(test)
    labels = sorted(set(real_test.labels))
    explicit = parse_label_map(label_map)
    syn_texts, syn_labels, mapping, unmapped = _map_labels(syn, labels, explicit, "synthetic")
    if len(labels) < 2:
        raise DataError(f"the test set has {len(labels)} label{'' if labels else 's'}; a "
                        "classifier needs at least two", source=real_test.name)
    notes = [f"{n} synthetic rows with label {lab!r} dropped: no such test label"
             for lab, n in unmapped.items()]
    notes += [f"no synthetic rows for test label {lab!r}" for lab in labels
              if lab not in set(syn_labels)]
    if len(set(syn_labels)) < 2:
        raise DataError("the synthetic set needs rows for at least two test labels",
                        source=syn.name)
    notes += _overlap_notes(SYNTHETIC, syn_texts, real_test.texts)
    names = load_label_names(label_names, labels)
    train_sets: list[tuple[str, tuple[list[str], list[str]]]] = [
        (SYNTHETIC, (syn_texts, syn_labels)),
        (LABEL_NAMES, ([names[lab] for lab in labels], list(labels))),
    ]
    if train_real is not None:
        real = load_labeled(train_real)
        real_texts, real_labels, _, real_unmapped = _map_labels(real, labels, explicit, "real")
        notes += [f"{n} real training rows with label {lab!r} dropped: no such test label"
                  for lab, n in real_unmapped.items()]
        if len(set(real_labels)) < 2:
            raise DataError("the real training set needs rows for at least two test labels "
                            f"(it has {len(set(real_labels))})", source=real.name)
        notes += _overlap_notes(REAL, real_texts, real_test.texts)
        train_sets.append((REAL, (real_texts, real_labels)))
        train_sets.append((REAL_PLUS, (real_texts + syn_texts, real_labels + syn_labels)))
    classifiers = [TFIDF]
    embed: Embedder | None = None
    why_not = embeddings_available()
    if embeddings is not False:
        if why_not is None:
            embed = Embedder()
            classifiers.append(EMBEDDINGS)
        elif embeddings:
            raise missing_embedder_error("the embedding classifier")
        else:
            notes.append(why_not)
    results = [_score(name, clf, data, real_test, labels, embed)
               for clf in classifiers for name, data in train_sets]
    return Evaluation(results, labels, len(real_test), mapping, unmapped, notes)
