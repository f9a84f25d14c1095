"""What the quality benchmarks share: build a run (or reuse a finished one) and its cost.

Tokens per accepted row counts every completion a run used, whether sent or read from
the store (a completion read from the store was paid for once), plus those sent ahead
and not needed: prompt and completion tokens over the rows accepted.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def shared_eval(name: str) -> Path:
    """``../shared/eval/<name>`` beside the checkout (or beside the folder of worktrees)."""
    for base in (ROOT.parent, ROOT.parent.parent):
        if (base / "shared" / "eval" / name).is_dir():
            return base / "shared" / "eval" / name
    return ROOT.parent / "shared" / "eval" / name


@dataclass
class RunFigures:
    """Rows and cost of one run."""

    folder: Path
    rows: int
    candidates: int
    tokens: int
    sent: int = 0
    cached: int = 0
    seconds: float | None = None
    rejected: Counter[str] = field(default_factory=Counter)
    shortfall: int = 0
    partial: bool = False  # an unfinished run: its accepted rows so far, from the store

    @property
    def data(self) -> Any:
        """The accepted rows: the exported folder, or (unfinished run) the store's rows."""
        if not self.partial:
            return self.folder
        from textsynth.sources import LabeledSet
        from textsynth.store import Store

        with Store.in_dir(self.folder) as store:
            return LabeledSet.from_pairs(((e.text, e.label) for e in store.examples()),
                                         f"{self.folder} (unfinished)")

    @property
    def tokens_per_row(self) -> float:
        return self.tokens / self.rows if self.rows else float("nan")

    @property
    def acceptance(self) -> float:
        return self.rows / self.candidates if self.candidates else float("nan")

    def line(self) -> str:
        top = ", ".join(f"{r} {n}" for r, n in self.rejected.most_common(5))
        took = f", {self.seconds:.0f} s" if self.seconds is not None else ""
        head = "UNFINISHED RUN: " if self.partial else ""
        return (f"{head}{self.rows} rows from {self.candidates} candidates (acceptance "
                f"{self.acceptance:.1%}), {self.tokens:,} tokens = {self.tokens_per_row:.1f} "
                f"tokens per accepted row; {self.sent} requests sent, {self.cached} from the "
                f"store{took}; short {self.shortfall}; top rejects: {top or 'none'}")


def set_path(data: dict[str, Any], dotted: str, value: Any) -> None:
    """``data["a"]["b"] = value`` for ``a.b``, creating dicts on the way."""
    *parents, last = dotted.split(".")
    for key in parents:
        if not isinstance(data.get(key), dict):
            data[key] = {}
        data = data[key]
    data[last] = value


def recipe_with(path: str | Path, out: Path, settings: list[str], per_label: int | None = None
                ) -> Any:
    """The recipe at ``path`` writing to ``out``, with ``key.sub=YAML`` settings applied."""
    import yaml

    from textsynth.recipe import load_recipe

    base = load_recipe(path)
    data = base.model_dump(by_alias=True)
    data["source"] = base.source
    for item in settings:
        key, _, value = item.partition("=")
        set_path(data, key.strip(), yaml.safe_load(value))
    data["export"]["dir"] = str(out)
    if per_label:
        data["per_label"] = per_label
    return load_recipe(data)


def generate(recipe: Any, seed_store: Path | None = None) -> RunFigures:
    """Run ``recipe`` (resuming from its folder's store, or from a copy of ``seed_store``)."""
    from textsynth.pipeline import run_recipe
    from textsynth.store import STORE_NAME

    out = Path(recipe.export.dir)
    out.mkdir(parents=True, exist_ok=True)
    if seed_store is not None and seed_store.is_file() and not (out / STORE_NAME).exists():
        shutil.copyfile(seed_store, out / STORE_NAME)
    start = time.perf_counter()
    result = run_recipe(recipe).stats
    accepted = sum(s.accepted for s in result.quotas.values())
    return RunFigures(out, accepted, sum(s.candidates for s in result.quotas.values()),
                      result.usage.total_tokens, result.sent, result.cached,
                      time.perf_counter() - start, result.rejected,
                      sum(result.shortfalls.values()))


def reuse(folder: Path) -> RunFigures:
    """The figures of a finished run, from its store's summary (nothing is generated)."""
    from textsynth.store import STORE_NAME, Store

    if not (folder / STORE_NAME).is_file():
        raise SystemExit(f"{folder}: no run store ({STORE_NAME}) to reuse")
    with Store.in_dir(folder) as store:
        summary = store.get_meta("summary", {}) or {}
        if not summary:  # still running, or stopped: count what the store holds
            usage, rejects = store.usage(), store.reject_counts()
            rows = store.example_count()
            return RunFigures(folder, rows, rows + sum(rejects.values()), usage.total_tokens,
                              store.completion_count(), 0, None, Counter(rejects), 0, True)
    slots = summary.get("quotas") or summary.get("slots", {})  # stores before the rename
    rejected: Counter[str] = Counter()
    for slot in slots.values():
        rejected.update(slot.get("rejected", {}))
    return RunFigures(folder, sum(s["accepted"] for s in slots.values()),
                      sum(s["candidates"] for s in slots.values()),
                      summary.get("prompt_tokens", 0) + summary.get("completion_tokens", 0),
                      summary.get("sent", 0), summary.get("cached", 0), None, rejected,
                      sum(max(0, s["target"] - s["accepted"]) for s in slots.values()))


def write_json(path: str | None, figures: dict[str, Any]) -> None:
    if path:
        Path(path).write_text(json.dumps(figures, indent=1, ensure_ascii=False, default=str))
        print(f"figures written to {path}")
