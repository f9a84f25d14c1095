"""Rich progress display and the end-of-run summary table."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

if TYPE_CHECKING:
    from textsynth.result import RunResult, RunSnapshot

__all__ = ["RunProgress", "rules_table", "summary_table"]


class RunProgress:
    """A live bar per label (accepted / target) plus requests, tokens and rejects, and
    what the run waits for when it waits ("waiting 42 s for retry (429)")."""

    def __init__(self, console: Console | None = None, enabled: bool = True):
        self.console = console or Console(stderr=True)
        self.progress = Progress(
            TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
            console=self.console, disable=not enabled, transient=False,
        )
        self._tasks: dict[Any, Any] = {}
        self._totals: Any = None

    def __enter__(self) -> RunProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def __call__(self, run: RunSnapshot, event: str) -> None:
        if not self._tasks:
            for quota in run.quotas:
                self._tasks[quota.name] = self.progress.add_task(quota.name, total=quota.target,
                                                                 info="")
            self._totals = self.progress.add_task("[bold]all labels", info="",
                                                  total=run.target)
        for quota in run.quotas:
            self.progress.update(self._tasks[quota.name], completed=quota.accepted,
                                 info=f"{quota.jobs} req, {quota.rejected} rej")
        info = (f"{run.sent} sent, {run.cached} cached, {run.tokens:,} tokens, "
                f"{run.rejected} rejected")
        if run.activity:  # retries, slow answers, Ctrl-C: never a silent wait
            info += f" [yellow]{escape(run.activity)}[/yellow]"
        self.progress.update(self._totals, completed=run.accepted, info=info)


def summary_table(result: RunResult, cost: float | None = None) -> Table:
    """Per label: accepted, target, candidates, acceptance rate, top reject reasons."""
    table = Table(title="textsynth run", show_footer=True)
    table.add_column("label", footer="total")
    accepted = sum(s.accepted for s in result.quotas.values())
    target = sum(s.target for s in result.quotas.values())
    candidates = sum(s.candidates for s in result.quotas.values())
    table.add_column("accepted", justify="right", footer=f"{accepted}/{target}")
    table.add_column("requests", justify="right",
                     footer=str(sum(s.jobs for s in result.quotas.values())))
    table.add_column("candidates", justify="right", footer=str(candidates))
    table.add_column("accept rate", justify="right",
                     footer=f"{accepted / candidates:.0%}" if candidates else "-")
    table.add_column("tokens", justify="right", footer=f"{result.usage.total_tokens:,}")
    table.add_column("rejected (top reasons)")
    for quota, st in result.quotas.items():
        reasons = ", ".join(f"{r} {n}" for r, n in st.rejected.most_common(3))
        mark = "" if st.full else f" [red](short {st.shortfall})[/red]"
        table.add_row(str(quota) if quota.language else quota.label,
                      f"{st.accepted}/{st.target}{mark}", str(st.jobs), str(st.candidates),
                      f"{st.accepted / st.candidates:.0%}" if st.candidates else "-",
                      f"{st.usage.total_tokens:,}", reasons)
    caption = (f"{result.sent} requests sent, {result.cached} from the store, "
               f"{result.seconds:.1f} s")
    if result.cancelled:
        caption += f", {result.cancelled} cancelled unsent (not needed)"
    if result.replaced:
        caption += f", {result.replaced} replaced while waiting for a retry"
    if cost:
        caption += f", cost {cost:.4f}"
    table.caption = caption
    return table


def rules_table(result: RunResult) -> Table | None:
    """Per quality rule, in the order they run: candidates it saw, kept, removed and why.

    A rule sees only what the rules before it kept; None when no rule ran.
    """
    stats = result.rule_stats
    if not stats:
        return None
    table = Table(title="quality rules (in order; each sees what the ones above kept)")
    table.add_column("rule")
    table.add_column("checked", justify="right")
    table.add_column("removed", justify="right")
    table.add_column("why")
    for rule, counts in stats.items():
        removed = {reason: n for reason, n in counts.items() if reason != "kept"}
        total = sum(removed.values())
        why = ", ".join(f"{r} {n}" for r, n in sorted(removed.items(), key=lambda x: -x[1]))
        table.add_row(rule, str(counts.get("kept", 0) + total), str(total), why or "-")
    return table
