"""The HTML report: generated text is shown as text, never run as markup."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from textsynth.report_html import _samples, _table

EVIL = '<script>alert("x")</script>'


def test_table_cells_and_headings_are_escaped_and_numbers_kept_short() -> None:
    page = _table(["label", EVIL], [[EVIL, 0.123456789, None, 3]])
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "<td>0.1235</td>" in page and "<td></td>" in page and "<td>3</td>" in page


def test_sample_rows_and_rejects_are_escaped() -> None:
    report: Any = SimpleNamespace(samples={EVIL: [EVIL, "turn on the light"]},
                                  reject_samples={"too_short": [(EVIL, "<b>")]})
    page = "".join(_samples(report))
    assert "<script>" not in page and "<b>" not in page
    assert "<li>turn on the light</li>" in page and "<h2>Sample rejects</h2>" in page


def test_no_rejects_no_reject_section() -> None:
    report: Any = SimpleNamespace(samples={"a": ["x"]}, reject_samples={})
    assert "Sample rejects" not in "".join(_samples(report))
