"""What a run did: per-quota counts, why each short quota stopped, the stored summary."""

from __future__ import annotations

from collections import Counter

from textsynth.backends.base import Usage
from textsynth.plan import Quota
from textsynth.result import QuotaStats, RunSnapshot, RunStats, StopReason

ON, OFF = Quota("turn_on", "en"), Quota("turn_off", "en")


def result() -> RunStats:
    on = QuotaStats(3, accepted=3, candidates=5, jobs=2, rejected=Counter(too_short=2),
                    usage=Usage(10, 20), stop=StopReason.QUOTA_MET)
    off = QuotaStats(3, accepted=1, candidates=4, jobs=4,
                     rejected=Counter(too_short=1, exact_duplicate=2), usage=Usage(30, 40),
                     stop=StopReason.BUDGET)
    return RunStats({ON: on, OFF: off}, sent=6, cached=1, usage=Usage(40, 60))


def test_a_short_quota_says_how_short_and_why() -> None:
    r = result()
    assert not r.complete
    assert r.shortfalls == {"turn_off/en": 2}
    assert r.stop_reasons == {"turn_off/en": StopReason.BUDGET}
    assert StopReason.BUDGET.advice.startswith("raise budget.max_tokens")
    assert StopReason.QUOTA_MET.advice == ""


def test_a_short_quota_without_a_recorded_stop_ran_out_of_attempts() -> None:
    r = result()
    r.quotas[OFF].stop = None
    assert r.stop_reasons == {"turn_off/en": StopReason.ATTEMPT_LIMIT}


def test_a_quota_whose_answers_were_cut_off_is_told_to_raise_max_tokens() -> None:
    # before: "raise generation.max_attempts ... or loosen the quality rules", neither of
    # which helps when every answer stops at max_tokens
    cut = QuotaStats(2, candidates=4, rejected=Counter({"parse:truncated": 4}),
                     stop=StopReason.ATTEMPT_LIMIT)
    assert cut.advice == ("4 of its answers were cut off at max_tokens: raise "
                          "generation.max_tokens (--max-tokens for translate and paraphrase)")
    mixed = QuotaStats(2, rejected=Counter({"parse:truncated": 2, "duplicate": 3}))
    assert mixed.advice == StopReason.ATTEMPT_LIMIT.advice  # the cut-off ones are a minority
    spent = QuotaStats(2, rejected=Counter({"parse:truncated": 4}), stop=StopReason.BUDGET)
    assert spent.advice == StopReason.BUDGET.advice


def test_rejects_add_up_over_quotas() -> None:
    assert result().rejected == Counter(too_short=3, exact_duplicate=2)


def test_the_summary_prices_each_quota_and_the_stored_total() -> None:
    def cost(usage: Usage) -> float:
        return usage.prompt_tokens * 1.0 + usage.completion_tokens * 2.0

    summary = result().summary(cost, stored=Usage(100, 200))
    off = summary["quotas"]["turn_off/en"]
    assert off == {"target": 3, "accepted": 1, "candidates": 4, "jobs": 4,
                   "rejected": {"too_short": 1, "exact_duplicate": 2},
                   "prompt_tokens": 30, "completion_tokens": 40, "cost": 110.0,
                   "stop": "budget spent"}
    assert (summary["prompt_tokens"], summary["completion_tokens"], summary["cost"]) == \
        (100, 200, 500.0)  # what the store holds (earlier runs too), not this run alone
    assert (summary["sent"], summary["cached"]) == (6, 1)


def test_a_snapshot_names_quotas_by_label_unless_the_run_is_multilingual() -> None:
    r = result()
    one = RunSnapshot.of(r.quotas, 6, 1, 100, "", multilingual=False)
    assert [q.name for q in one.quotas] == ["turn_on", "turn_off"]
    assert (one.accepted, one.target, one.rejected) == (4, 6, 5)
    many = RunSnapshot.of(r.quotas, 6, 1, 100, "", multilingual=True)
    assert [q.name for q in many.quotas] == ["turn_on/en", "turn_off/en"]
