"""A label classifier trained during the run on what the run has accepted.

Label consistency judged from label names alone is weak: "play music" and
"add to playlist" are close in meaning, and a 135M model writes plenty of rows
that fit a neighbouring label better than their own. Once a run has accepted
some rows, those rows describe each label far better than its name does. This
rule trains a light classifier (logistic regression over the all-MiniLM-L6-v2
sentence embeddings that semantic dedup already computes) on the label
prototypes ("<name>: <description>"), any seed examples and every accepted row,
refits it as rows arrive, and drops a candidate the classifier puts under
another label, or under its own with low confidence.

A candidate is judged by a model fitted before it was seen, so a row never
judges itself; accepted rows only ever judge newer candidates. Refits happen at
fixed counts of accepted rows, and both the embeddings and the solver are
deterministic, so the same completions in the same order give the same
decisions: a resumed run, which replays the store, rebuilds the classifier
exactly as it was.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from textsynth._deps import require
from textsynth.errors import TextsynthError
from textsynth.example import Example
from textsynth.quality.base import KEEP, Rule, Verdict
from textsynth.quality.judge import readable_label
from textsynth.quality.words import counter_words, word_set

if TYPE_CHECKING:
    import numpy as np

    from textsynth.quality.semantic import Embedder

__all__ = ["InLoopClassifier", "cross_fitted", "label_prototypes"]

class InLoopClassifier(Rule):
    """Drops candidates that the run's own accepted rows place under another label.

    A candidate far from every label (cosine below ``min_similarity`` with each
    label's "<name>: <description>") is off topic. Until every label has
    ``warmup`` accepted rows (or seeds), the closest label prototype decides, as
    the embedding judge does. From then on a logistic regression over the
    prototypes, seeds and accepted rows (classes weighted to balance, so a label
    with many rows does not pull candidates of a label with few) decides:
    ``margin`` is how much more likely another label must be before the candidate
    counts as that label's, ``min_confidence`` the probability its own label needs.
    Only rows in ``languages`` (all when None) are judged and learnt from.

    With ``min_label_similarity``, a candidate whose cosine with its own label's
    "<name>: <description>" is below it is too far from what the label says
    (``classifier_far_from_label``): the anchor of a recipe without seed examples, where
    the accepted rows the classifier learns from may drift together, off the label. With
    ``min_label_margin``, it must also be that much closer to its own label's than to
    any other label's (``classifier_near_other_label``).

    A label with seed examples (real rows a person wrote) also anchors its
    candidates: one whose cosine with every seed of its label is below
    ``min_seed_similarity`` is too far from what the person meant
    (``classifier_far_from_seeds``). Labels without seeds are not held to it.

    A label's ``counter_examples`` are near misses a person wrote down as not the label
    ("Unlock the front door" for lock_door): a candidate whose closest counter-example
    is closer than every seed of its label (its prototype without seeds) is dropped
    (``classifier_counter_example``). Sentence embeddings hardly tell "lock" from
    "unlock" or "on" from "off", so for a label with seeds the words are checked too: a
    candidate that uses a word of a counter-example which none of the label's seeds uses,
    and which is not a function word or a number, is dropped (``classifier_counter_word``:
    "unlock" and "open" for lock_door). That check reads words only, so it judges every
    language.
    """

    name = "classifier"
    needs_prepare = True

    def __init__(self, labels: Mapping[str, str], embedder: Embedder,
                 seeds: Mapping[str, Sequence[str]] | None = None, *,
                 counter_examples: Mapping[str, Sequence[str]] | None = None,
                 min_confidence: float = 0.3, margin: float = 0.1, warmup: int = 5,
                 min_similarity: float = 0.2, min_seed_similarity: float | None = None,
                 min_label_similarity: float | None = None,
                 min_label_margin: float | None = None,
                 refit_every: float = 0.1, audit: int = 0, audit_confidence: float = 0.5,
                 audit_folds: int = 5,
                 regularization: float = 20.0, languages: Collection[str] | None = None):
        super().__init__()
        if len(labels) < 2:
            raise TextsynthError("the in-loop classifier needs at least two labels")
        self.labels = list(labels)
        self.embedder = embedder
        self.min_confidence = min_confidence
        self.margin = margin
        self.warmup = warmup
        self.refit_every = refit_every
        self.regularization = regularization
        self.audits_left = audit
        self.audit_confidence = audit_confidence
        self.audit_folds = audit_folds
        self.min_similarity = min_similarity
        self.min_seed_similarity = min_seed_similarity
        self.min_label_similarity = min_label_similarity
        self.min_label_margin = min_label_margin
        self._seed_texts = {label: list(texts) for label, texts in (seeds or {}).items()
                            if label in labels and texts}
        self._seed_vectors: dict[str, np.ndarray] | None = None
        self._counter_texts = {label: list(texts) for label, texts in
                               (counter_examples or {}).items() if label in labels and texts}
        self._counter_vectors: dict[str, tuple[np.ndarray, np.ndarray]] | None = None
        self._counter_sims: dict[tuple[str, str], tuple[float, float]] = {}
        # only a label with seeds: a name and a description have too few words to say
        # which words of a counter-example are new (and may be in another language)
        self._counter_words = {label: counter_words(self._seed_texts[label], texts)
                               for label, texts in self._counter_texts.items()
                               if label in self._seed_texts}
        self._seed_sims: dict[tuple[str, str], float] = {}
        # the bundled MiniLM reads English only: other languages are not judged with it
        self.languages = set(languages) if languages is not None else None
        self._base: list[tuple[str, str]] = label_prototypes(labels)
        for label, texts in (seeds or {}).items():
            if label in labels:
                self._base.extend((t, label) for t in texts)
        self._rows: list[tuple[str, str]] = []  # accepted (text, label), in order
        self._fitted_at = -1
        self._model: Any = None
        self._probs: dict[str, np.ndarray] = {}
        self._warmed = False
        self._anchors: np.ndarray | None = None
        self._sims: dict[str, np.ndarray] = {}

    # -- training ------------------------------------------------------------------
    def _due(self) -> bool:
        if self._model is None or (not self._warmed and self._warm()):
            return True
        grown = len(self._rows) - self._fitted_at
        return grown >= max(1, int(self.refit_every * max(self._fitted_at, 20)))

    def _fit(self) -> None:
        linear = require("sklearn.linear_model", "the in-loop classifier")
        LogisticRegression = linear.LogisticRegression
        # until every label has rows of its own, a label that has some would pull every
        # candidate its way: only the prototypes and seeds speak then
        self._warmed = self._warm()
        data = self._base + self._rows if self._warmed else self._base
        x = self.embedder.encode([t for t, _ in data])
        y = [label for _, label in data]
        model = LogisticRegression(C=self.regularization, max_iter=1000,
                                   class_weight="balanced")
        model.fit(x, y)
        self._model = model
        prototypes = x[:len(self.labels)] if not self._warmed else \
            self.embedder.encode([t for t, _ in self._base[:len(self.labels)]])
        anchors = [prototypes]
        if self._warmed:  # a label's accepted rows say what is on topic better than its name
            rows = self.embedder.encode([t for t, _ in self._rows])
            for k, label in enumerate(self.labels):
                mine = rows[[i for i, (_, lab) in enumerate(self._rows) if lab == label]]
                # a label warmed by its seed examples may have no accepted row yet
                centroid = mine.mean(axis=0) if len(mine) else prototypes[k]
                anchors.append(centroid[None, :] / max(float((centroid ** 2).sum()) ** 0.5,
                                                       1e-9))
        import numpy as np

        self._anchors = np.concatenate(anchors)
        self._fitted_at = len(self._rows)
        self._probs.clear()  # earlier judgements came from an older model
        self._sims.clear()

    def _warm(self) -> bool:
        counts = dict.fromkeys(self.labels, 0)
        for _, label in self._base[len(self.labels):] + self._rows:
            counts[label] += 1
        return min(counts.values()) >= self.warmup

    # -- the rule ------------------------------------------------------------------
    async def prepare(self, examples: Sequence[Example]) -> None:
        if self._due():
            self._fit()
        texts = list(dict.fromkeys(e.text for e in examples
                                   if e.text not in self._probs and self._judges(e)))
        if not texts:
            self._prepare_seed_sims(examples, {})
            self._prepare_counter_sims(examples, {})
            return
        if len(self._probs) > 8192:
            self._probs.clear()
            self._sims.clear()
            self._seed_sims.clear()
            self._counter_sims.clear()
        x = self.embedder.encode(texts)
        probs = self._model.predict_proba(x)
        assert self._anchors is not None  # set by _fit
        # cosine with each label's "<name>: <description>" (then each label's centroid)
        sims = x @ self._anchors.T
        self._probs.update(zip(texts, probs, strict=True))
        self._sims.update(zip(texts, sims, strict=True))
        known = dict(zip(texts, x, strict=True))
        self._prepare_seed_sims(examples, known)
        self._prepare_counter_sims(examples, known)

    def _encoded(self, todo: Sequence[Example],
                 known: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``known`` with the vectors of the texts of ``todo`` it lacks."""
        missing = list(dict.fromkeys(e.text for e in todo if e.text not in known))
        if not missing:
            return known
        return {**known, **dict(zip(missing, self.embedder.encode(missing), strict=True))}

    def _prepare_seed_sims(self, examples: Sequence[Example],
                           known: dict[str, np.ndarray]) -> None:
        if self.min_seed_similarity is None or not self._seed_texts:
            return
        if self._seed_vectors is None:
            self._seed_vectors = {label: self.embedder.encode(seeds)
                                  for label, seeds in self._seed_texts.items()}
        todo = [e for e in examples if e.label in self._seed_vectors and self._judges(e)
                and (e.label, e.text) not in self._seed_sims]
        known = self._encoded(todo, known)
        for e in todo:
            vectors = self._seed_vectors[e.label]
            self._seed_sims[(e.label, e.text)] = float((vectors @ known[e.text]).max())

    def _prepare_counter_sims(self, examples: Sequence[Example],
                              known: dict[str, np.ndarray]) -> None:
        """Per candidate of a label with counter-examples: its cosine with the closest of
        the label's seeds (its prototype when it has none), and with the closest
        counter-example."""
        if not self._counter_texts:
            return
        if self._counter_vectors is None:
            # a label's seeds (what a person wrote), or its prototype (name: description)
            mine = {label: [text] for text, label in self._base[:len(self.labels)]}
            mine.update(self._seed_texts)
            self._counter_vectors = {
                label: (self.embedder.encode(mine[label]), self.embedder.encode(texts))
                for label, texts in self._counter_texts.items()}
        todo = [e for e in examples if e.label in self._counter_vectors and self._judges(e)
                and (e.label, e.text) not in self._counter_sims]
        known = self._encoded(todo, known)
        for e in todo:
            own, counters = self._counter_vectors[e.label]
            self._counter_sims[(e.label, e.text)] = (float((own @ known[e.text]).max()),
                                                     float((counters @ known[e.text]).max()))

    def check(self, example: Example) -> Verdict:
        if example.label not in self.labels:
            return KEEP
        words = self._counter_words.get(example.label)
        if words:
            hit = sorted(word_set(example.text) & words.keys())
            if hit:
                return Verdict(False, "classifier_counter_word",
                               f"'{hit[0]}', a word of the counter-example '{words[hit[0]]}'")
        if not self._judges(example):
            return KEEP
        probs = self._probs.get(example.text)
        if probs is None:
            raise TextsynthError("the classifier needs `await gate.prepare(candidates)` "
                                 "before `gate.check(candidate)`")
        sims = self._sims[example.text]
        if float(sims.max()) < self.min_similarity:
            return Verdict(False, "classifier_off_topic",
                           f"cosine {float(sims.max()):.2f} with the closest label")
        if self.min_label_similarity is not None or self.min_label_margin is not None:
            k = self.labels.index(example.label)
            own_sim = float(sims[k])
            if self.min_label_similarity is not None and own_sim < self.min_label_similarity:
                return Verdict(False, "classifier_far_from_label",
                               f"cosine {own_sim:.2f} with its label's name and description")
            others = [float(v) for i, v in enumerate(sims[:len(self.labels)]) if i != k]
            if self.min_label_margin is not None and \
                    own_sim - max(others) < self.min_label_margin:
                j = max(range(len(others)), key=others.__getitem__)
                nearest = [n for i, n in enumerate(self.labels) if i != k][j]
                return Verdict(False, "classifier_near_other_label",
                               f"cosine {own_sim:.2f} with its label, {others[j]:.2f} "
                               f"with '{nearest}'")
        seed_sim = self._seed_sims.get((example.label, example.text))
        if (seed_sim is not None and self.min_seed_similarity is not None
                and seed_sim < self.min_seed_similarity):
            return Verdict(False, "classifier_far_from_seeds",
                           f"cosine {seed_sim:.2f} with the closest seed of its label")
        counter = self._counter_sims.get((example.label, example.text))
        if counter is not None and counter[1] > counter[0]:
            return Verdict(False, "classifier_counter_example",
                           f"cosine {counter[1]:.2f} with a counter-example, "
                           f"{counter[0]:.2f} with the label")
        if not self._warmed:  # the nearest label prototype decides
            best = self.labels[int(sims[:len(self.labels)].argmax())]
            if best != example.label:
                return Verdict(False, "classifier_disagrees", f"closest to '{best}'")
            return KEEP
        classes = list(self._model.classes_)
        own = float(probs[classes.index(example.label)])
        top = int(probs.argmax())
        if classes[top] != example.label and float(probs[top]) - own >= self.margin:
            return Verdict(False, "classifier_disagrees",
                           f"looks like '{classes[top]}' ({float(probs[top]):.2f} vs "
                           f"{own:.2f})")
        if own < self.min_confidence:
            return Verdict(False, "classifier_unsure", f"p={own:.2f}")
        return KEEP

    # -- the end-of-run audit -------------------------------------------------------
    def audit(self) -> list[tuple[str, str, str]]:
        """Accepted ``(label, text, why)`` rows to withdraw, once every quota is full.

        Each accepted row is judged by a logistic regression fitted on the prototypes,
        the seeds and the accepted rows of the other folds (``audit_folds``, row ``i`` in
        fold ``i % audit_folds``), so no row judges itself, and every row, the early ones
        accepted during the warm-up included, is judged by a model that knows the whole
        run. A row that another label gets with probability ``audit_confidence`` or more
        is withdrawn; the rule forgets it, so later
        candidates are judged without it. ``audit`` rounds at most; deterministic for the
        same accepted rows in the same order.
        """
        if self.audits_left <= 0 or not self._warm() or len(self._rows) < 2 * self.audit_folds:
            return []
        self.audits_left -= 1
        probs, classes = cross_fitted(self._base, self._rows, self.embedder, self.audit_folds,
                                      self.regularization)
        out: list[tuple[str, str, str]] = []
        keep: list[tuple[str, str]] = []
        for (text, label), p in zip(self._rows, probs, strict=True):
            own = float(p[classes.index(label)])
            top = int(p.argmax())
            if classes[top] != label and float(p[top]) >= self.audit_confidence:
                out.append((label, text, f"looks like '{classes[top]}' ({float(p[top]):.2f} "
                                         f"vs {own:.2f}, cross-fitted)"))
            else:
                keep.append((text, label))
        if out:
            self._rows = keep
            self._model = None  # refit without them before the next candidate
            self.dropped["classifier_audit"] += len(out)
        return out

    def _judges(self, example: Example) -> bool:
        return self.languages is None or example.language in self.languages

    def add(self, example: Example) -> None:
        if self._judges(example):
            self._rows.append((example.text, example.label))


def label_prototypes(labels: Mapping[str, str]) -> list[tuple[str, str]]:
    """``(text, label)`` for each label: ``"<readable name>: <description>"``, or the
    readable name alone, which the classifier learns each label from before any row."""
    return [(f"{readable_label(n)}: {d}" if d else readable_label(n), n)
            for n, d in labels.items()]


def cross_fitted(base: Sequence[tuple[str, str]], rows: Sequence[tuple[str, str]],
                 embedder: Embedder, folds: int = 5, regularization: float = 20.0
                 ) -> tuple[np.ndarray, list[str]]:
    """Per row of ``rows`` (``(text, label)``), the label probabilities of a logistic
    regression fitted on ``base`` and the rows of the other folds (row ``i`` is in fold
    ``i % folds``), and the classes in the order of the columns."""
    import numpy as np

    linear = require("sklearn.linear_model", "the classifier audit")
    xb = embedder.encode([t for t, _ in base])
    xr = embedder.encode([t for t, _ in rows])
    yb = [label for _, label in base]
    yr = [label for _, label in rows]
    classes = sorted(set(yb) | set(yr))
    out = np.zeros((len(rows), len(classes)), dtype=np.float64)
    fold = np.arange(len(rows)) % folds
    for f in range(folds):
        train = fold != f
        if not (~train).any():
            continue
        model = linear.LogisticRegression(C=regularization, max_iter=1000,
                                          class_weight="balanced")
        model.fit(np.concatenate([xb, xr[train]]),
                  yb + [y for y, t in zip(yr, train, strict=True) if t])
        cols = [classes.index(c) for c in model.classes_]
        out[np.ix_(~train, cols)] = model.predict_proba(xr[~train])
    return out, classes
