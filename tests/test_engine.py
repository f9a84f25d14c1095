from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import pytest

from textsynth import FakeBackend, Request, load_recipe
from textsynth.engine import Engine
from textsynth.errors import BackendUnavailable
from textsynth.result import RunSnapshot, StopReason
from textsynth.store import Store


def _unique_handler(request: Request) -> str:
    """Deterministic per request: 3 good lines, one duplicate, one junk line."""
    label = request.metadata["slot"].split("/")[0].replace("_", " ")
    lines = [f"please {label} number {request.seed % 1000} item {i}" for i in range(3)]
    lines.append(f"please {label} now")  # repeats across requests -> duplicate
    lines.append("As an AI language model I cannot do that")
    return "\n".join(f"{i + 1}. {line}" for i, line in enumerate(lines))


def run(recipe, backend, store=None):
    engine = Engine(recipe, backend=backend, store=store)
    result = asyncio.run(engine.run())
    return engine, result


def texts(store: Store) -> list[tuple[str, str]]:
    return [(e.label, e.text) for e in store.examples()]


def test_quota_is_topped_up_despite_duplicates_and_junk(recipe_dict: dict) -> None:
    recipe_dict["per_label"] = 10
    recipe = load_recipe(recipe_dict)
    fake = FakeBackend(handler=_unique_handler)
    engine, result = run(recipe, fake)
    assert result.complete
    rows = texts(engine.store)
    assert len(rows) == 20
    assert len({t for _, t in rows}) == 20
    assert {label for label, _ in rows} == {"turn_on", "turn_off"}
    reasons = result.rejected
    assert reasons["assistant_speak"] >= 1
    assert reasons["duplicate"] >= 1
    # every request whose completion was processed is stored before parsing
    assert engine.store.completion_count() == result.sent


def test_all_junk_stops_at_attempt_limit_and_says_so(recipe_dict: dict) -> None:
    recipe_dict["generation"] = {"max_attempts": 4}
    recipe = load_recipe(recipe_dict)
    fake = FakeBackend(responses=["Sure, here are some examples:\n1. As an AI I can't"])
    _, result = run(recipe, fake)
    assert not result.complete
    assert result.shortfalls == {"turn_on/en": 6, "turn_off/en": 6}
    assert result.stop_reasons == {"turn_on/en": StopReason.ATTEMPT_LIMIT,
                                   "turn_off/en": StopReason.ATTEMPT_LIMIT}
    assert len(fake.requests) == 8


def test_each_quota_says_why_it_stopped(recipe_dict: dict) -> None:
    recipe_dict["generation"] = {"max_attempts": 3}

    def answer(request: Request) -> str:
        if request.metadata["slot"].startswith("turn_off"):
            return "As an AI language model I cannot do that"
        return _unique_handler(request)

    engine, result = run(load_recipe(recipe_dict), FakeBackend(handler=answer))
    on, off = result.quotas.values()
    assert (on.stop, off.stop) == (StopReason.QUOTA_MET, StopReason.ATTEMPT_LIMIT)
    assert result.stop_reasons == {"turn_off/en": StopReason.ATTEMPT_LIMIT}
    summary = engine.store.get_meta("summary")["quotas"]
    assert summary["turn_on/en"]["stop"] == "quota met"
    assert summary["turn_off/en"]["stop"] == "attempt limit reached"


def test_same_text_under_two_labels_is_rejected_as_cross_label(recipe_dict: dict) -> None:
    recipe_dict["per_label"] = 2
    recipe = load_recipe(recipe_dict)
    fake = FakeBackend(responses=["1. do the thing now\n2. other thing {label} {seed}\n"
                                  "3. third thing {label} {seed}"])
    engine, result = run(recipe, fake)
    assert result.rejected["cross_label_duplicate"] == 1
    rows = texts(engine.store)
    assert rows.count(("turn_on", "do the thing now")) == 1
    assert ("turn_off", "do the thing now") not in rows


def test_fixed_seed_gives_identical_dataset(recipe_dict: dict, tmp_path: Path) -> None:
    recipe = load_recipe(recipe_dict)
    first, _ = run(recipe, FakeBackend(handler=_unique_handler))
    recipe2 = recipe.with_overrides(out=tmp_path / "again")
    second, _ = run(recipe2, FakeBackend(handler=_unique_handler))
    assert texts(first.store) == texts(second.store)
    other = recipe.with_overrides(out=tmp_path / "seed2", seed=2)
    third, _ = run(other, FakeBackend(handler=_unique_handler))
    assert texts(third.store) != texts(first.store)


class _Crash(FakeBackend):
    """Fails for good on the third call, like a run killed mid-way."""

    async def generate(self, requests):  # type: ignore[override]
        if self.calls == 2:
            self.calls += 1
            raise BackendUnavailable("connection refused")
        return await super().generate(requests)


def test_resume_after_interruption_sends_nothing_twice(recipe_dict: dict, tmp_path: Path) -> None:
    recipe_dict["per_label"] = 12
    recipe_dict["backend"] = {"type": "fake", "options": {"batch_size": 2}}
    recipe = load_recipe(recipe_dict)
    crashing = _Crash({"batch_size": 2}, handler=_unique_handler)
    with pytest.raises(BackendUnavailable):
        run(recipe, crashing)
    store = Store.in_dir(recipe.output_dir)
    stored = store.completion_count()
    # every answered request was stored, none of the failed batch
    assert 4 <= stored == len(crashing.requests)
    answered = {r.key("fake", "fake") for r in crashing.requests}

    resumed_backend = FakeBackend({"batch_size": 2}, handler=_unique_handler)
    engine, result = run(recipe, resumed_backend, store)
    assert result.complete and result.cached >= 4
    resent = {r.key("fake", "fake") for r in resumed_backend.requests}
    assert not (resent & answered)
    assert store.completion_count() == stored + len(resumed_backend.requests)

    clean = recipe.with_overrides(out=tmp_path / "clean")
    clean_engine, _ = run(clean, FakeBackend({"batch_size": 2}, handler=_unique_handler))
    assert texts(engine.store) == texts(clean_engine.store)


def test_changing_quality_rules_reuses_every_completion(recipe_dict: dict) -> None:
    recipe = load_recipe(recipe_dict)
    fake = FakeBackend(handler=_unique_handler)
    _, first = run(recipe, fake)
    stricter = load_recipe({**recipe_dict, "quality": {**recipe_dict["quality"],
                                                        "min_words": 6}})
    again = FakeBackend(handler=_unique_handler)
    _, second = run(stricter, again)
    assert first.sent > 0
    assert second.cached >= first.sent
    assert len(again.requests) == second.sent


def test_prompts_carry_attributes_and_fewshot(recipe_dict: dict) -> None:
    recipe_dict["vary"] = {"persona": ["a chef", "a pilot"], "style": ["terse", "chatty"]}
    recipe_dict["labels"]["turn_on"] = {"description": "on", "examples": ["light on", "fan on"]}
    recipe_dict["generation"] = {"fewshot": 1}
    recipe = load_recipe(recipe_dict)
    fake = FakeBackend(handler=_unique_handler)
    run(recipe, fake)
    prompts = [r.messages[-1]["content"] for r in fake.requests]
    seen_combos = {(("chef" in p), ("terse" in p.lower())) for p in prompts}
    assert len(seen_combos) == 4  # every attribute combination is used
    on_prompts = [p for r, p in zip(fake.requests, prompts, strict=True)
                  if r.metadata["slot"].startswith("turn_on")]
    assert all(("light on" in p) != ("fan on" in p) for p in on_prompts)


def test_budget_stops_cleanly(recipe_dict: dict) -> None:
    recipe_dict["budget"] = {"max_tokens": 150}
    recipe_dict["generation"] = {"max_tokens": 20}
    recipe_dict["backend"] = {"type": "fake", "options": {"batch_size": 1}}
    recipe = load_recipe(recipe_dict)
    counter = itertools.count()
    fake = FakeBackend({"batch_size": 1},
                       handler=lambda r: f"1. unique thing number {next(counter)} here")
    _, result = run(recipe, fake)
    assert result.stopped and "budget" in result.stopped
    assert not result.complete
    assert set(result.stop_reasons.values()) == {StopReason.BUDGET}
    # requests are only sent while their estimated worst case fits: the budget is passed
    # by one request at most
    assert 150 - 60 < result.usage.total_tokens <= 150 + 60
    assert len(fake.requests) >= 2


def test_a_run_collects_less_often_and_restores_the_collector(recipe_dict: dict) -> None:
    import gc

    before = gc.get_threshold()
    seen: list[tuple[int, ...]] = []

    def handler(request: Request) -> str:
        seen.append(gc.get_threshold())
        return _unique_handler(request)

    _, result = run(load_recipe(recipe_dict), FakeBackend(handler=handler))
    assert result.complete
    assert seen and all(t[0] >= 50_000 for t in seen)  # during the run
    assert gc.get_threshold() == before  # after it


def test_progress_gets_snapshots_of_the_run(recipe_dict: dict) -> None:
    seen: list[tuple[RunSnapshot, str]] = []
    recipe_dict["languages"] = ["de", "it"]
    engine = Engine(load_recipe(recipe_dict), backend=FakeBackend(handler=_unique_handler),
                    progress=lambda snapshot, event: seen.append((snapshot, event)))
    result = asyncio.run(engine.run())
    assert {event for _, event in seen} >= {"sent", "processed"}
    last = seen[-1][0]
    assert [q.name for q in last.quotas] == ["turn_on/de", "turn_off/de", "turn_on/it",
                                             "turn_off/it"]
    assert last.accepted == last.target == 24 and last.sent == result.sent
    assert last.rejected == sum(result.rejected.values())
    accepted = [snapshot.accepted for snapshot, _ in seen]
    assert accepted == sorted(accepted)  # each is a copy of its moment, not a live view


def test_the_gate_sees_each_burst_of_answers_before_judging_them(recipe_dict: dict) -> None:
    """Answers read by the correction turns are handed to the gate as they arrive, so the
    near-duplicate rule computes their signatures a burst at a time; the rows are the
    same as judging one by one."""
    from textsynth.quality import QualityGate
    from textsynth.quality.dedup import NearDuplicateDedup

    primed: list[str] = []

    class Counting(NearDuplicateDedup):
        def prime(self, texts):
            primed.extend(texts)
            super().prime(texts)

    recipe_dict["generation"] = {"repair_turns": 1}
    recipe = load_recipe(recipe_dict)
    rows = []
    for rule in (NearDuplicateDedup(), Counting()):
        engine = Engine(recipe, backend=FakeBackend(handler=_unique_handler),
                        store=Store(":memory:"), gate=QualityGate([rule]))
        asyncio.run(engine.run())
        rows.append(texts(engine.store))
    assert rows[0] == rows[1] and len(rows[0]) == 12
    assert {text for _, text in rows[1]} <= set(primed)
