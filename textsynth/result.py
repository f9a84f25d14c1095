"""What a run did: per quota, its counts and why it stopped; for the run, its totals.

:class:`RunResult` is what ``run_recipe``, ``translate`` and ``paraphrase`` return: the
engine's figures (:class:`RunStats`, per quota a :class:`QuotaStats` and its
:class:`StopReason`) with the dataset they exported.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, NamedTuple

from textsynth.backends.base import Usage
from textsynth.plan import Quota

__all__ = ["QuotaStats", "RunResult", "RunSnapshot", "RunStats", "StopReason"]


class StopReason(StrEnum):
    """Why a quota stopped receiving jobs."""

    QUOTA_MET = "quota met"
    ATTEMPT_LIMIT = "attempt limit reached"
    BUDGET = "budget spent"
    INTERRUPTED = "interrupted"
    FAILED = "run failed"

    @property
    def advice(self) -> str:
        """What a user can do about a quota left short for this reason."""
        return _ADVICE[self]


_ADVICE = {
    StopReason.QUOTA_MET: "",
    StopReason.ATTEMPT_LIMIT: ("raise generation.max_attempts (--max-attempts for translate and "
                               "paraphrase) or loosen the quality rules"),
    StopReason.BUDGET: "raise budget.max_tokens or budget.max_cost and run again to continue",
    StopReason.INTERRUPTED: "run the same command again to resume",
    StopReason.FAILED: "fix the error and run the same command again to resume",
}


@dataclass
class QuotaStats:
    """What happened for one label (in one language)."""

    target: int
    accepted: int = 0
    candidates: int = 0
    jobs: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    usage: Usage = field(default_factory=Usage)
    stop: StopReason | None = None  # set when the run ends

    @property
    def shortfall(self) -> int:
        return max(0, self.target - self.accepted)

    @property
    def full(self) -> bool:
        return self.accepted >= self.target

    @property
    def advice(self) -> str:
        """What a user can do about this quota left short: the stop reason's advice, or,
        when most of its candidates were answers cut off at ``max_tokens``, that."""
        reason = self.stop or StopReason.ATTEMPT_LIMIT
        cut = self.rejected.get("parse:truncated", 0)
        if reason is StopReason.ATTEMPT_LIMIT and cut and 2 * cut >= sum(self.rejected.values()):
            return (f"{cut} of its answers were cut off at max_tokens: raise "
                    "generation.max_tokens (--max-tokens for translate and paraphrase)")
        return reason.advice

    def add(self, other: QuotaStats) -> None:
        """Count ``other`` in too (quotas shown as one line); a short one's stop reason wins."""
        self.target += other.target
        self.accepted += other.accepted
        self.candidates += other.candidates
        self.jobs += other.jobs
        self.rejected.update(other.rejected)
        self.usage = self.usage + other.usage
        if self.stop is None or (other.shortfall and self.stop is StopReason.QUOTA_MET):
            self.stop = other.stop


@dataclass
class RunStats:
    """What the engine did: per quota (label x language, or source row x language for
    translate and paraphrase) and in total."""

    quotas: dict[Quota, QuotaStats]
    sent: int = 0
    cached: int = 0
    usage: Usage = field(default_factory=Usage)
    seconds: float = 0.0
    stopped: str | None = None
    replaced: int = 0  # jobs that waited for a retry and were replaced by later ones
    cancelled: int = 0  # requests cancelled before they were sent: no longer needed
    rule_stats: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return all(s.full for s in self.quotas.values())

    @property
    def shortfalls(self) -> dict[str, int]:
        return {str(k): v.shortfall for k, v in self.quotas.items() if v.shortfall}

    @property
    def stop_reasons(self) -> dict[str, StopReason]:
        """Why each quota left short stopped short (quotas that were met are left out)."""
        return {str(k): v.stop or StopReason.ATTEMPT_LIMIT
                for k, v in self.quotas.items() if v.shortfall}

    @property
    def rejected(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for s in self.quotas.values():
            total.update(s.rejected)
        return total

    @property
    def accepted(self) -> int:
        return sum(s.accepted for s in self.quotas.values())

    def by_group(self) -> dict[str, QuotaStats]:
        """The quotas summed per label and language (one per source row otherwise)."""
        groups: dict[str, QuotaStats] = {}
        for quota, st in self.quotas.items():
            group = groups.setdefault(quota.group, QuotaStats(0))
            group.add(st)
        return groups

    def summary(self, cost: Callable[[Usage], float], stored: Usage) -> dict[str, Any]:
        """The figures kept in the store for the dataset card and the report."""
        return {
            "quotas": {str(k): {"target": v.target, "accepted": v.accepted,
                                "candidates": v.candidates, "jobs": v.jobs,
                                "rejected": dict(v.rejected),
                                "prompt_tokens": v.usage.prompt_tokens,
                                "completion_tokens": v.usage.completion_tokens,
                                "cost": cost(v.usage),
                                "stop": v.stop.value if v.stop else None}
                       for k, v in self.quotas.items()},
            "sent": self.sent, "cached": self.cached,
            "replaced": self.replaced, "cancelled": self.cancelled,
            "prompt_tokens": stored.prompt_tokens,
            "completion_tokens": stored.completion_tokens,
            "cost": cost(stored),
            "stopped": self.stopped, "rules": self.rule_stats,
        }


@dataclass
class RunResult:
    """What ``run_recipe``, ``translate`` and ``paraphrase`` return: the engine's figures
    and the dataset they exported.

    >>> result = run_recipe(load_recipe("recipe.yaml"))  # doctest: +SKIP
    >>> result.complete, result.stats.shortfalls  # doctest: +SKIP
    """

    stats: RunStats
    out_dir: Path
    dataset: Any = None  # the exported splits (ExportedDataset); None when no row was accepted
    cost: float = 0.0
    pushed: Any = None  # export.hub.PushResult when the dataset was pushed to the Hub
    hub_repo: str | None = None  # the Hub repo the recipe names (None: no push asked)

    @property
    def complete(self) -> bool:
        """Whether every quota was met."""
        return self.stats.complete

    @property
    def accepted(self) -> int:
        return self.stats.accepted


class QuotaSnapshot(NamedTuple):
    """One quota's progress at one moment (a named tuple: a run takes two snapshots a
    request, and a frozen dataclass costs several times as much to build)."""

    name: str  # the label, with its language when the run has several
    target: int
    accepted: int
    jobs: int
    rejected: int


@dataclass(frozen=True)
class RunSnapshot:
    """A run's progress at one moment: what a progress display shows."""

    quotas: tuple[QuotaSnapshot, ...]
    sent: int
    cached: int
    tokens: int
    activity: str  # what the run waits for now ("" when nothing is slow)

    @property
    def accepted(self) -> int:
        return sum(q.accepted for q in self.quotas)

    @property
    def target(self) -> int:
        return sum(q.target for q in self.quotas)

    @property
    def rejected(self) -> int:
        return sum(q.rejected for q in self.quotas)

    @classmethod
    def of(cls, quotas: dict[Quota, QuotaStats], sent: int, cached: int, tokens: int,
           activity: str, multilingual: bool) -> RunSnapshot:
        """One line per label (and language, when the run has several): the quotas of a
        translate or paraphrase run (one per source row) are summed."""
        lines: dict[str, list[int]] = {}
        for q, s in quotas.items():
            line = lines.setdefault(q.group if multilingual else q.label, [0, 0, 0, 0])
            line[0] += s.target
            line[1] += s.accepted
            line[2] += s.jobs
            line[3] += sum(s.rejected.values())
        make = QuotaSnapshot._make  # tuple.__new__, without the keyword handling
        return cls(tuple(make((name, *line)) for name, line in lines.items()),
                   sent, cached, tokens, activity)
