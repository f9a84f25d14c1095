"""Schema repair: correction turns for any backend (FakeBackend, openai, the local model)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from textsynth.backends.base import Completion, Request, Usage
from textsynth.backends.fake import FakeBackend
from textsynth.backends.openai import OpenAIBackend
from textsynth.backends.repair import SchemaRepair, describe_errors
from textsynth.engine import Engine
from textsynth.errors import GenerationError, RecipeError
from textsynth.recipe import load_recipe
from textsynth.schemas import load_schema
from textsynth.seeds import derive_seed
from textsynth.testing import FaultServer

CORRECTION = "That answer could not be used"
SCHEMA = load_schema("labeled_text")  # {"items": [{"text", "label"}]}: a pydantic schema


def good(label: str = "turn_on", tag: object = 0) -> str:
    return json.dumps({"items": [{"text": f"please switch it on now {tag}", "label": label}]})


def is_correction(request: Request) -> bool:
    return CORRECTION in request.messages[-1]["content"]


def ask(backend: SchemaRepair, *requests: Request) -> list[Completion]:
    return asyncio.run(backend.generate(list(requests)))


REQUEST = Request(messages=({"role": "user", "content": "Write one."},), seed=7,
                  json_schema=SCHEMA.json_schema(), metadata={"slot": "turn_on/en", "index": 0})


def test_a_broken_answer_is_repaired_with_a_correction_turn() -> None:
    fake = FakeBackend(handler=lambda r: good() if is_correction(r) else "Sure! no JSON here")
    (out,) = ask(SchemaRepair(fake, SCHEMA, turns=2), REQUEST)
    assert out.texts == [good()]
    first, fix = fake.requests
    assert fix.messages[:-2] == REQUEST.messages
    assert fix.messages[-2] == {"role": "assistant", "content": "Sure! no JSON here"}
    assert "the answer held no JSON" in fix.messages[-1]["content"]
    assert fix.seed == derive_seed(7, "repair", 0, 0) != first.seed and fix.n == 1
    assert fix.metadata == REQUEST.metadata  # the caller's job, for the backend too
    words = sum(len(m["content"].split()) for m in fix.messages)
    assert out.usage.prompt_tokens == 2 + words  # the fake counts words: both asks counted
    assert out.attempts == 2


def test_the_validation_error_is_named_and_turns_are_bounded() -> None:
    bad = json.dumps({"items": [{"text": "switch it on"}]})  # no label
    fake = FakeBackend(handler=lambda r: bad)
    repair = SchemaRepair(fake, SCHEMA, turns=2)
    (out,) = ask(repair, REQUEST)
    assert len(fake.requests) == 3  # the request and two turns, no more
    assert "label" in fake.requests[1].messages[-1]["content"]
    assert {r.seed for r in fake.requests[1:]} == {derive_seed(7, "repair", 0, t) for t in (0, 1)}
    assert out.texts == [bad] and out.attempts == 3  # the best answer, every attempt counted
    assert repair.stats["repair_turns"] == 2 and repair.stats["unrepaired"] == 1


def test_a_usable_answer_costs_nothing_more() -> None:
    fake = FakeBackend(handler=lambda r: good())
    repair = SchemaRepair(fake, SCHEMA, turns=2)
    (out,) = ask(repair, REQUEST)
    assert len(fake.requests) == 1 and out.attempts == 1 and out.texts == [good()]
    assert repair.stats.get("repair_turns", 0) == 0


def test_a_cut_off_answer_is_asked_again_and_the_complete_one_kept() -> None:
    def handler(r: Request) -> Completion:
        if is_correction(r):
            return Completion([good(tag=1)], Usage(1, 1))
        return Completion([good(tag=0)], Usage(1, 1), finish_reason="length")

    fake = FakeBackend(handler=handler)
    (out,) = ask(SchemaRepair(fake, SCHEMA, turns=1), REQUEST)
    assert "cut off at the token limit" in fake.requests[1].messages[-1]["content"]
    assert out.texts == [good(tag=1)] and out.finish_reason == "stop"


def test_only_the_broken_choice_is_asked_again() -> None:
    def handler(r: Request) -> Completion:
        if is_correction(r):
            return Completion([good(tag="fixed")])
        return Completion([good(tag=0), "nothing", good(tag=2)])

    fake = FakeBackend(handler=handler)
    (out,) = ask(SchemaRepair(fake, SCHEMA, turns=2), replace(REQUEST, n=3))
    assert out.texts == [good(tag=0), good(tag="fixed"), good(tag=2)]
    (fix,) = fake.requests[1:]
    assert fix.messages[-2]["content"] == "nothing" and fix.seed == derive_seed(7, "repair", 1, 0)


def test_corrections_of_one_batch_go_to_the_backend_together() -> None:
    fake = FakeBackend(handler=lambda r: good() if is_correction(r) else "no", batch_size=8)
    requests = [replace(REQUEST, seed=s) for s in range(5)]
    out = asyncio.run(SchemaRepair(fake, SCHEMA, turns=1).generate(requests))
    assert [o.texts for o in out] == [[good()]] * 5
    assert fake.calls == 2  # the five requests, then the five corrections in one call


def test_a_request_that_asks_for_no_schema_passes_through() -> None:
    fake = FakeBackend(handler=lambda r: "3")
    judge = Request(({"role": "user", "content": "Which label, 1 or 2?"},), json_schema=None)
    (out,) = ask(SchemaRepair(fake, SCHEMA, turns=2), judge)
    assert out.texts == ["3"] and len(fake.requests) == 1


def test_a_list_the_model_continues_passes_through() -> None:
    fake = FakeBackend(handler=lambda r: "no JSON")
    raw = Request((), prompt="Things people say to turn on a light:\n- ",
                  json_schema=REQUEST.json_schema)
    (out,) = ask(SchemaRepair(fake, SCHEMA, turns=2), raw)
    assert out.texts == ["no JSON"] and len(fake.requests) == 1  # no chat turn to add


def test_a_refused_correction_keeps_the_first_answer() -> None:
    def handler(r: Request) -> str:
        if is_correction(r):
            raise GenerationError("the server refused the request", 1)
        return "no JSON"

    (out,) = ask(SchemaRepair(FakeBackend(handler=handler), SCHEMA, turns=2), REQUEST)
    assert out.texts == ["no JSON"] and out.attempts == 1


def test_the_wrapper_is_the_backend_to_the_engine() -> None:
    fake = FakeBackend(model="m1", batch_size=4, concurrency=3)
    repair = SchemaRepair(fake, SCHEMA, turns=1)
    assert (repair.name, repair.model_name, repair.batch_size, repair.max_concurrency) == \
        ("fake", "m1", 4, 3)
    assert REQUEST.key(repair.name, repair.model_name) == REQUEST.key(fake.name, fake.model_name)
    with pytest.raises(ValueError):
        SchemaRepair(fake, SCHEMA, turns=-1)


def test_errors_are_told_in_a_few_words() -> None:
    assert describe_errors(["no_json", "no_json"], "stop") == "the answer held no JSON"
    assert describe_errors(["invalid: label: field required"], "length") == (
        "it was cut off at the token limit, so answer more briefly; label: field required")


# -- in a run: the recipe switch, the store, resume ---------------------------------------
def recipe(tmp_path: Path, **generation: Any) -> Any:
    return load_recipe({
        "name": "repair", "labels": {"turn_on": "Switch something on"}, "per_label": 3,
        "schema": "labeled_text", "backend": {"type": "fake"},
        "generation": {"examples_per_request": 1, **generation},
        "export": {"dir": str(tmp_path / "out")},
        "quality": {"min_words": 2, "language_id": False, "near_duplicates": False,
                    "novelty": False, "semantic": False, "request": False,
                    "classifier": False},
    })


def first_broken(request: Request) -> str:
    if is_correction(request):
        return good(tag=request.seed % 1000)
    return "Here you go: turn it on" if request.metadata["index"] == 0 else \
        good(tag=request.seed % 1000)


def test_a_run_stores_the_repaired_completion_and_a_rerun_sends_nothing(
        tmp_path: Path) -> None:
    fake = FakeBackend(handler=first_broken)
    engine = Engine(recipe(tmp_path, repair_turns=1), backend=fake)
    asyncio.run(engine.run())
    assert engine.result.complete and sum(map(is_correction, fake.requests)) == 1
    assert engine.result.rejected.total() == 0  # the broken answer never reached the gate
    texts, attempts, tokens = engine.store._db.execute(
        "SELECT texts, attempts, completion_tokens FROM completions WHERE job_index = 0"
    ).fetchone()
    fix = next(r for r in fake.requests if is_correction(r))
    assert json.loads(texts) == [good(tag=fix.seed % 1000)]  # the repaired answer is stored
    broken_words = 6  # "Here you go: turn it on", as the fake backend counts tokens
    assert attempts == 2 and tokens == broken_words + len(good().split())
    assert engine.store.get_meta("summary")["backend_stats"]["repair_turns"] == 1
    rows = sorted(e.text for e in engine.store.examples())
    engine.store.close()
    again = FakeBackend(handler=first_broken)
    engine = Engine(recipe(tmp_path, repair_turns=1), backend=again)
    asyncio.run(engine.run())
    assert again.requests == []  # every completion, the repaired one too, came from the store
    assert sorted(e.text for e in engine.store.examples()) == rows
    engine.store.close()


def test_correction_turns_stay_within_the_budget(tmp_path: Path) -> None:
    """Every answer is broken and every correction too: the budget counts the turns, so
    the run stops within one request's worst case of its limit, turns included."""
    fake = FakeBackend(handler=lambda r: "Here you go: turn it on and off again please")
    r = recipe(tmp_path, repair_turns=2, max_tokens=40, batch_size=1, concurrency=1)
    r = r.with_overrides(set={"budget.max_tokens": 600, "per_label": 50})
    engine = Engine(r, backend=fake)
    asyncio.run(engine.run())
    worst = engine.budget.estimate(fake.requests[0])
    assert engine.budget.used.total_tokens <= 600 + worst.total_tokens
    assert sum(map(is_correction, fake.requests)) == 2 * sum(
        not is_correction(q) for q in fake.requests)  # two turns for each first ask
    engine.store.close()


def test_without_repair_turns_the_broken_answer_is_a_reject(tmp_path: Path) -> None:
    fake = FakeBackend(handler=first_broken)
    engine = Engine(recipe(tmp_path), backend=fake)  # the fake backend's default: none
    asyncio.run(engine.run())
    assert not any(map(is_correction, fake.requests))
    assert engine.result.rejected["parse:no_json"] == 1
    engine.store.close()


def test_the_old_spelling_is_accepted_and_a_conflict_is_an_error(tmp_path: Path) -> None:
    data: dict[str, Any] = {
        "name": "x", "labels": ["a"], "per_label": 1,
        "backend": {"type": "openai", "options": {"base_url": "http://127.0.0.1:9/v1",
                                                   "reasks": 1}}}
    old = load_recipe(data)
    assert old.generation.repair_turns == 1 and "reasks" not in old.backend.options
    data["generation"] = {"repair_turns": 3}
    with pytest.raises(RecipeError, match=r"give only generation\.repair_turns"):
        load_recipe(data)
    with pytest.raises(RecipeError, match=r"reasks moved to generation\.repair_turns"):
        OpenAIBackend({"base_url": "http://127.0.0.1:9/v1", "reasks": 1})


# -- the openai backend, on the loopback fault server ---------------------------------------
def test_openai_answers_are_repaired_by_the_wrapper(tmp_path: Path) -> None:
    def reply(body: Mapping[str, Any], choice: int) -> str:
        return good(tag=body["seed"] % 1000) if CORRECTION in body["messages"][-1]["content"] \
            else "no JSON, sorry"

    with FaultServer(reply=reply) as srv:
        r = recipe(tmp_path).model_dump(by_alias=True)
        r["backend"] = {"type": "openai", "options": {"base_url": srv.url, "model": "m",
                                                      "backoff": 0.01, "concurrency": 1}}
        engine = Engine(load_recipe(r))  # openai's default: two turns
        asyncio.run(engine.run())
        bodies = srv.bodies
    assert engine.result.complete
    asks = [b for b in bodies if CORRECTION not in b["messages"][-1]["content"]]
    fixes = [b for b in bodies if CORRECTION in b["messages"][-1]["content"]]
    # jobs sent ahead and not needed may have had their correction dropped at the end
    assert len(fixes) >= 3
    assert {f["seed"] for f in fixes} <= {derive_seed(a["seed"], "repair", 0, 0) for a in asks}
    assert fixes[0]["response_format"]["type"] == "json_schema"  # still structured
    used = engine.store._db.execute(
        "SELECT attempts FROM completions WHERE job_index < 3").fetchall()
    assert used == [(2,)] * 3  # the three answers the run used were repaired, once each
    stats = engine.store.get_meta("summary")["backend_stats"]
    assert stats["repair_turns"] >= 3 and stats.get("unrepaired", 0) == stats.get("dropped", 0)
    engine.store.close()


# -- the embedded model ------------------------------------------------------------------------
@pytest.mark.model
def test_the_local_model_gets_correction_turns(tmp_path: Path) -> None:
    pytest.importorskip("openvino_genai")
    r = recipe(tmp_path, repair_turns=1, max_tokens=60, max_attempts=2,
               temperature=0.0).model_dump(by_alias=True)
    r["backend"] = {"type": "openvino", "options": {"batch_size": 4}}
    r["per_label"] = 2
    engine = Engine(load_recipe(r))
    asyncio.run(engine.run())
    stats = engine.store.get_meta("summary")["backend_stats"]
    turns, unrepaired = stats.get("repair_turns", 0), stats.get("unrepaired", 0)
    # SmolLM2-135M rarely writes the labeled_text JSON at once: it is asked again
    assert turns >= 1 and unrepaired <= turns
    rows = engine.store._db.execute("SELECT attempts FROM completions").fetchall()
    assert sum(a for (a,) in rows) == len(rows) + turns  # each turn counted in its completion
    engine.store.close()
