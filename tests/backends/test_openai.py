"""The openai backend against the project's fault-injecting server on loopback."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from tenacity import wait_fixed

from textsynth.backends import _openai_http, create_backend
from textsynth.backends.base import Request
from textsynth.backends.openai import OpenAIBackend
from textsynth.console import summary_table
from textsynth.engine import Engine
from textsynth.errors import BackendResponseError, BackendUnavailable, RateLimited, RecipeError
from textsynth.pipeline import run_recipe
from textsynth.recipe import Recipe, load_recipe
from textsynth.store import Store
from textsynth.testing import FaultServer, continued_reply, default_reply, letters

CORRECTION = "That answer could not be used"


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer(items=3, retry_after=0.2, hang=3.0) as srv:
        yield srv


@pytest.fixture(scope="session")
def schema_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A user pydantic schema importable as ``ts_test_schema:Order``."""
    folder = tmp_path_factory.mktemp("schema")
    (folder / "ts_test_schema.py").write_text(textwrap.dedent("""
        from typing import Literal
        from pydantic import BaseModel

        class Order(BaseModel):
            text: str
            tone: Literal["polite", "rude"]
    """))
    sys.path.insert(0, str(folder))
    yield "ts_test_schema:Order"
    sys.path.remove(str(folder))


def make_recipe(out: Path, url: str, **kwargs: Any) -> Recipe:
    return load_recipe(recipe_data(out, url, **kwargs))


def recipe_data(out: Path, url: str, *, labels: int | Mapping[str, Any] = 2, per_label: int = 6,
                schema: str = "utterances", generation: Mapping[str, Any] | None = None,
                budget: Mapping[str, Any] | None = None, **options: Any) -> dict[str, Any]:
    opts = {"base_url": url, "model": "test-model", "backoff": 0.01, "max_backoff": 0.05,
            "timeout": 5.0, **options}
    if isinstance(labels, int):
        labels = {f"label_{i}": f"label {i}" for i in range(labels)}
    return {
        "name": "openai-test", "labels": dict(labels),
        "per_label": per_label, "schema": schema,
        "generation": {"examples_per_request": 3, **(generation or {})},
        "budget": dict(budget or {}),
        "backend": {"type": "openai", "options": opts}, "export": {"dir": str(out)},
        # the server's texts are not language: rules that judge meaning stay off
        "quality": {"language_id": False, "near_duplicates": False, "novelty": False,
                    "semantic": False, "classifier": False},
    }


def run(recipe: Recipe) -> Engine:
    engine = Engine(recipe)
    asyncio.run(engine.run())
    return engine


def texts(engine: Engine) -> list[str]:
    return [e.text for e in engine.store.examples()]


def corrections(server: FaultServer) -> list[dict[str, Any]]:
    return [b for b in server.bodies if CORRECTION in b["messages"][-1]["content"]]


# -- the happy path ------------------------------------------------------------------------
def test_run_fills_every_quota_and_records_tokens(tmp_path: Path, server: FaultServer) -> None:
    recipe = make_recipe(tmp_path, server.url,
                         budget={"input_price": 1.0, "output_price": 2.0})
    engine = run(recipe)
    assert engine.result.complete
    assert len(texts(engine)) == 12 and len(set(texts(engine))) == 12
    summary = engine.store.get_meta("summary")
    assert summary["prompt_tokens"] > 0 and summary["completion_tokens"] > 0
    assert summary["cost"] == pytest.approx(
        (summary["prompt_tokens"] + 2 * summary["completion_tokens"]) / 1e6)
    for slot in summary["quotas"].values():
        assert slot["prompt_tokens"] > 0 and slot["completion_tokens"] > 0 and slot["cost"] > 0
    body = server.bodies[0]
    assert body["model"] == "test-model" and body["max_tokens"] == recipe.generation.max_tokens
    assert "seed" in body and "response_format" not in body  # built-in list schema: prompt only


def test_options_come_from_the_environment(monkeypatch: pytest.MonkeyPatch,
                                           server: FaultServer) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    monkeypatch.setenv("OPENAI_API_KEY", "env-key")
    backend = create_backend("openai", {"model": "m"})
    assert isinstance(backend, OpenAIBackend) and backend.base_url == server.url


def test_openai_without_a_key_is_a_recipe_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(RecipeError, match="OPENAI_API_KEY"):
        OpenAIBackend({"model": "gpt-4o-mini"})


def test_a_key_with_a_trailing_newline_is_sent_without_it(
        tmp_path: Path, server: FaultServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key-0123456789\n")  # read from a file
    engine = run(make_recipe(tmp_path, server.url, labels=1, per_label=3))
    assert engine.result.complete
    assert set(server.authorizations) == {"Bearer sk-test-key-0123456789"}


def test_a_key_with_a_line_break_inside_is_a_recipe_error_that_hides_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test\nkey-0123456789")
    with pytest.raises(RecipeError, match="the API key holds a line break") as caught:
        OpenAIBackend({"base_url": "http://127.0.0.1:9/v1", "model": "m"})
    assert "key-0123456789" not in str(caught.value)


def test_bad_base_url_is_a_recipe_error(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="base_url must start with http"):
        make_recipe(tmp_path, "localhost:8000")


# -- transport faults: retried, nothing asked twice after it succeeded ----------------------
@pytest.mark.parametrize("fault", ["rate_limit", "server_error", "drop", "malformed", "timeout"])
def test_transport_fault_is_retried(tmp_path: Path, server: FaultServer, fault: str) -> None:
    server.script.extend([fault, fault])
    options: dict[str, Any] = {"timeout": 0.5} if fault == "timeout" else {}
    engine = run(make_recipe(tmp_path, server.url, **options))
    assert engine.result.complete
    assert server.stats[fault] == 2
    assert engine.backend.stats["retries"] >= 2  # type: ignore[attr-defined]
    assert server.duplicates() == {}
    assert len(set(texts(engine))) == 12


def test_retry_after_is_honoured_and_slows_everyone(tmp_path: Path, server: FaultServer) -> None:
    server.retry_after = 0.4
    server.script.extend(["rate_limit", "rate_limit"])  # both jobs sent at first: no answers
    engine = run(make_recipe(tmp_path, server.url, labels=1, per_label=3))
    assert engine.result.complete and engine.result.replaced == 0
    limiter = engine.backend.limiter  # type: ignore[attr-defined]
    assert limiter.slowdowns == 1  # one cut for the burst, not one per 429
    first: dict[str, float] = {}
    for at, key in server.arrivals:  # each request asked again only after Retry-After
        if key in first:
            assert at - first[key] >= 0.4
        first.setdefault(key, at)
    assert len(server.arrivals) == 4 and server.duplicates() == {}


@pytest.mark.parametrize("http_client", ["httptools", "aiohttp"])
@pytest.mark.parametrize("fault", ["rate_limit", "server_error", "drop", "malformed", "timeout"])
def test_backend_retries_a_transport_fault(server: FaultServer, fault: str,
                                           http_client: str) -> None:
    server.script.extend([fault, fault])
    server.retry_after = 0.05

    async def go() -> Any:
        backend = OpenAIBackend({"base_url": server.url, "model": "m", "backoff": 0.01,
                                 "timeout": 0.5, "max_timeouts": 2,
                                 "http_client": http_client})
        try:
            return await backend.generate([Request(({"role": "user", "content": "hi"},))])
        finally:
            await backend.aclose()

    [completion] = asyncio.run(go())
    assert completion.attempts == 3 and len(json.loads(completion.text)) == 3
    assert server.stats[fault] == 2 and server.stats["ok"] == 1


def test_a_job_waiting_for_a_retry_is_replaced_while_others_are_answered(
        tmp_path: Path, server: FaultServer) -> None:
    server.retry_after = 3.0  # the run must not wait for it
    server.script.append("rate_limit")
    recipe = make_recipe(tmp_path, server.url, labels=1, per_label=3)  # 2 jobs sent at once
    engine = run(recipe)  # done without the 3 s wait: the job was replaced, not retried
    assert engine.result.complete and engine.result.replaced == 1
    refused = server.arrivals[0][1]
    assert [key for _, key in server.arrivals].count(refused) == 1  # never asked again
    assert len(engine.store.skipped_keys()) == 1
    rows = texts(engine)
    engine.store.close()

    before = server.stats["requests"]
    again = run(recipe)  # a resumed run skips the same job and asks nothing
    assert server.stats["requests"] == before
    assert texts(again) == rows and again.result.complete


def test_a_label_that_always_fails_is_not_replaced_forever(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    def fail_label_1(body: Mapping[str, Any]) -> str | None:
        return "server_error" if "label 1" in body["messages"][-1]["content"] else None

    # a job is replaced only if an answer is stored while it waits for its retry: label
    # 0's answers take 20 ms and are committed every 50 ms at most, so a label-1 job waits
    # a fixed 150 ms (a jittered wait may be over before the next commit)
    monkeypatch.setattr(_openai_http, "wait_random_exponential",
                        lambda multiplier, max: wait_fixed(0.15))
    with FaultServer(items=3, fault_for=fail_label_1, latency=0.02) as srv:
        recipe = make_recipe(tmp_path, srv.url, labels=2, per_label=30, max_retries=2,
                             concurrency=2, generation={"max_attempts": 4})
        with pytest.raises(BackendResponseError, match="gave up after 3 attempts"):
            run(recipe)
        failed = srv.stats["server_error"]
    summary = Store.in_dir(tmp_path).get_meta("summary")
    assert 1 <= summary["replaced"] <= 4  # at most max_attempts replaced, then retried for good
    assert failed <= 4 + 3 * 8  # replaced jobs were asked once; the rest up to 3 times


def test_dead_server_stops_the_run_with_a_clear_message(tmp_path: Path) -> None:
    with FaultServer() as srv:
        url = srv.url  # a port that nothing listens on once the server is gone
    with pytest.raises(BackendUnavailable,
                       match=r"cannot connect to .*gave up after 3 attempts") as info:
        run(make_recipe(tmp_path, url, max_retries=2))
    openai = pytest.importorskip("openai")  # an extra: textsynth[openai]
    assert isinstance(info.value.__cause__, openai.APIConnectionError)  # in the SDK's terms too


def test_errors_that_end_a_run_carry_the_sdk_exception(tmp_path: Path,
                                                       server: FaultServer) -> None:
    server.faults = {"rate_limit": 1.0}
    server.retry_after = 0.01
    with pytest.raises(RateLimited, match="gave up after 2 attempts") as info:
        run(make_recipe(tmp_path, server.url, max_retries=1, concurrency=1))
    openai = pytest.importorskip("openai")
    cause = info.value.__cause__
    assert isinstance(cause, openai.RateLimitError) and cause.status_code == 429
    assert cause.body == {"message": "rate limit reached, slow down",
                          "type": "rate_limit_error", "code": 429}


def test_the_backend_works_without_the_openai_sdk(tmp_path: Path, server: FaultServer,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openai", None)  # `import openai` raises ImportError
    engine = run(make_recipe(tmp_path, server.url, labels=1, per_label=3))
    assert engine.result.complete and len(texts(engine)) == 3
    server.faults = {"rate_limit": 1.0}
    server.retry_after = 0.01
    with pytest.raises(RateLimited, match="gave up after 2 attempts") as info:
        run(make_recipe(tmp_path / "again", server.url, max_retries=1, concurrency=1))
    # no SDK to say it in its terms: the cause is the last attempt's own error
    assert isinstance(info.value.__cause__, RateLimited)
    assert "openai" not in type(info.value.__cause__).__module__


# -- refused requests ------------------------------------------------------------------------
def test_one_bad_request_rejects_only_that_job(tmp_path: Path, server: FaultServer) -> None:
    server.script.append("bad_request")
    engine = run(make_recipe(tmp_path, server.url))
    assert engine.result.complete
    assert engine.result.rejected["generation_failed"] == 1
    reject = next(r for r in engine.store.rejects() if r["reason"] == "generation_failed")
    assert "400" in reject["detail"]


def test_every_request_refused_stops_the_run(tmp_path: Path, server: FaultServer) -> None:
    server.faults = {"bad_request": 1.0}
    with pytest.raises(BackendResponseError, match="3 requests in a row were refused"):
        run(make_recipe(tmp_path, server.url, max_client_errors=3, concurrency=1))


def test_wrong_key_stops_the_run_and_the_message_hides_it(tmp_path: Path) -> None:
    with FaultServer(api_key="right-key") as srv, \
            pytest.raises(BackendResponseError, match="refused the API key") as info:
        run(make_recipe(tmp_path, srv.url, api_key="wrong-key"))
    assert "wrong-key" not in str(info.value)
    openai = pytest.importorskip("openai")
    cause = info.value.__cause__
    assert isinstance(cause, openai.AuthenticationError) and "wrong-key" not in str(cause)


# -- answers that are not usable: correction turns --------------------------------------------
def test_empty_answer_is_reasked_with_a_correction_turn(tmp_path: Path,
                                                        server: FaultServer) -> None:
    server.script.append("empty")
    engine = run(make_recipe(tmp_path, server.url, labels=1, per_label=3))
    assert engine.result.complete
    fixes = corrections(server)
    assert len(fixes) == 1 and "the answer was empty" in fixes[0]["messages"][-1]["content"]
    assert fixes[0]["messages"][-2] == {"role": "assistant", "content": ""}
    stats = engine.store.get_meta("summary")["backend_stats"]  # the backend's and the repair's
    assert stats["repair_turns"] == 1 and stats["unrepaired"] == 0
    assert stats.get("retries", 0) == 0


def _orders(good: bool, body: Mapping[str, Any] | None = None) -> str:
    tone = "polite" if good else "very rude"
    tag = (body or {}).get("seed", 0) % 1000  # short: no phone-number look-alikes
    return json.dumps({"items": [{"text": f"please send order {tag}-{i} today", "tone": tone}
                                 for i in range(3)]})


def test_validation_error_is_fed_back_and_every_attempt_is_counted(
        tmp_path: Path, schema_module: str) -> None:
    def reply(body: Mapping[str, Any], choice: int) -> str:
        return _orders(CORRECTION in body["messages"][-1]["content"], body)

    with FaultServer(reply=reply) as srv:
        engine = run(make_recipe(tmp_path, srv.url, labels=1, per_label=3,
                                 schema=schema_module))
        first, fix = srv.bodies[0], corrections(srv)[0]
    assert engine.result.complete
    assert first["response_format"]["type"] == "json_schema"
    assert "tone" in json.dumps(first["response_format"]["json_schema"]["schema"])
    assert "tone" in fix["messages"][-1]["content"]  # the pydantic error, told to the model
    row = engine.store._db.execute(
        "SELECT prompt_tokens, completion_tokens, attempts FROM completions").fetchone()
    one_answer = len(_orders(True).split())
    assert row[2] == 2 and row[1] == len(_orders(False).split()) + one_answer
    assert {e.fields["tone"] for e in engine.store.examples()} == {"polite"}


def test_reasks_are_bounded_and_the_bad_answer_is_kept(tmp_path: Path,
                                                       schema_module: str) -> None:
    with FaultServer(reply=lambda body, choice: _orders(False, body)) as srv:
        engine = run(make_recipe(tmp_path, srv.url, labels=1, per_label=3, schema=schema_module,
                                 generation={"max_attempts": 1}, reasks=2))
        sent = srv.stats["requests"]
    assert sent == 3  # the request and two correction turns, no more
    assert not engine.result.complete
    rejects = list(engine.store.rejects())
    assert len(rejects) == 3 and all(r["reason"].startswith("parse:invalid") for r in rejects)
    assert engine.store.completion_count() == 1  # paid for, so kept for the next run


def test_cut_off_answer_is_reasked(tmp_path: Path, schema_module: str) -> None:
    with FaultServer(reply=lambda body, choice: _orders(True, body), script=["length"]) as srv:
        engine = run(make_recipe(tmp_path, srv.url, labels=1, per_label=3, schema=schema_module))
        fix = corrections(srv)[0]["messages"][-1]["content"]
    assert "cut off at the token limit" in fix
    assert engine.result.complete


def test_structured_output_steps_down_when_the_server_refuses_it(
        tmp_path: Path, schema_module: str) -> None:
    with FaultServer(reply=lambda body, choice: _orders(True, body), json_schema=False) as srv:
        engine = run(make_recipe(tmp_path, srv.url, labels=1, per_label=6, schema=schema_module,
                                 concurrency=1))
        kinds = [b.get("response_format", {}).get("type") for b in srv.bodies]
        hinted = srv.bodies[-1]["messages"][-1]["content"]
    assert engine.result.complete
    stepped = kinds.index("json_object")  # requests built before the step down were refused
    assert stepped >= 1 and set(kinds[:stepped]) == {"json_schema"}
    assert set(kinds[stepped:]) == {"json_object"} and srv.stats["unsupported"] == stepped
    assert "JSON schema" in hinted
    assert engine.backend.structured_mode == "json_object"  # type: ignore[attr-defined]


def test_structured_output_falls_back_to_the_prompt(tmp_path: Path, schema_module: str) -> None:
    with FaultServer(reply=lambda b, c: _orders(True, b), json_schema=False,
                     json_object=False) as srv:
        engine = run(make_recipe(tmp_path, srv.url, labels=1, per_label=3, schema=schema_module,
                                 concurrency=1))
        last = srv.bodies[-1]
    assert engine.result.complete and "response_format" not in last


# -- n choices ----------------------------------------------------------------------------------
@pytest.mark.parametrize("native", [True, False])
def test_n_choices(tmp_path: Path, native: bool) -> None:
    with FaultServer(items=3, supports_n=native) as srv:
        engine = run(make_recipe(tmp_path, srv.url, labels=1, per_label=9,
                                 generation={"n": 3}, concurrency=1, lookahead=1))
        bodies = list(srv.bodies)
    assert engine.result.complete and len(texts(engine)) == 9
    if native:
        assert all(b["n"] == 3 for b in bodies) and len(bodies) >= engine.result.sent
    else:  # the server ignores n: the other choices are asked for one by one, new seeds
        seed = engine.jobs.job(engine.quotas[0], 0).seed
        sent = {b["seed"]: b.get("n", 1) for b in bodies}
        assert sent[seed] == 3 and sent[seed + 1] == 1 and sent[seed + 2] == 1


def test_backend_generate_directly(server: FaultServer) -> None:
    async def go() -> list[str]:
        backend = OpenAIBackend({"base_url": server.url, "model": "m"})
        try:
            out = await backend.generate([Request(({"role": "user", "content": "hi"},), seed=i)
                                          for i in range(3)])
        finally:
            await backend.aclose()
        return [c.text for c in out]

    got = asyncio.run(go())
    assert len(set(got)) == 3 and all(json.loads(t) for t in got)


# -- budget -----------------------------------------------------------------------------------
def test_budget_stops_cleanly_and_a_larger_one_resumes(tmp_path: Path,
                                                       server: FaultServer) -> None:
    generation = {"max_tokens": 40}
    first = run(make_recipe(tmp_path, server.url, per_label=30, generation=generation,
                            budget={"max_tokens": 700}))
    assert first.result.stopped and "budget" in first.result.stopped
    used = first.store.usage().total_tokens
    assert 700 <= used <= 700 + 150  # reached, and passed by one request at most
    assert not first.result.complete
    kept = first.store.completion_count()
    sent_before = server.stats["requests"]
    second = run(make_recipe(tmp_path, server.url, per_label=30, generation=generation))
    assert second.result.complete and second.result.cached >= kept
    assert server.stats["requests"] - sent_before >= second.result.sent
    assert server.duplicates() == {}  # nothing answered in the first run was asked again
    assert len(set(texts(second))) == 60


def test_cost_budget_stops_the_run(tmp_path: Path, server: FaultServer) -> None:
    engine = run(make_recipe(tmp_path, server.url, per_label=30,
                             budget={"max_cost": 0.001, "input_price": 1.0,
                                     "output_price": 2.0}))
    assert engine.result.stopped
    assert 0.001 <= engine.store.get_meta("summary")["cost"] <= 0.001 + 150 * 2 / 1e6


# -- secrets -------------------------------------------------------------------------------------
def test_api_key_is_in_no_file_the_run_wrote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             caplog: pytest.LogCaptureFixture) -> None:
    secret, env_secret = "sk-test-DO-NOT-STORE-4f1c9e", "sk-env-NEVER-WRITTEN-77aa"
    caplog.set_level(logging.DEBUG)
    with FaultServer(api_key=secret, items=3, script=["rate_limit", "server_error"],
                     retry_after=0.05) as srv:
        recipe = make_recipe(tmp_path / "out", srv.url, api_key=secret,
                             headers={"X-Api-Key": secret, "X-Trace": "visible"})
        outcome = run_recipe(recipe)
        assert srv.stats["unauthorized"] == 0  # the key was sent
    with FaultServer(api_key=env_secret, items=3) as srv:
        monkeypatch.setenv("OPENAI_API_KEY", env_secret)
        run_recipe(make_recipe(tmp_path / "env", srv.url))
        assert srv.stats["unauthorized"] == 0
    assert outcome.stats.complete
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) > 5  # store, dataset, card ...
    for path in files:
        data = path.read_bytes()
        assert secret.encode() not in data and env_secret.encode() not in data, path
    assert secret not in caplog.text and env_secret not in caplog.text
    card = (tmp_path / "out" / "README.md").read_text()
    assert "<redacted>" in card  # the card redacts keys and whole header maps
    assert secret not in repr(recipe.model_dump(mode="json"))


# -- the server killed mid-run ---------------------------------------------------------------
def _start_server(*args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "textsynth.testing", "--items", "3",
                             "--lifetime", "120", *args], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def test_server_killed_mid_run_then_a_rerun_completes(tmp_path: Path) -> None:
    proc, url = _start_server("--latency", "0.05")
    recipe = make_recipe(tmp_path, url, labels=4, per_label=60, max_retries=2, concurrency=4)
    engine = Engine(recipe)

    async def kill_when_half_done() -> None:
        while engine.store.completion_count() < 20:
            await asyncio.sleep(0.01)
        proc.kill()

    async def go() -> None:
        killer = asyncio.create_task(kill_when_half_done())
        try:
            await engine.run()
        finally:
            killer.cancel()

    try:
        with pytest.raises(BackendUnavailable, match="gave up after 3 attempts"):
            asyncio.run(go())
    finally:
        proc.kill()
        proc.wait()
    stored = engine.store.completion_count()
    assert 20 <= stored < 80
    engine.store.close()

    proc, url = _start_server()
    try:
        again = run(recipe.with_overrides(base_url=url))
    finally:
        proc.terminate()
        proc.wait()
    assert again.result.complete and again.result.cached >= stored
    rows = texts(again)
    assert len(rows) == 240 and len(set(rows)) == 240


def test_fault_mix_returns_every_row(tmp_path: Path) -> None:
    faults = {"rate_limit": 0.05, "server_error": 0.02, "drop": 0.01}
    with FaultServer(latency=0.01, faults=faults, retry_after=0.05, items=1, seed=7) as srv:
        engine = run(make_recipe(tmp_path, srv.url, labels=6, per_label=100,
                                 generation={"examples_per_request": 1}, concurrency=32))
        dupes = srv.duplicates()
        stats = dict(srv.stats)
    assert engine.result.complete and len(set(texts(engine))) == 600
    assert dupes == {}
    assert engine.result.replaced == len(engine.store.skipped_keys()) > 0
    console = Console(record=True, width=300)
    console.print(summary_table(engine.result))
    caption = " ".join(console.export_text().split())  # the caption wraps
    assert f"{engine.result.replaced} replaced while waiting for a retry" in caption
    assert stats["rate_limit"] and stats["server_error"] and stats["drop"]
    assert engine.result.sent == stats["ok"]


def test_fault_server_spreads_answer_times_around_the_latency() -> None:
    server = FaultServer(latency=0.2, latency_sigma=1.0, seed=3)
    draws = sorted(server._latency() for _ in range(4000))
    assert abs(sum(draws) / len(draws) - 0.2) < 0.02  # the mean stays the latency
    assert draws[int(0.99 * len(draws))] > 7 * draws[len(draws) // 2]  # a long tail (~10x)
    assert FaultServer(latency=0.2)._latency() == 0.2


def test_default_reply_is_stable_and_unique() -> None:
    body = {"messages": [{"role": "user", "content": "x"}], "seed": 1}
    assert default_reply(body, 0) == default_reply(dict(body), 0)
    assert default_reply(body, 0) != default_reply(body, 1)
    assert len(json.loads(default_reply(body, 0, items=4))) == 4


def test_cli_runs_any_recipe_against_an_endpoint(
        write_recipe: Callable[..., Path], recipe_dict: dict[str, Any], server: FaultServer,
        tmp_path: Path) -> None:
    path = write_recipe(recipe_dict)  # a recipe written for the fake backend
    proc = subprocess.run(
        [sys.executable, "-m", "textsynth", "run", str(path), "--base-url", server.url,
         "--model", "served-model", "--quiet"],
        capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert server.stats["ok"] >= 4 and server.bodies[0]["model"] == "served-model"
    assert (tmp_path / "out" / "dataset").is_dir()


def _continued(out: Path, url: str) -> dict[str, Any]:
    """A recipe whose prompts are lists to continue (two examples per label)."""
    labels = {f"label_{i}": {"description": f"switch thing {i} on",
                             "examples": [f"Switch thing {i} on", f"Thing {i} on, please"]}
              for i in range(2)}
    return recipe_data(out, url, labels=labels,
                       generation={"style": "continue", "max_tokens": 40})


def test_a_continued_list_is_sent_as_a_text_completion(tmp_path: Path) -> None:
    with FaultServer(items=3, retry_after=0.05, seed=3,
                     faults={"rate_limit": 0.15, "malformed": 0.1}) as server:
        engine = run(load_recipe(_continued(tmp_path / "out", server.url)))
        paths = set(server.paths)
        bodies = list(server.bodies)
    assert paths == {"/v1/completions"}  # nothing went to /chat/completions
    first = bodies[0]
    assert "messages" not in first and "response_format" not in first
    assert first["prompt"].startswith("Things people say") and first["prompt"].endswith("\n-")
    assert first["max_tokens"] == 40 and "seed" in first
    assert server.stats["rate_limit"] and server.stats["malformed"]  # and were retried
    assert not server.duplicates()  # nothing answered was asked for again
    rows = list(engine.store.examples())
    assert len(rows) == 12 and all(r.text.startswith("please check ") for r in rows)
    # the rows are the lines the server continued the list with, under their label
    answered = [line.lstrip(" -") for b in bodies
                for line in continued_reply(b, 0, 3).splitlines() if line.strip()]
    assert {r.text for r in rows} <= set(answered)


def test_a_server_without_text_completions_ends_a_continued_list_in_one_line(
        tmp_path: Path) -> None:
    with FaultServer(text_completions=False) as server:
        path = tmp_path / "recipe.json"
        path.write_text(json.dumps(_continued(tmp_path / "out", server.url)))
        proc = subprocess.run([sys.executable, "-m", "textsynth", "run", str(path), "--quiet"],
                              capture_output=True, text=True, timeout=120, check=False)
        assert server.stats["not_found"] >= 1 and server.stats["ok"] == 0
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "no text completions" in proc.stderr and "style: chat" in proc.stderr
    assert "/v1/completions, 404" in proc.stderr


def test_cli_bad_base_url_is_one_line(write_recipe: Callable[..., Path],
                                      recipe_dict: dict[str, Any]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "textsynth", "run", str(write_recipe(recipe_dict)),
         "--base-url", "localhost:1"], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2 and "base_url must start with http" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("name,value", [("X-Team", "a\r\nInjected: yes"), ("X Team", "a")])
def test_a_header_that_would_break_requests_is_a_recipe_error(tmp_path: Path, name: str,
                                                                value: str) -> None:
    data = recipe_data(tmp_path, "http://127.0.0.1:9/v1", headers={name: value})
    with pytest.raises(RecipeError, match=r"backend\.options\.headers: HTTP header"):
        load_recipe(data)
    path = tmp_path / "recipe.yaml"
    path.write_text(json.dumps(data))
    proc = subprocess.run([sys.executable, "-m", "textsynth", "run", str(path)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "HTTP header" in proc.stderr


def test_cli_and_a_hosted_run_import_no_heavy_library() -> None:
    code = ("import sys, textsynth.cli, textsynth.pipeline, textsynth.engine, "
            "textsynth.backends.openai; "
            "print(sorted({'torch', 'transformers', 'datasets', 'openai', 'aiohttp'} "
            "& set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_requests_no_longer_needed_are_cancelled_before_they_are_sent(tmp_path: Path) -> None:
    with FaultServer(items=3, latency=0.05) as srv:
        engine = run(make_recipe(tmp_path, srv.url, labels=1, per_label=9, concurrency=1,
                                 lookahead=8))
        answered = srv.stats["ok"]
    assert engine.result.complete
    assert answered == 3  # 3 answers of 3 items: not one request more was paid for
    assert engine.result.cancelled >= 1  # sent ahead at the first guess of the yield
    assert engine.store.completion_count() == answered  # everything paid for is stored


def test_at_the_end_answers_in_flight_are_kept(tmp_path: Path) -> None:
    with FaultServer(items=3, latency=0.2) as srv:
        # a quota met by the first answers, with more requests already on the wire
        engine = run(make_recipe(tmp_path, srv.url, labels=1, per_label=3, concurrency=4))
        answered = srv.stats["ok"]
    assert engine.result.complete and answered == 2
    assert engine.store.completion_count() == answered  # everything paid for is stored


def _yield_falling_reply(body: Mapping[str, Any], choice: int) -> str:
    """Three items, the last of which soon repeats an earlier answer's: the yield falls
    from 3 to 2 a request once the first answers are in."""
    seed = int(body.get("seed") or 0)
    return json.dumps([f"please do {letters(seed)}", f"now do {letters(seed)} twice",
                       f"maybe {letters(seed % 5)}"])


@pytest.mark.parametrize("concurrency", [8, 16])
def test_cancelled_requests_keep_the_dataset_deterministic(tmp_path: Path,
                                                           concurrency: int) -> None:
    rows: dict[int, list[str]] = {}
    cancelled: dict[int, int] = {}
    for c in (1, concurrency):
        with FaultServer(latency=0.01, reply=_yield_falling_reply) as srv:
            engine = run(make_recipe(tmp_path / str(c), srv.url, labels=3, per_label=20,
                                     concurrency=c, lookahead=4))
            assert engine.result.complete and srv.duplicates() == {}
            assert engine.result.rejected["duplicate"] > 0
            rows[c] = texts(engine)
            cancelled[c] = engine.result.cancelled
    assert rows[1] == rows[concurrency] and len(set(rows[1])) == 60
    assert cancelled[concurrency] > 0


def test_a_finished_run_run_again_sends_nothing(tmp_path: Path) -> None:
    # the first run cancels requests sent ahead once the answers show they are not
    # needed; run again, the stored answers come back at once and used to let the next
    # job of a label go out before processing showed the label full (2-7 requests)
    with FaultServer(latency=0.05, reply=_yield_falling_reply) as srv:
        recipe = make_recipe(tmp_path, srv.url, labels=12, per_label=20, concurrency=16)
        first = run(recipe)
        assert first.result.complete and first.result.cancelled > 0
        stored, rows = first.store.completion_count(), texts(first)
        first.store.close()
        for _ in range(2):
            sent = srv.stats["ok"]
            again = run(recipe)
            assert srv.stats["ok"] == sent and again.result.sent == 0
            assert again.result.cached == stored and texts(again) == rows
            again.store.close()


def test_error_messages_hide_credentials_in_the_url(tmp_path: Path) -> None:
    with FaultServer() as srv:
        port = srv.port
    url = f"http://user:pw-SECRET@127.0.0.1:{port}/v1?api-key=q-SECRET"
    with pytest.raises(BackendUnavailable) as info:
        run(make_recipe(tmp_path, url, max_retries=0))
    assert "SECRET" not in str(info.value) and f"127.0.0.1:{port}/v1" in str(info.value)


# -- no silent waits -------------------------------------------------------------------------
def test_retry_after_is_capped(tmp_path: Path) -> None:
    with FaultServer(items=3, retry_after=3600, script=["rate_limit"]) as srv:
        engine = run(make_recipe(tmp_path, srv.url, labels=1, per_label=3,
                                 max_retry_after=0.2))
        assert srv.stats["rate_limit"] == 1
    assert engine.result.complete  # it did not wait the hour the server asked for
    assert engine.backend.stats["retry_after_capped"] == 1  # type: ignore[attr-defined]


def test_a_server_that_keeps_asking_to_wait_is_given_up_in_one_line(tmp_path: Path) -> None:
    with FaultServer(faults={"rate_limit": 1.0}, retry_after=3600) as srv, \
            pytest.raises(RateLimited) as info:
        run(make_recipe(tmp_path, srv.url, labels=1, per_label=3, max_retries=1,
                        max_retry_after=0.05))
    message = str(info.value)
    assert "\n" not in message and "gave up after 2 attempts" in message
    assert "the server asked to wait 3600 s, more than max_retry_after (0.05 s)" in message


def test_a_hanging_server_is_given_up_after_one_retry(tmp_path: Path) -> None:
    assert OpenAIBackend.Options().timeout == 60 and OpenAIBackend.Options().max_timeouts == 1
    with FaultServer(faults={"timeout": 1.0}, hang=30) as srv:
        with pytest.raises(BackendUnavailable, match=r"no answer .* within 0.3 s .*gave up "
                                                     r"after 2 attempts"):
            run(make_recipe(tmp_path, srv.url, labels=1, per_label=3, timeout=0.3))
        tries = Counter(key for _, key in srv.arrivals)  # per request: sent, retried once
    assert max(tries.values()) == 2


def test_the_progress_display_shows_a_wait_for_a_retry(tmp_path: Path) -> None:
    from textsynth.console import RunProgress

    bar = RunProgress(Console(file=io.StringIO()), enabled=False)
    shown: list[str] = []

    def hook(engine: Engine, event: str) -> None:
        bar(engine, event)
        shown.append(bar.progress.activity)

    with FaultServer(items=3, retry_after=2.5, script=["rate_limit", "rate_limit"]) as srv:
        engine = Engine(make_recipe(tmp_path, srv.url, labels=1, per_label=6), progress=hook)
        asyncio.run(engine.run())
    assert engine.result.complete
    assert any(re.search(r"waiting [123] s for retry \(429\), 2 requests", s) for s in shown), shown


def test_a_slow_answer_is_shown_while_it_is_awaited(server: FaultServer) -> None:
    server.latency = 0.5
    seen: list[str] = []

    async def go() -> None:
        backend = OpenAIBackend({"base_url": server.url, "model": "m"})
        ask = asyncio.create_task(backend.generate([Request(({"role": "user",
                                                              "content": "hi"},))]))
        await asyncio.sleep(0.2)
        seen.append(backend.client.activity(now=time.monotonic() + 30))
        seen.append(backend.activity())
        await ask
        seen.append(backend.client.activity(now=time.monotonic() + 30))
        await backend.aclose()

    asyncio.run(go())
    assert re.fullmatch(r"waiting for server answer \(3\d s\)", seen[0])
    assert seen[1:] == ["", ""]  # not slow yet; then nothing awaited


# -- bounded answers ---------------------------------------------------------------------------
def test_a_huge_answer_is_not_read_and_is_retried(tmp_path: Path) -> None:
    with FaultServer(items=3, script=["huge"], huge_bytes=64 * 1024 * 1024) as srv:
        engine = run(make_recipe(tmp_path, srv.url, labels=1, per_label=3,
                                 max_response_bytes=1024 * 1024))
        assert srv.stats["huge"] == 1
    assert engine.result.complete
    assert engine.backend.stats["too_large"] == 1  # type: ignore[attr-defined]
    assert all(len(t) < 1000 for t in texts(engine))


@pytest.mark.parametrize("http_client", ["httptools", "aiohttp"])
def test_a_huge_answer_is_a_clear_error(server: FaultServer, http_client: str) -> None:
    server.script.append("huge")

    async def go() -> None:
        backend = OpenAIBackend({"base_url": server.url, "model": "m", "max_retries": 0,
                                 "http_client": http_client})
        try:
            await backend.generate([Request(({"role": "user", "content": "hi"},))])
        finally:
            await backend.aclose()

    with pytest.raises(BackendResponseError, match=r"answer larger than 8,388,608 bytes "
                                                   r"\(backend.options.max_response_bytes\)"):
        asyncio.run(go())


# -- base URLs ---------------------------------------------------------------------------------
@pytest.mark.parametrize("url", ["http://", "http://[::1", "http://127.0.0.1:99999/v1",
                                 "http://bob:pa55-Secret-1@127.0.0.1:9/v1"])
def test_cli_bad_base_urls_are_one_line(write_recipe: Callable[..., Path],
                                        recipe_dict: dict[str, Any], url: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "textsynth", "run", str(write_recipe(recipe_dict)),
         "--base-url", url], capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "OPENAI_API_KEY": "sk-env-key-000111222"})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    line = proc.stderr.strip()
    assert line.startswith("error:") and "\n" not in line, proc.stderr
    assert "base_url" in proc.stderr and "pa55-Secret-1" not in proc.stderr


def test_a_query_in_the_base_url_stays_a_query(tmp_path: Path, server: FaultServer) -> None:
    engine = run(make_recipe(tmp_path, f"{server.url}/?api-version=2024-06-01", labels=1,
                             per_label=3))
    assert engine.result.complete
    assert set(server.paths) == {"/v1/chat/completions?api-version=2024-06-01"}
