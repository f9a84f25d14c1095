"""Rejected candidates as a dataset split, for inspection (``export.save_rejects``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["REJECTS_SPLIT", "WITHHELD", "reject_rows"]

REJECTS_SPLIT = "rejected"  # the split's name, reserved in export.splits
# a candidate too close to a real seed example is not written out again
WITHHELD = "[withheld: too close to a seed example]"


def reject_rows(rejects: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per rejected candidate (``Store.rejects()``): text, label, language,
    reason, detail, request_id.

    The text of a ``seed_leak`` reject is withheld, so exporting the rejects
    never republishes a real record.
    """
    rows = []
    for r in rejects:
        text = WITHHELD if r["reason"] == "seed_leak" else r["text"]
        rows.append({"text": text, "label": r["label"], "language": r["language"],
                     "reason": r["reason"], "detail": r["detail"] or "",
                     "request_id": r["request_key"] or ""})
    return rows
