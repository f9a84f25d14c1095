"""The figures of a quality report (:class:`QualityReport`), apart from how they are
computed (:mod:`textsynth.report`) and drawn (:mod:`textsynth.report_html`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from textsynth.fidelity import Fidelity

__all__ = ["QualityReport", "SetFigures"]


@dataclass
class SetFigures:
    """Figures for one set of rows (the synthetic set, or the reference)."""

    name: str
    rows: int
    labels: dict[str, int]
    languages: dict[str, int]
    splits: dict[str, int]
    mean_words: float
    distinct_1: float
    distinct_2: float
    self_similarity: float
    near_duplicate_rate: float
    label_balance: float
    vocabulary: int
    lengths: list[int] = field(repr=False, default_factory=list)
    sampled: int | None = None


@dataclass
class QualityReport:
    """What :func:`build_report` found; :func:`write_report` draws it."""

    synthetic: SetFigures
    reference: SetFigures | None = None
    vocabulary_overlap: float | None = None
    rejects: dict[str, int] = field(default_factory=dict)
    rejects_by_label: dict[str, dict[str, int]] = field(default_factory=dict)
    reject_samples: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    language_check: dict[str, dict[str, int]] | None = None
    samples: dict[str, list[str]] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    recipe: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    fidelity: Fidelity | None = None
    texts: dict[str, list[str]] = field(repr=False, default_factory=dict)

    @property
    def candidates(self) -> int:
        return self.synthetic.rows + sum(self.rejects.values())

    @property
    def language_pass_rate(self) -> float | None:
        if not self.language_check:
            return None
        rows = sum(v["rows"] for v in self.language_check.values())
        return sum(v["passed"] for v in self.language_check.values()) / rows if rows else None

    def key_figures(self) -> list[tuple[str, Any, Any]]:
        """``(figure, synthetic, reference)`` rows for tables (reference ``None`` if absent)."""
        s, r = self.synthetic, self.reference

        def pair(attr: str) -> tuple[Any, Any]:
            return getattr(s, attr), (getattr(r, attr) if r else None)

        rows: list[tuple[str, Any, Any]] = [
            ("rows", *pair("rows")),
            ("labels", len(s.labels), len(r.labels) if r else None),
            ("languages", ", ".join(sorted(s.languages)) or "-",
             (", ".join(sorted(r.languages)) or "-") if r else None),
            ("mean words per row", *pair("mean_words")),
            ("distinct-1", *pair("distinct_1")),
            ("distinct-2", *pair("distinct_2")),
            ("self-similarity", *pair("self_similarity")),
            ("near-duplicate rate", *pair("near_duplicate_rate")),
            ("label balance", *pair("label_balance")),
            ("vocabulary (words)", *pair("vocabulary")),
        ]
        if self.vocabulary_overlap is not None:
            rows.append(("vocabulary overlap with reference", self.vocabulary_overlap, None))
        if self.fidelity is not None:
            rows.append(("fidelity (real judge)", self.fidelity.fidelity, None))
        if self.rejects:
            rows.append(("rejected candidates", sum(self.rejects.values()), None))
            rows.append(("acceptance rate", round(s.rows / self.candidates, 4), None))
        if self.language_check:
            rows_checked = sum(v["rows"] for v in self.language_check.values())
            passed = sum(v["passed"] for v in self.language_check.values())
            rows.append(("language check passed",
                         f"{passed}/{rows_checked} ({passed / rows_checked:.0%})", None))
        return rows

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("texts")
        for part in ("synthetic", "reference"):
            if out[part]:
                out[part].pop("lengths")
        out["key_figures"] = {name: syn for name, syn, _ in self.key_figures()}
        return out
