"""The quality report: is this synthetic set any good, before anyone trains on it?

Figures (each computed on lower-cased, punctuation-free text, as the dedup rules see it):

- ``distinct-1`` / ``distinct-2``: unique word n-grams / all word n-grams (higher is more
  varied);
- ``self-similarity``: the mean, over rows, of the cosine similarity between a row and
  its most similar other row (TF-IDF of word 1-2 grams; lower is more varied);
- ``near-duplicate rate``: the share of rows whose most similar other row has a cosine
  of at least 0.9;
- ``label balance``: the label distribution's entropy over its maximum (1 = balanced);
- ``vocabulary overlap``: the share of the reference set's words the synthetic set uses;
- ``fidelity (real judge)``: with ``judge_real``, the share of rows a classifier trained on
  real labeled data puts under their own label (:mod:`textsynth.fidelity`).

distinct-n, self-similarity and the near-duplicate rate grow or shrink with the number
of rows, so when the reference set is larger, they are computed on a seeded sample of
it as large as the synthetic set.
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textsynth.errors import TextsynthError
from textsynth.quality.normalize import normalize
from textsynth.report_figures import QualityReport, SetFigures
from textsynth.sources import LabeledSet, load_labeled

if TYPE_CHECKING:
    pass

__all__ = [
    "QualityReport",
    "SetFigures",
    "build_report",
    "describe",
    "write_report",
]

NEAR_DUPLICATE = 0.9
SAMPLES = 5
_MAX_ROWS_FOR_SIMILARITY = 20_000


def _words(text: str) -> list[str]:
    return normalize(text).split()


def distinct_n(texts: list[str], n: int) -> float:
    """Unique word n-grams over all word n-grams (0 when there are none)."""
    grams: Counter[tuple[str, ...]] = Counter()
    for text in texts:
        words = _words(text)
        grams.update(tuple(words[i:i + n]) for i in range(len(words) - n + 1))
    total = sum(grams.values())
    return len(grams) / total if total else 0.0


def similarity_figures(texts: list[str]) -> tuple[float, float]:
    """(self-similarity, near-duplicate rate): see the module docstring."""
    if len(texts) < 2:
        return 0.0, 0.0
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(preprocessor=normalize, ngram_range=(1, 2),
                                 token_pattern=r"(?u)\b\w+\b")
    try:
        matrix = vectorizer.fit_transform(texts)
    except ValueError:  # no words at all
        return 0.0, 0.0
    best = np.zeros(len(texts))
    for start in range(0, len(texts), 1000):
        block = (matrix[start:start + 1000] @ matrix.T).toarray()
        for i in range(block.shape[0]):
            block[i, start + i] = -1.0  # a row is not its own neighbour
        best[start:start + block.shape[0]] = block.max(axis=1)
    best = np.clip(best, 0.0, 1.0)
    return round(float(best.mean()), 4), round(float((best >= NEAR_DUPLICATE - 1e-9).mean()), 4)


def label_balance(counts: dict[str, int]) -> float:
    """Entropy of the label distribution over its maximum: 1 is perfectly balanced."""
    total = sum(counts.values())
    if len(counts) < 2 or not total:
        return 1.0
    entropy = -sum(c / total * math.log(c / total) for c in counts.values() if c)
    return round(entropy / math.log(len(counts)), 4)


def describe(data: LabeledSet, name: str = "", sample_to: int | None = None, seed: int = 0
             ) -> SetFigures:
    """Figures for ``data``; size-dependent ones on a seeded sample of ``sample_to`` rows."""
    texts = data.texts
    sample = texts
    limit = min(sample_to or len(texts), _MAX_ROWS_FOR_SIMILARITY)
    if len(texts) > limit:
        sample = random.Random(seed).sample(texts, limit)
    lengths = [len(t.split()) for t in texts]
    self_sim, near_dup = similarity_figures(sample)
    labels = dict(sorted(Counter(data.labels).items()))
    vocabulary = {w for t in texts for w in _words(t)}
    return SetFigures(
        name=name or data.name, rows=len(texts), labels=labels,
        languages=dict(Counter(lang for lang in data.languages if lang)),
        splits=dict(Counter(str(r.get("split", "")) for r in data.rows)),
        mean_words=round(sum(lengths) / max(1, len(lengths)), 2),
        distinct_1=round(distinct_n(sample, 1), 4), distinct_2=round(distinct_n(sample, 2), 4),
        self_similarity=self_sim, near_duplicate_rate=near_dup,
        label_balance=label_balance(labels), vocabulary=len(vocabulary), lengths=lengths,
        sampled=len(sample) if len(sample) < len(texts) else None,
    )


def vocabulary_overlap(synthetic: list[str], reference: list[str]) -> float:
    """The share of the reference set's distinct words that occur in the synthetic set."""
    ref = {w for t in reference for w in _words(t)}
    syn = {w for t in synthetic for w in _words(t)}
    return round(len(ref & syn) / len(ref), 4) if ref else 0.0


def _store_figures(folder: Path, report: QualityReport) -> None:
    from textsynth.quality.rejects import reject_rows
    from textsynth.store import STORE_NAME, Store

    if not (folder / STORE_NAME).is_file():
        report.notes.append("no run store next to the data: rejection reasons are unknown")
        return
    with Store.in_dir(folder) as store:
        report.summary = store.get_meta("summary", {}) or {}
        report.recipe = store.get_meta("recipe", {}) or {}
        by_label: dict[str, Counter[str]] = defaultdict(Counter)
        samples: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for row in reject_rows(store.rejects()):  # seed-leak texts are withheld, as in the export
            by_label[row["label"]][row["reason"]] += 1
            if len(samples[row["reason"]]) < SAMPLES:
                samples[row["reason"]].append((row["label"], row["text"]))
        report.rejects = store.reject_counts()
    report.rejects_by_label = {k: dict(v) for k, v in sorted(by_label.items())}
    report.reject_samples = dict(samples)


def language_check(data: LabeledSet, settings: dict[str, Any] | None = None
                   ) -> dict[str, dict[str, int]] | None:
    """Per language: rows, and rows the language rule (the one generation runs) keeps.

    ``settings`` are the run's ``quality.language_id`` options (``min_ratio``,
    ``min_words``). ``None`` when the rows carry no language.
    """
    if not any(data.languages):
        return None
    from textsynth.example import Example
    from textsynth.quality.filters import LanguageFilter

    rule = LanguageFilter(sorted({lang for lang in data.languages if lang}), **(settings or {}))
    out: dict[str, dict[str, int]] = {}
    for text, label, lang in zip(data.texts, data.labels, data.languages, strict=True):
        if not lang:
            continue
        entry = out.setdefault(lang, {"rows": 0, "passed": 0})
        entry["rows"] += 1
        entry["passed"] += rule.check(Example(text, label, language=lang)).keep
    return out


def _language_settings(summary_recipe: Any) -> dict[str, Any]:
    quality = summary_recipe.get("quality", {}) if isinstance(summary_recipe, dict) else {}
    spec = quality.get("language_id") if isinstance(quality, dict) else None
    if not isinstance(spec, dict):
        return {}
    return {k: spec[k] for k in ("min_ratio", "min_words") if k in spec}


def build_report(data: str | Path | LabeledSet, reference: str | Path | LabeledSet | None = None,
                 *, check_language: bool = True, seed: int = 0,
                 judge_real: str | Path | LabeledSet | None = None,
                 label_map: str | Path | Mapping[str, str] | None = None,
                 embeddings: bool | None = None) -> QualityReport:
    """Figures for a textsynth output (or any labeled set), optionally against real data.

    ``judge_real``: a real labeled set to train the fidelity judge on (``label_map``,
    ``embeddings``: as in :func:`textsynth.fidelity.judge_fidelity`).

    >>> report = build_report("output/snips", reference="shared/eval/snips/test.jsonl",
    ...                       judge_real="shared/eval/snips/train.jsonl")  # doctest: +SKIP
    """
    syn = load_labeled(data)
    ref = load_labeled(reference) if reference is not None else None
    figures = describe(syn, "synthetic", seed=seed)
    report = QualityReport(figures, texts={"synthetic": syn.texts})
    if ref is not None:
        report.reference = describe(ref, "reference", sample_to=len(syn), seed=seed)
        report.vocabulary_overlap = vocabulary_overlap(syn.texts, ref.texts)
        report.texts["reference"] = ref.texts
        if report.reference.sampled:
            report.notes.append(
                f"size-dependent reference figures use a seeded sample of "
                f"{report.reference.sampled} of its {len(ref)} rows (as many as the synthetic set)")
    if not isinstance(data, LabeledSet) and Path(data).is_dir():
        _store_figures(Path(data), report)
    else:
        report.notes.append("not a textsynth output folder: rejection reasons are unknown")
    if syn.skipped:
        report.notes.append(f"{syn.skipped} rows without a text or a label were skipped")
    if judge_real is not None:
        from textsynth.fidelity import judge_fidelity

        report.fidelity = judge_fidelity(syn, judge_real, label_map=label_map,
                                         embeddings=embeddings, seed=seed)
        report.notes += report.fidelity.notes
    by_label: dict[str, list[str]] = defaultdict(list)
    for text, label in zip(syn.texts, syn.labels, strict=True):
        if len(by_label[label]) < SAMPLES:
            by_label[label].append(text)
    report.samples = dict(sorted(by_label.items()))
    if check_language:
        try:
            report.language_check = language_check(syn, _language_settings(report.recipe))
        except TextsynthError as exc:  # lingua missing (MissingDependency) among them
            report.notes.append(f"language check skipped: {exc}")
    return report


def write_report(report: QualityReport, folder: str | Path) -> Path:
    """Write ``index.html`` and its PNG plots into ``folder``; return the HTML path."""
    from textsynth.report_html import render

    return render(report, Path(folder))
