"""What the command line draws: progress bars, tables and one-line messages (rich).

The library returns data (:class:`~textsynth.result.RunResult` for ``run``, ``translate``
and ``paraphrase``, :class:`~textsynth.report.QualityReport`,
:class:`~textsynth.evaluation.Evaluation`); this module is the only one that turns it into
what a terminal shows. Tables fit an 80-column terminal: numbers never wrap, and long
labels and reject reasons fold inside their own column.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console, RenderableType
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from textsynth.result import StopReason

if TYPE_CHECKING:
    from textsynth.evaluation import Evaluation
    from textsynth.fidelity import Fidelity
    from textsynth.report import QualityReport
    from textsynth.result import RunResult, RunSnapshot, RunStats

__all__ = [
    "RunProgress",
    "error_line",
    "eval_tables",
    "fidelity_tables",
    "figures_table",
    "print_notes",
    "print_prompts",
    "print_result",
    "rules_table",
    "summary_table",
]


# -- progress ----------------------------------------------------------------------------
class _Bars(Progress):
    """The bars, then the run's totals and what it waits for, each on a line of its own:
    wrapped in a narrow terminal, where a column of the bars would cut them off."""

    totals = ""
    activity = ""

    def get_renderables(self) -> Iterable[RenderableType]:
        yield from super().get_renderables()
        if self.totals:
            yield Text(self.totals)
        if self.activity:
            yield Text(self.activity, style="yellow")


class RunProgress:
    """A live bar per label (accepted / target) plus requests, tokens and rejects, and
    what the run waits for when it waits ("waiting 42 s for retry (429)").

    A run reports every request sent and every answer processed; the bars take the
    newest state at most every ``interval`` seconds (the screen refreshes 10 times a
    second anyway), and at the end. A change of what the run waits for shows at once.
    """

    def __init__(self, console: Console | None = None, enabled: bool = True,
                 interval: float = 0.1):
        self.console = console or Console(stderr=True, highlight=False)
        self.progress = _Bars(
            TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
            console=self.console, disable=not enabled, transient=False,
        )
        self._tasks: dict[Any, Any] = {}
        self._totals: Any = None
        self.interval = interval
        self._next = 0.0  # monotonic time of the next update
        self._pending: RunSnapshot | None = None  # the newest state not shown yet
        self._activity = ""

    def __enter__(self) -> RunProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pending is not None:
            self._show(self._pending)
        self.progress.stop()

    def __call__(self, run: RunSnapshot, event: str) -> None:
        now = time.monotonic()
        if now < self._next and event in ("sent", "processed") and \
                run.activity == self._activity:
            self._pending = run
            return
        self._next = now + self.interval
        self._show(run)

    def _show(self, run: RunSnapshot) -> None:
        self._pending = None
        self._activity = run.activity
        if not self._tasks:
            for quota in run.quotas:
                self._tasks[quota.name] = self.progress.add_task(quota.name, total=quota.target,
                                                                 info="")
            self._totals = self.progress.add_task("[bold]all labels", info="",
                                                  total=run.target)
        for quota in run.quotas:
            self.progress.update(self._tasks[quota.name], completed=quota.accepted,
                                 info=f"{quota.jobs} req, {quota.rejected} rej")
        self.progress.totals = (f"{run.sent} requests sent, {run.cached} from the store, "
                                f"{run.tokens:,} tokens, {run.rejected} rejected")
        # retries, slow answers, a model loading, Ctrl-C: never a silent wait
        self.progress.activity = run.activity
        self.progress.update(self._totals, completed=run.accepted)


# -- run tables --------------------------------------------------------------------------
def _count(n: int) -> str:
    """A count in at most six characters: ``9,999``, ``12.3k``, ``4.56M``."""
    if n < 10_000:
        return f"{n:,}"
    for unit, size in (("G", 10**9), ("M", 10**6), ("k", 10**3)):
        if n >= size:
            value = n / size
            return f"{value:.3g}{unit}" if value < 999.5 else f"{value:.0f}{unit}"
    return str(n)


def summary_table(result: RunStats, cost: float | None = None) -> Table:
    """Per label (and language): rows accepted of target, requests, candidates, acceptance
    rate, tokens and the top reject reasons, one a line (a translate or paraphrase run's
    source rows are summed per label). Fits 80 columns: numbers never wrap; labels and
    reasons fold inside their columns. A run in one language names it once, in the
    title, so the labels leave the reasons room to stay whole."""
    groups = result.by_group()
    languages = {quota.language for quota in result.quotas}
    language = languages.pop() if len(languages) == 1 else ""  # "": none, or several
    title = f"textsynth run (language: {language})" if language else "textsynth run"
    table = Table(title=title, show_footer=True, box=box.SIMPLE_HEAD,
                  pad_edge=False, collapse_padding=True)
    quotas = groups.values()
    accepted = sum(s.accepted for s in quotas)
    target = sum(s.target for s in quotas)
    candidates = sum(s.candidates for s in quotas)
    number: dict[str, Any] = {"justify": "right", "no_wrap": True}
    table.add_column("label", footer="total", overflow="fold", max_width=20)
    table.add_column("rows", footer=f"{accepted}/{target}", justify="right")
    table.add_column("req", footer=_count(sum(s.jobs for s in quotas)), **number)
    table.add_column("cand", footer=_count(candidates), **number)
    table.add_column("rate", footer=f"{accepted / candidates:.0%}" if candidates else "-",
                     **number)
    table.add_column("tokens", footer=_count(result.usage.total_tokens), **number)
    table.add_column("top rejects", overflow="fold", ratio=1)
    for group, st in groups.items():
        mark = "" if st.full else f"\n[red]short {st.shortfall}[/red]"
        reasons = "\n".join(f"{r} {n}" for r, n in st.rejected.most_common(3))
        name = group.removesuffix(f"/{language}") if language else group
        table.add_row(escape(name), f"{st.accepted}/{st.target}{mark}",
                      _count(st.jobs), _count(st.candidates),
                      f"{st.accepted / st.candidates:.0%}" if st.candidates else "-",
                      _count(st.usage.total_tokens), escape(reasons))
    caption = (f"{result.sent:,} requests sent, {result.cached:,} from the store, "
               f"{result.usage.total_tokens:,} tokens, {result.seconds:.1f} s")
    if result.cancelled:
        caption += f", {result.cancelled} cancelled unsent (not needed)"
    if result.replaced:
        caption += f", {result.replaced} replaced while waiting for a retry"
    if cost:
        caption += f", cost {cost:.4f}"
    table.caption = caption
    return table


def rules_table(result: RunStats) -> Table | None:
    """Per quality rule, in the order they run: candidates it saw, kept, removed and why.

    A rule sees only what the rules before it kept; None when no rule ran.
    """
    stats = result.rule_stats
    if not stats:
        return None
    table = Table(title="quality rules (in order; each sees what the ones above kept)")
    table.add_column("rule", overflow="fold")
    table.add_column("checked", justify="right", no_wrap=True)
    table.add_column("removed", justify="right", no_wrap=True)
    table.add_column("why", overflow="fold", ratio=1)
    for rule, counts in stats.items():
        removed = {reason: n for reason, n in counts.items() if reason != "kept"}
        total = sum(removed.values())
        why = ", ".join(f"{r} {n}" for r, n in sorted(removed.items(), key=lambda x: -x[1]))
        table.add_row(rule, str(counts.get("kept", 0) + total), str(total),
                      escape(why) or "-")
    return table


def print_result(console: Console, result: RunResult) -> None:
    """The tables and closing lines of ``textsynth run``, ``translate`` and ``paraphrase``."""
    stats = result.stats
    console.print(summary_table(stats, result.cost))
    if (rules := rules_table(stats)) is not None:
        console.print(rules)
    if result.dataset is None:
        console.print("[yellow]nothing exported:[/yellow] no row was accepted (the reject "
                      "reasons are in the table)")
    else:
        console.print(f"dataset of {stats.accepted:,} rows written to "
                      f"[bold]{escape(str(result.out_dir))}[/bold]")
    if result.pushed is not None:
        console.print(f"pushed to [bold]{result.pushed.url}[/bold]", soft_wrap=True)
    elif result.hub_repo is not None:
        console.print(f"[yellow]not pushed to {escape(result.hub_repo)}:[/yellow] the quotas "
                      "are not met; push anyway with 'textsynth push'")
    if stats.stopped:
        console.print(f"[yellow]stopped early:[/yellow] {escape(stats.stopped)}")
    for group, st in stats.by_group().items():
        if st.shortfall:
            reason = st.stop or StopReason.ATTEMPT_LIMIT
            console.print(f"[yellow]{escape(group)}: {st.shortfall} short of the quota[/yellow] "
                          f"({reason.value}; {escape(st.advice)})")


def print_prompts(console: Console, prompts: Sequence[tuple[str, Sequence[dict[str, str]]]]
                  ) -> None:
    """``textsynth preview``: each prompt under a rule, message by message."""
    for title, messages in prompts:
        console.rule(escape(title))
        for message in messages:
            console.print(f"[bold]{escape(message['role'])}[/bold]", highlight=False)
            console.print(message["content"], markup=False, highlight=False, soft_wrap=True)


def print_notes(console: Console, notes: Sequence[str]) -> None:
    for note in notes:
        console.print(f"[yellow]note:[/yellow] {escape(note)}")


def error_line(message: str) -> str:
    """The one line a user sees for an error (markup escaped, secrets redacted)."""
    from textsynth.redact import redact_text

    return f"[red]error:[/red] {escape(redact_text(message))}"


# -- report and eval tables --------------------------------------------------------------
def _cell(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def figures_table(report: QualityReport) -> Table:
    """The key figures (synthetic, and reference when there is one)."""
    table = Table(title="Quality report")
    table.add_column("figure", overflow="fold")
    table.add_column("synthetic", justify="right", no_wrap=True)
    if report.reference is not None:
        table.add_column("reference", justify="right", no_wrap=True)
    for name, syn, ref in report.key_figures():
        cells = [name, _cell(syn)] + ([_cell(ref)] if report.reference is not None else [])
        table.add_row(*(escape(c) for c in cells))
    return table


def fidelity_tables(fid: Fidelity, worst: int = 15) -> list[Table]:
    """Fidelity per label, then the ``worst`` rows the judge disagrees with."""
    held = ", ".join(f"{k} {v:.1%}" for k, v in fid.judge_heldout_accuracy.items())
    per_label = Table(title=f"Fidelity: a {fid.classifier} judge trained on {fid.judge_train} "
                            f"real rows puts {fid.agreed} of {fid.rows} synthetic rows under "
                            f"their label",
                      caption=f"judge accuracy on {fid.judge_heldout} held-out real rows: "
                              f"{held or 'not measured'}", show_footer=True)
    per_label.add_column("label", footer="overall", overflow="fold")
    per_label.add_column("rows", justify="right", footer=str(fid.rows), no_wrap=True)
    per_label.add_column("fidelity", justify="right", footer=f"{fid.fidelity:.1%}",
                         no_wrap=True)
    per_label.add_column("judge recall (real)", justify="right")
    for label, share in fid.per_label.items():
        recall = fid.judge_per_label_recall.get(label)
        per_label.add_row(escape(label), str(fid.rows_per_label[label]), f"{share:.1%}",
                          "" if recall is None else f"{recall:.1%}")
    rows = Table(title=f"Rows the judge puts elsewhere (worst {min(worst, len(fid.disagreements))}"
                       f" of {len(fid.disagreements)})")
    for col in ("label", "judge says", "confidence", "text"):
        rows.add_column(col, justify="right" if col == "confidence" else "left",
                        overflow="fold")
    for d in fid.disagreements[:worst]:
        rows.add_row(escape(d.label), escape(d.predicted), f"{d.confidence:.0%}",
                     escape(d.text))
    return [per_label, rows] if fid.disagreements else [per_label]


def eval_tables(ev: Evaluation) -> list[Table]:
    """Scores per training set and classifier, per-label F1, then fidelity."""
    from textsynth.classifiers import TFIDF
    from textsynth.evaluation import SYNTHETIC

    tail = fidelity_tables(ev.fidelity) if ev.fidelity is not None else []
    if not ev.results:
        return tail
    scores = Table(title=f"Train on each set, test on {ev.n_test} real rows")
    for col in ("training set", "classifier", "rows"):
        scores.add_column(col)
    scores.add_column("accuracy", justify="right", no_wrap=True)
    scores.add_column("macro-F1", justify="right", no_wrap=True)
    for r in ev.results:
        style = "bold" if r.train_set == SYNTHETIC else None
        scores.add_row(r.train_set, r.classifier, str(r.n_train), f"{r.accuracy:.1%}",
                       f"{r.macro_f1:.1%}", style=style)
    per_label = Table(title="Per-label F1 (TF-IDF classifier)")
    per_label.add_column("label", overflow="fold")
    tfidf = [r for r in ev.results if r.classifier == TFIDF]
    for r in tfidf:
        per_label.add_column(r.train_set, justify="right")
    for label in ev.labels:
        per_label.add_row(escape(label), *(f"{r.per_label_f1[label]:.1%}" for r in tfidf))
    return [scores, per_label, *tail]
