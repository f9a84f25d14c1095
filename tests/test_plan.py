"""Planning: quotas (label x language), deterministic job seeds, attribute cycles, and how
many requests a run may send for a quota."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from textsynth.backends.base import Request
from textsynth.backends.fake import FakeBackend
from textsynth.engine import Engine
from textsynth.plan import Planner, Quota
from textsynth.recipe import load_recipe
from textsynth.result import StopReason
from textsynth.seeds import derive_seed


def planner(recipe_dict: dict[str, Any], **changes: Any) -> Planner:
    return Planner(load_recipe({**recipe_dict, **changes}))


def test_one_quota_per_label_and_language_languages_outermost(recipe_dict: dict) -> None:
    plan = planner(recipe_dict, languages=["en", "de"])
    assert plan.quotas == [Quota("turn_on", "en"), Quota("turn_off", "en"),
                           Quota("turn_on", "de"), Quota("turn_off", "de")]
    assert [str(q) for q in plan.quotas[:1]] == ["turn_on/en"]
    assert planner(recipe_dict).quotas == [Quota("turn_on", "en"), Quota("turn_off", "en")]


def test_a_job_seed_depends_on_the_recipe_seed_quota_and_index_only(recipe_dict: dict) -> None:
    first, again = planner(recipe_dict), planner(recipe_dict)
    on, off = first.quotas
    jobs = [first.job(q, i) for q in (on, off) for i in range(50)]
    assert [j.seed for j in jobs] == [again.job(q, i).seed for q in (on, off) for i in range(50)]
    assert len({j.seed for j in jobs}) == 100  # no two jobs share a seed
    assert all(0 <= j.seed < 2**31 for j in jobs)  # what every backend takes as a seed
    assert first.job(on, 7).seed == derive_seed(0, "turn_on", "en", 7) % 2**31
    # asking out of order (a resumed run, a top-up) gives the same job
    assert first.job(off, 30) == again.job(off, 30)
    other = planner(recipe_dict, seed=1)
    assert other.job(on, 0).seed != first.job(on, 0).seed


def test_every_vary_combination_comes_once_before_any_repeats(recipe_dict: dict) -> None:
    vary = {"tone": ["polite", "curt", "casual"], "room": ["kitchen", "hall"]}
    plan = planner(recipe_dict, vary=vary)
    on, off = plan.quotas
    combos = [tuple(sorted(plan.job(on, i).attributes.items())) for i in range(12)]
    every = {tuple(sorted(zip(vary, c, strict=True))) for c in itertools.product(*vary.values())}
    assert set(combos[:6]) == every and set(combos[6:]) == every
    assert combos[:6] != combos[6:]  # the next cycle is shuffled again
    assert [plan.job(off, i).attributes for i in range(6)] != \
        [plan.job(on, i).attributes for i in range(6)]  # each quota has its own order
    assert planner(recipe_dict).job(on, 3).attributes == {}


def test_fewshot_examples_are_drawn_per_job_from_the_label_examples(recipe_dict: dict) -> None:
    labels = {"turn_on": {"description": "on", "examples": ["a b", "c d", "e f", "g h"]},
              "turn_off": {"description": "off", "examples": ["x y"]}}
    plan = planner(recipe_dict, labels=labels, generation={"fewshot": 2})
    on, off = plan.quotas
    shots = [plan.job(on, i).fewshot for i in range(20)]
    assert all(len(s) == 2 and len(set(s)) == 2 and set(s) <= set(labels["turn_on"]["examples"])
               for s in shots)
    assert len({tuple(s) for s in shots}) > 1  # a different draw per job
    assert plan.job(on, 5).fewshot == shots[5]
    assert plan.job(off, 0).fewshot == ["x y"]  # fewer examples than asked: all of them
    none = planner(recipe_dict, labels=labels, generation={"fewshot": 0})
    assert none.job(on, 0).fewshot == []


def test_attempts_per_quota_follow_the_quota_and_the_answer_size(recipe_dict: dict) -> None:
    recipe = load_recipe({**recipe_dict, "per_label": 30,
                          "generation": {"examples_per_request": 5, "n": 2}})
    assert recipe.max_attempts == 10 * 3 + 10  # ten times the requests a full answer needs
    capped = load_recipe({**recipe_dict, "generation": {"max_attempts": 4}})
    assert capped.max_attempts == 4


def test_a_quota_that_never_fills_stops_at_its_attempt_limit(recipe_dict: dict) -> None:
    def answer(request: Request) -> str:
        label = str(request.metadata["slot"]).split("/")[0]
        return "" if label == "turn_off" else f'["please turn it on now {request.seed}"]'

    fake = FakeBackend(handler=answer)
    recipe = load_recipe({**recipe_dict, "per_label": 4,
                          "generation": {"examples_per_request": 1, "max_attempts": 5}})
    engine = Engine(recipe, backend=fake)
    result = asyncio.run(engine.run())
    sent = [str(r.metadata["slot"]) for r in fake.requests]
    assert sent.count("turn_off/en") == 5  # the attempt limit, not one more
    on, off = result.quotas[Quota("turn_on", "en")], result.quotas[Quota("turn_off", "en")]
    assert on.accepted == 4 and on.stop is StopReason.QUOTA_MET
    assert off.accepted == 0 and off.stop is StopReason.ATTEMPT_LIMIT and off.jobs == 5
    # sent ahead of processing at the first guess of the yield, but never past the limit
    assert 4 <= sent.count("turn_on/en") <= 5
    engine.store.close()
