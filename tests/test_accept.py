"""The acceptor: completion -> parsed candidates -> quality gate -> accepted or rejected rows."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from textsynth.accept import Acceptor, complete_items
from textsynth.backends.base import Completion, Usage
from textsynth.errors import GenerationError
from textsynth.jobs import RecipeJobs
from textsynth.plan import Quota
from textsynth.prompt import AcceptedTexts
from textsynth.quality import build_gate
from textsynth.recipe import load_recipe
from textsynth.result import QuotaStats
from textsynth.schemas import Parsed
from textsynth.store import Store


class Setup:
    """An acceptor on an in-memory store, for a recipe of two labels."""

    def __init__(self, recipe_dict: dict[str, Any], per_label: int = 3, **quality: Any) -> None:
        recipe = load_recipe({**recipe_dict, "per_label": per_label,
                              "quality": {**recipe_dict["quality"], **quality}})
        self.jobs = RecipeJobs(recipe)
        self.planner = self.jobs.planner
        self.store = Store(":memory:")
        self.stats = {q: QuotaStats(per_label) for q in self.planner.quotas}
        self.accepted = AcceptedTexts(self.planner.quotas)
        self.acceptor = Acceptor(self.store, build_gate(recipe), self.jobs, "m", self.stats,
                                 self.accepted)
        self.on, self.off = self.planner.quotas

    def accept(self, quota: Quota, index: int, *texts: str, finish: str = "stop") -> None:
        completion = Completion([json.dumps(list(texts))], Usage(5, 7), finish_reason=finish)
        job = self.planner.job(quota, index)
        asyncio.run(self.acceptor.accept(job, completion, f"key-{quota.label}-{index}"))
        self.acceptor.flush()

    def rows(self) -> list[tuple[str, str]]:
        return [(e.label, e.text) for e in self.store.examples()]


@pytest.fixture
def setup(recipe_dict: dict[str, Any]) -> Setup:
    return Setup(recipe_dict)


def test_candidates_are_parsed_judged_and_stored_with_their_provenance(setup: Setup) -> None:
    setup.accept(setup.on, 0, "please switch the lamp on.", "x", "turn on the fan please.")
    assert setup.rows() == [("turn_on", "please switch the lamp on."),
                            ("turn_on", "turn on the fan please.")]
    st = setup.stats[setup.on]
    assert (st.jobs, st.candidates, st.accepted) == (1, 3, 2)
    assert st.rejected == {"too_short": 1} and st.usage == Usage(5, 7)
    row = next(setup.store.examples())
    job = setup.planner.job(setup.on, 0)
    assert (row.request_id, row.seed, row.model, row.template) == \
        ("key-turn_on-0", job.seed, "m", "utterances")
    assert setup.accepted.texts(setup.on, [0, 1]) == ["please switch the lamp on.",
                                                      "turn on the fan please."]


def test_a_full_quota_takes_no_more_candidates(setup: Setup) -> None:
    setup.accept(setup.on, 0, *(f"switch light number {i} on." for i in range(5)))
    st = setup.stats[setup.on]
    assert st.accepted == 3 and st.candidates == 3 and st.full
    assert len(setup.rows()) == 3


def test_the_last_item_of_a_cut_off_answer_is_a_truncated_reject(setup: Setup) -> None:
    setup.accept(setup.on, 0, "switch the lamp on.", "switch the fan on and th",
                 finish="length")
    assert setup.rows() == [("turn_on", "switch the lamp on.")]
    assert setup.stats[setup.on].rejected == {"parse:truncated": 1}
    setup.accept(setup.on, 1, "turn the heater on now", finish="stop")
    assert ("turn_on", "turn the heater on now") in setup.rows()  # not cut: kept as it is


def test_complete_items_keeps_a_cut_answer_that_ends_a_sentence() -> None:
    parsed = [Parsed("one."), Parsed("it ends here!")]
    assert [p.error for p in complete_items(parsed, cut=True)] == [None, None]
    parsed = [Parsed("one."), Parsed("it stops mid")]
    assert [p.error for p in complete_items(parsed, cut=True)] == [None, "truncated"]
    assert complete_items([Parsed("it stops mid")], cut=False)[0].error is None
    assert complete_items([], cut=True) == []


def test_a_text_under_a_second_label_is_rejected_there(setup: Setup) -> None:
    setup.accept(setup.on, 0, "toggle the living room lamp.")
    setup.accept(setup.off, 0, "toggle the living room lamp.")
    assert setup.rows() == [("turn_on", "toggle the living room lamp.")]
    assert setup.stats[setup.off].rejected == {"cross_label_duplicate": 1}


def test_with_withdraw_conflicts_the_first_row_is_retracted(
        recipe_dict: dict[str, Any]) -> None:
    setup = Setup(recipe_dict, withdraw_conflicts=True)
    setup.accept(setup.on, 0, "toggle the living room lamp.")
    setup.accept(setup.off, 0, "toggle the living room lamp.")
    assert setup.rows() == []  # a classifier cannot learn from it under either label
    on, off = setup.stats[setup.on], setup.stats[setup.off]
    assert on.accepted == 0 and on.rejected["cross_label_conflict"] == 1
    assert off.accepted == 0 and sum(off.rejected.values()) == 1
    assert setup.accepted.count_before(setup.on, 10) == 0  # prompts no longer show it
    reasons = sorted(r["reason"] for r in setup.store.rejects())
    assert "cross_label_conflict" in reasons and len(reasons) == 2


def test_a_failed_job_counts_as_an_attempt_and_a_reject(setup: Setup) -> None:
    job = setup.planner.job(setup.off, 0)
    setup.acceptor.failed(job, GenerationError("the server refused the request", 3,
                                               last_output="half an answer"))
    setup.acceptor.flush()
    st = setup.stats[setup.off]
    assert st.jobs == 1 and st.rejected == {"generation_failed": 1}
    (reject,) = setup.store.rejects()
    assert reject["text"] == "half an answer" and "refused" in reject["detail"]


def test_rows_are_committed_only_by_flush(recipe_dict: dict[str, Any]) -> None:
    setup = Setup(recipe_dict)
    job = setup.planner.job(setup.on, 0)
    completion = Completion([json.dumps(["switch the hall light on."])])
    asyncio.run(setup.acceptor.accept(job, completion, "k"))
    assert setup.store._db.in_transaction  # written, not committed: a crash re-derives them
    setup.acceptor.flush()
    assert not setup.store._db.in_transaction and setup.store.example_count() == 1


def test_each_answer_is_read_once_when_correction_turns_read_it_first(
        recipe_dict: dict[str, Any], tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Correction turns read every answer to see whether it needs one; the acceptor then
    takes their reading instead of reading the text again (a run's CPU), unless the
    texts changed since."""
    from textsynth import FakeBackend
    from textsynth.pipeline import run_recipe
    from textsynth.schemas import UtteranceList

    reads: list[str] = []
    parse = UtteranceList.parse

    def counted(self: UtteranceList, text: str) -> list[Parsed]:
        reads.append(text)
        return parse(self, text)

    monkeypatch.setattr(UtteranceList, "parse", counted)  # counts; the parsing is real
    recipe = load_recipe({**recipe_dict, "generation": {"repair_turns": 1},
                          "export": {"dir": str(tmp_path / "out"), "formats": ["jsonl"]}})
    answer = '["please {label} the thing number {seed} now", "kindly {label} item {seed}"]'
    outcome = run_recipe(recipe, backend=FakeBackend({"batch_size": 1, "responses": [answer]}))
    assert outcome.stats.complete and outcome.stats.sent > 0
    assert len(reads) == outcome.stats.sent  # one answer a request, read once
    setup = Setup(recipe_dict)  # an answer the turns did not read is read here
    setup.accept(setup.on, 0, "switch the hall light on")
    assert reads[-1] == '["switch the hall light on"]'
