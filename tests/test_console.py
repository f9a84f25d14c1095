"""The CLI's console module: tables that fit 80 columns and lines that say why."""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

from rich.console import Console

from textsynth.backends.base import Usage
from textsynth.console import print_result, rules_table, summary_table
from textsynth.plan import Quota
from textsynth.result import QuotaStats, RunResult, RunStats, StopReason

LABELS = ["AddToPlaylist", "BookRestaurant", "GetWeather", "PlayMusic", "RateBook",
          "SearchCreativeWork", "SearchScreeningEvent"]


def _result(stopped: str | None = None) -> RunStats:
    slots = {}
    for i, label in enumerate(LABELS):
        for language in ("de", "sw"):
            st = QuotaStats(target=1000, accepted=1000 - 37 * i, candidates=4321 + i,
                           jobs=1234 + i,
                           rejected=Counter({"cross_label_duplicate": 1200 + i,
                                             "language_mismatch_detected": 300,
                                             "assistant_speak": 12, "too_short": 3}),
                           usage=Usage(prompt_tokens=1_234_000 + i, completion_tokens=567))
            if st.shortfall:  # as the engine marks it
                st.stop = StopReason.BUDGET if stopped else StopReason.ATTEMPT_LIMIT
            slots[Quota(label, language)] = st
    return RunStats(quotas=slots, sent=17_000, cached=3, usage=Usage(12_345_678, 901_234),
                     seconds=3723.4, stopped=stopped,
                     rule_stats={"language_id (lingua, threshold 0.5)": {
                         "kept": 12_345, "language_mismatch_detected": 4_200},
                         "near_duplicates": {"kept": 12_000, "near_duplicate_of_accepted": 345}})


def _render(*renderables: object, width: int = 80) -> list[str]:
    out = io.StringIO()
    console = Console(file=out, width=width, color_system=None)
    for renderable in renderables:
        console.print(renderable)
    return out.getvalue().splitlines()


def test_summary_table_fits_80_columns_without_breaking_a_number() -> None:
    result = _result()
    lines = _render(summary_table(result, cost=12.3456))
    assert max(len(line) for line in lines) <= 80
    text = "\n".join(lines)
    for label in LABELS[:4]:  # short enough to stay whole
        assert f"{label}/de" in text
    for cell in ("1000/1000", "963/1000", "1,234", "4,321", "23%", "1.23M", "12446/14000",
                 "17.3k", "60.5k", "13.2M", "short 37", "cross_label_duplic"):
        assert cell in text, cell
    caption = " ".join(" ".join(lines[-3:]).split())
    assert "13,246,912 tokens, 3723.4 s, cost 12.3456" in caption


def test_a_run_in_one_language_names_it_once_and_keeps_reasons_whole() -> None:
    labels = ["turn_on_lights", "turn_off_lights", "set_thermostat"]
    reasons = Counter({"classifier_far_from_seeds": 158, "classifier_counter_word": 90,
                       "semantic_duplicate": 78})
    quotas = {Quota(label, "en"): QuotaStats(target=30, accepted=30, candidates=355, jobs=155,
                                             rejected=reasons, usage=Usage(12_000, 2_500))
              for label in labels}
    lines = _render(summary_table(RunStats(quotas, sent=465, cached=0)))
    assert max(len(line) for line in lines) <= 80
    assert "textsynth run (language: en)" in lines[0]
    text = "\n".join(lines)
    assert "/en" not in text
    for label in labels:
        assert any(line.split()[:1] == [label] for line in lines), label
    for reason in reasons:  # never cut inside its name (a count may go below it)
        assert reason in text, reason
    assert "classifier_counter_word 90" in text and "semantic_duplicate 78" in text
    # two languages: each row says which
    quotas[Quota("turn_on_lights", "de")] = QuotaStats(target=30, accepted=30, candidates=40,
                                                       jobs=20)
    text = "\n".join(_render(summary_table(RunStats(quotas, sent=485, cached=0))))
    assert "turn_on_lights/de" in text and "turn_on_lights/en" in text
    assert "language:" not in text


def test_counts_fit_six_characters() -> None:
    from textsynth.console import _count

    assert [_count(n) for n in (0, 9_999, 10_000, 123_456, 1_234_567, 999_999_999,
                                12_000_000_000)] == [
        "0", "9,999", "10k", "123k", "1.23M", "1000M", "12G"]


def test_rules_table_fits_80_columns() -> None:
    lines = _render(rules_table(_result()))
    assert max(len(line) for line in lines) <= 80
    assert "16545" in "\n".join(lines)  # checked = kept + removed, unbroken


def test_a_budget_stop_is_not_called_an_attempt_limit(tmp_path: Path) -> None:
    for stopped, says_attempts in (("the token budget is spent", False), (None, True)):
        result = _result(stopped)
        out = io.StringIO()
        print_result(Console(file=out, width=80, color_system=None),
                     RunResult(result, tmp_path))
        text = out.getvalue()
        assert "AddToPlaylist/de: 1000 short of the quota" not in text  # it is full
        assert "BookRestaurant/de: 37 short of the quota" in " ".join(text.split())
        assert ("attempt limit reached" in text) is says_attempts
        assert ("stopped early: the token budget is spent" in text) is not says_attempts
        assert "nothing exported" in text


def _rows_result(tmp_path: Path, dataset: object) -> RunResult:
    """A translate run's figures: one quota per source row and language."""
    quotas = {}
    for i in range(3):
        for language in ("de", "it"):
            short = i == 2 and language == "it"
            quotas[Quota("PlayMusic", language, f"row {i}")] = QuotaStats(
                target=1, accepted=0 if short else 1, candidates=2, jobs=2 if short else 1,
                rejected=Counter({"slot_lost": 2} if short else {}),
                stop=StopReason.ATTEMPT_LIMIT if short else StopReason.QUOTA_MET)
    return RunResult(RunStats(quotas, sent=7, cached=1), tmp_path, dataset)


def test_translate_results_print_one_line_per_label_and_language(tmp_path: Path) -> None:
    lines = _render(summary_table(_rows_result(tmp_path, object()).stats))
    text = "\n".join(lines)
    assert "PlayMusic/de" in text and "3/3" in text and "2/3" in text
    assert "row 0" not in text  # source rows are summed, not listed
    out = io.StringIO()
    print_result(Console(file=out, width=80, color_system=None),
                 _rows_result(tmp_path, object()))
    text = " ".join(out.getvalue().split())
    assert "dataset of 5 rows written to" in text
    assert "PlayMusic/it: 1 short of the quota (attempt limit reached;" in text
    assert "PlayMusic/de: " not in text
    out = io.StringIO()
    print_result(Console(file=out, width=80, color_system=None), _rows_result(tmp_path, None))
    assert "nothing exported: no row was accepted" in " ".join(out.getvalue().split())


def test_progress_takes_the_newest_state_at_most_ten_times_a_second() -> None:
    import io

    from rich.console import Console

    from textsynth.console import RunProgress
    from textsynth.result import QuotaSnapshot, RunSnapshot

    def snap(accepted: int, activity: str = "") -> RunSnapshot:
        return RunSnapshot((QuotaSnapshot("on", 100, accepted, accepted, 0),), accepted,
                           0, 0, activity)

    bar = RunProgress(Console(file=io.StringIO()), enabled=False, interval=60)
    with bar:
        bar(snap(1), "sent")  # the first is shown
        for n in range(2, 50):
            bar(snap(n), "processed")
        total = bar.progress.tasks[-1]
        assert total.completed == 1  # within the interval: kept, not drawn
        bar(snap(50, "waiting 3 s for retry (429)"), "processed")
        assert total.completed == 50 and bar.progress.activity == "waiting 3 s for retry (429)"
        bar(snap(51, "waiting 3 s for retry (429)"), "sent")
    assert total.completed == 51  # the last state is shown when the run ends


def test_what_the_run_waits_for_is_shown_whole_in_a_narrow_terminal() -> None:
    """On a line of its own, wrapped: in a column of the bars, 80 columns cut it off."""
    import io

    from rich.console import Console

    from textsynth.console import RunProgress
    from textsynth.result import QuotaSnapshot, RunSnapshot

    wait = ("stopping: storing the answers in flight (at most 5 s; Ctrl-C again quits at "
            "once); loading the model [gemma3-270m]")
    out = io.StringIO()
    bar = RunProgress(Console(file=out, width=80, color_system=None, force_terminal=True))
    with bar:
        bar(RunSnapshot((QuotaSnapshot("turn_on_lights", 30, 0, 0, 0),), 0, 0, 0, wait), "tick")
    shown = " ".join(out.getvalue().split())
    assert wait in shown  # every word, in order, brackets and all
    assert "0 requests sent, 0 from the store, 0 tokens, 0 rejected" in shown
    assert "0:00:0" in shown  # the bars' clock, whole: the totals no longer squeeze it
