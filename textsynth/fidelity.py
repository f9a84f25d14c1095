"""Fidelity: does a classifier trained on real data put each synthetic row under its label?

:func:`judge_fidelity` trains a judge on a real labeled set and scores every synthetic
row: the share it assigns to the row's own label is the set's *fidelity*, per label and
overall; the rows it puts elsewhere are listed, the worst first (the least probability on
the row's own label).

The judge is the stronger, on held-out real rows, of the classifiers ``eval`` uses:
TF-IDF (word 1-2 + char_wb 2-5 grams) with logistic regression, and logistic regression
on all-MiniLM-L6-v2 embeddings when ``textsynth[eval]`` is installed. A seeded share of
each real label (``holdout``) is held out to pick it and to say how far it can be
trusted; the winner is then refitted on every real row. Deterministic for a seed.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from textsynth._deps import require
from textsynth.classifiers import (
    EMBEDDINGS,
    MAX_ITER,
    TFIDF,
    _map_labels,
    _tfidf_classifier,
    embeddings_available,
    missing_embedder_error,
    parse_label_map,
)
from textsynth.embeddings import Embedder
from textsynth.errors import DataError
from textsynth.sources import LabeledSet, load_labeled

__all__ = ["Disagreement", "Fidelity", "RealJudge", "judge_fidelity"]

HOLDOUT = 0.2


@dataclass
class Disagreement:
    """A synthetic row the judge puts under another label."""

    text: str
    label: str  # the row's label (as the judge names it)
    predicted: str
    confidence: float  # the judge's probability of ``predicted``
    own_probability: float  # the judge's probability of ``label``
    row_id: str = ""


@dataclass
class Fidelity:
    """What :func:`judge_fidelity` found."""

    fidelity: float
    rows: int
    agreed: int
    per_label: dict[str, float]
    rows_per_label: dict[str, int]
    classifier: str
    judge_heldout_accuracy: dict[str, float]  # every classifier tried
    judge_per_label_recall: dict[str, float]  # the chosen one, on held-out real rows
    judge_train: int
    judge_heldout: int
    judge_source: str
    disagreements: list[Disagreement] = field(default_factory=list)
    label_map: dict[str, str] = field(default_factory=dict)
    unmapped: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _split(labels: Sequence[str], share: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices (train, held out): ``share`` of each label held out, at least one kept."""
    by_label: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        by_label.setdefault(label, []).append(i)
    rng = random.Random(seed)
    train: list[int] = []
    held: list[int] = []
    for label in sorted(by_label):
        idx = by_label[label][:]
        rng.shuffle(idx)
        n = min(len(idx) - 1, round(len(idx) * share))
        held += idx[:n]
        train += idx[n:]
    return sorted(train), sorted(held)


class _Judge:
    """One classifier kind, fitted on texts, giving label probabilities."""

    def __init__(self, kind: str, embed: Embedder | None) -> None:
        self.kind = kind
        self.embed = embed
        self.model: Any = None

    def fit(self, texts: list[str], labels: list[str]) -> _Judge:
        from sklearn.linear_model import LogisticRegression

        if self.kind == TFIDF:
            self.model = _tfidf_classifier().fit(texts, labels)
        else:
            assert self.embed is not None
            self.model = LogisticRegression(C=10.0, max_iter=MAX_ITER).fit(
                self.embed(texts), labels)
        return self

    @property
    def classes(self) -> list[str]:
        return [str(c) for c in self.model.classes_]

    def proba(self, texts: list[str]) -> Any:
        return self.model.predict_proba(texts if self.kind == TFIDF else self.embed(texts))  # type: ignore[misc]


def _choose(real_texts: list[str], real_labels: list[str], kinds: list[str],
            embed: Embedder | None, holdout: float, seed: int
            ) -> tuple[str, dict[str, float], dict[str, float], int]:
    """The kind with the best held-out accuracy; accuracies; its per-label recall; n held."""
    train, held = _split(real_labels, holdout, seed)
    if not held:
        return kinds[0], {}, {}, 0
    scores: dict[str, float] = {}
    recalls: dict[str, dict[str, float]] = {}
    truth = [real_labels[i] for i in held]
    for kind in kinds:
        judge = _Judge(kind, embed).fit([real_texts[i] for i in train],
                                        [real_labels[i] for i in train])
        best = judge.proba([real_texts[i] for i in held]).argmax(axis=1)
        predicted = [judge.classes[j] for j in best]
        hits = [p == t for p, t in zip(predicted, truth, strict=True)]
        scores[kind] = round(sum(hits) / len(hits), 4)
        per: dict[str, list[bool]] = {}
        for t, hit in zip(truth, hits, strict=True):
            per.setdefault(t, []).append(hit)
        recalls[kind] = {lab: round(sum(v) / len(v), 4) for lab, v in sorted(per.items())}
    chosen = max(kinds, key=lambda k: (scores[k], k == TFIDF))  # a tie goes to the cheaper
    return chosen, scores, recalls[chosen], len(held)


def _judge_kinds(embeddings: bool | None, notes: list[str]
                 ) -> tuple[list[str], Embedder | None]:
    why_not = embeddings_available()
    if embeddings is False:
        return [TFIDF], None
    if why_not is None:
        return [TFIDF, EMBEDDINGS], Embedder()
    if embeddings:
        raise missing_embedder_error("the embedding judge")
    notes.append(why_not.replace("classifier", "judge"))
    return [TFIDF], None


class RealJudge:
    """A judge trained once on a real labeled set; :meth:`score` judges synthetic sets.

    >>> judge = RealJudge("shared/eval/snips/train.jsonl")  # doctest: +SKIP
    >>> judge.score("output/snips").fidelity  # doctest: +SKIP
    """

    def __init__(self, real: str | Path | LabeledSet, *, embeddings: bool | None = None,
                 holdout: float = HOLDOUT, seed: int = 0) -> None:
        require("sklearn", "the real-data judge", extra="eval")
        if not 0 <= holdout < 1:
            raise DataError(f"holdout must be in [0, 1), got {holdout}")
        ref = load_labeled(real)
        self.labels = sorted(set(ref.labels))
        if len(self.labels) < 2:
            raise DataError("the real set for the judge needs at least two labels",
                            source=ref.name)
        self.source, self.size = ref.name, len(ref)
        self.notes: list[str] = []
        kinds, embed = _judge_kinds(embeddings, self.notes)
        self.classifier, self.heldout_accuracy, self.per_label_recall, self.heldout = _choose(
            ref.texts, ref.labels, kinds, embed, holdout, seed)
        self._judge = _Judge(self.classifier, embed).fit(ref.texts, ref.labels)

    def score(self, synthetic: str | Path | LabeledSet, *,
              label_map: str | Path | Mapping[str, str] | None = None,
              split: str | None = None) -> Fidelity:
        """Judge every row of ``synthetic`` (see :func:`judge_fidelity`)."""
        syn = load_labeled(synthetic, split=split)
        keep = [r for r in syn.rows if r["text"].strip()]
        syn = LabeledSet(keep, syn.name, syn.label_names, syn.skipped)
        texts, labels, mapping, unmapped = _map_labels(
            syn, self.labels, parse_label_map(label_map), "synthetic")
        row_ids = [str(r.get("row_id", "")) for r in syn.rows if r["label"] in mapping]
        notes = self.notes + [f"{n} synthetic rows with label {lab!r} left out: the real set "
                              "has no such label" for lab, n in unmapped.items()]
        probs = self._judge.proba(texts)
        classes = self._judge.classes
        index = {c: j for j, c in enumerate(classes)}
        agreed: Counter[str] = Counter()
        worst: list[Disagreement] = []
        for i, (text, label) in enumerate(zip(texts, labels, strict=True)):
            best = int(probs[i].argmax())
            if classes[best] == label:
                agreed[label] += 1
                continue
            worst.append(Disagreement(text, label, classes[best], round(float(probs[i][best]), 4),
                                      round(float(probs[i][index[label]]), 4), row_ids[i]))
        worst.sort(key=lambda d: (d.own_probability, -d.confidence, d.text))
        counts = Counter(labels)
        return Fidelity(
            fidelity=round(sum(agreed.values()) / len(labels), 4), rows=len(labels),
            agreed=sum(agreed.values()),
            per_label={lab: round(agreed[lab] / n, 4) for lab, n in sorted(counts.items())},
            rows_per_label=dict(sorted(counts.items())), classifier=self.classifier,
            judge_heldout_accuracy=dict(self.heldout_accuracy),
            judge_per_label_recall=dict(self.per_label_recall), judge_train=self.size,
            judge_heldout=self.heldout, judge_source=self.source, disagreements=worst,
            label_map=mapping, unmapped=unmapped, notes=notes,
        )


def judge_fidelity(synthetic: str | Path | LabeledSet, real: str | Path | LabeledSet, *,
                   label_map: str | Path | Mapping[str, str] | None = None,
                   embeddings: bool | None = None, split: str | None = None,
                   holdout: float = HOLDOUT, seed: int = 0) -> Fidelity:
    """Train a judge on the ``real`` labeled set and score every ``synthetic`` row.

    Synthetic labels match the real ones by name, ignoring case and separators, or through
    ``label_map`` (synthetic -> real); rows of other labels are left out (and counted in
    ``unmapped``). ``embeddings``: ``None`` also tries the embedding judge when it is
    installed, ``True`` requires it, ``False`` uses TF-IDF only. To judge several sets
    against the same real data, build one :class:`RealJudge` and call its ``score``.

    >>> fid = judge_fidelity("output/snips", "shared/eval/snips/train.jsonl")  # doctest: +SKIP
    >>> fid.fidelity, fid.disagreements[0].predicted  # doctest: +SKIP
    """
    judge = RealJudge(real, embeddings=embeddings, holdout=holdout, seed=seed)
    return judge.score(synthetic, label_map=label_map, split=split)
