"""Secrets never reach disk, logs or messages: one rule, tested at every door.

The doors: the run store (its copy of the recipe, completions, rejects), the
dataset card, the exported rows, stderr and the logs. Each test puts a secret
where a careless recipe or a careless server puts it, and looks for it behind
the door.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from textsynth.pipeline import run_recipe
from textsynth.recipe import Recipe, load_recipe
from textsynth.redact import (
    REDACTED,
    RedactingFilter,
    add_secret,
    is_secret_name,
    mask_known,
    redact,
    redact_text,
)
from textsynth.testing import FaultServer

KEY = "sk-echo-ME-NOT-9f8e7d6c5b4a"


def make_recipe(out: Path, url: str, **options: Any) -> Recipe:
    opts = {"base_url": url, "model": "test-model", "backoff": 0.01, "max_backoff": 0.05,
            "timeout": 5.0, **options}
    return load_recipe({
        "name": "redact-test", "labels": {"reset_password": "forgot the password",
                                          "api_key_help": "asks how to get an API key"},
        "per_label": 3, "generation": {"examples_per_request": 3},
        "export": {"dir": str(out), "formats": ["arrow", "parquet", "jsonl"]},
        "quality": {"language_id": False, "near_duplicates": False, "novelty": False,
                    "semantic": False, "classifier": False},
        "backend": {"type": "openai", "options": opts},
    })


def files_holding(folder: Path, *secrets: str) -> list[str]:
    hits = []
    for path in folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            hits += [f"{path.name}: {s}" for s in secrets if s.encode() in data]
    return hits


# -- the rule ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", [
    "api_key", "apiKey", "api-key", "Authorization", "Proxy-Authorization", "X-Portkey-Auth",
    "Helicone-Auth", "X-Api-Pass", "X-Proxy-Password", "X-Auth-Token", "access_token",
    "Ocp-Apim-Subscription-Key", "client_secret", "Cookie", "sig", "X-Amz-Signature"])
def test_secret_names(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize("name", [
    "max_tokens", "tokens_per_minute", "prompt_tokens", "api-version", "model", "base_url",
    "X-Trace", "passes", "keep", "monkey"])
def test_ordinary_names(name: str) -> None:
    assert not is_secret_name(name)


def test_urls_keep_what_is_not_secret() -> None:
    url = "https://bob:hunter22@proxy.example.com/v1?api-version=2024-06-01&key=k-123&sig=abc"
    assert redact_text(url) == ("https://proxy.example.com/v1?api-version=2024-06-01"
                                f"&key={REDACTED}&sig={REDACTED}")
    assert redact_text("header Authorization: Bearer abcdef123456") == \
        f"header Authorization: Bearer {REDACTED}"
    assert redact_text("key sk-abcdefghijklmnopqrstuvwx!") == f"key {REDACTED}!"


def test_ordinary_text_is_left_alone() -> None:
    for text in ("Basic English grammar", "Bearer bonds and bearer certificates",
                 "press the key to reset the password", "max_tokens=160&api-version=2"):
        assert redact_text(text) == text


def test_labels_named_like_secrets_are_labels() -> None:
    recipe = {"labels": {"reset_password": {"description": "forgot the password"},
                         "car_key": {"description": "lost the car key"}},
              "slots": {"token_type": ["access token"]}}
    assert redact(recipe) == recipe


def test_known_secrets_are_masked_anywhere_and_only_they_in_data() -> None:
    add_secret("known-Value-778899")
    text = "echo known-Value-778899 and known-Value-778899, sk-looks-like-a-key-but-is-data"
    assert mask_known(text) == f"echo {REDACTED} and {REDACTED}, " \
                               "sk-looks-like-a-key-but-is-data"  # data: only known values
    assert "known" not in redact_text(text)
    assert mask_known("known-Value-778899".replace("-", "%2D")) != "known-Value-778899"



@pytest.fixture
def fresh_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Secrets registered by the test are forgotten after it."""
    from textsynth import redact as module

    monkeypatch.setattr(module, "_known", set())
    monkeypatch.setattr(module, "_cache", ((), []))


def test_a_placeholder_key_is_not_masked(fresh_secrets: None) -> None:
    # "EMPTY" (what vLLM servers take) or "test": masking them would garble a card's
    # "test" split and every message that says "empty"
    add_secret("test")
    add_secret("EMPTY")
    assert redact_text("split test: EMPTY or empty") == "split test: EMPTY or empty"
    assert mask_known("test test") == "test test"


@pytest.mark.parametrize("echo", [
    lambda key: key.upper(),
    lambda key: key.lower(),
    lambda key: __import__("base64").b64encode(key.encode()).decode(),
    lambda key: __import__("base64").b64encode(key.encode()).decode().rstrip("="),
    lambda key: __import__("base64").urlsafe_b64encode(key.encode()).decode(),
])
def test_a_key_echoed_in_another_case_or_base64_is_masked(fresh_secrets: None, echo) -> None:
    key = "Sk-Mixed-Case-55aa77bb"
    add_secret(key)
    message = f"server said: bad credentials {echo(key)}!"
    assert echo(key) not in redact_text(message) and REDACTED in redact_text(message)
    assert echo(key) not in mask_known(message)  # nor in a row or a stored completion


def test_a_key_beyond_ascii_echoed_in_another_encoding_is_masked(fresh_secrets: None) -> None:
    key = "clé-secrète-ÆØÅ-2026"
    add_secret(key)
    for echo in (key, json.dumps(key)[1:-1], key.encode().decode("latin-1"), key.upper()):
        assert echo not in redact_text(f"bad key: {echo}"), echo
        assert REDACTED in mask_known(f"bad key: {echo}"), echo


def test_structures_keep_numbers_under_secret_names() -> None:
    value = {"headers": {"Helicone-Auth": "Bearer h", "X-Trace": "t"}, "token_budget": 5,
             "list": [{"password": "p"}, "http://u:p@h/"], "auth": None}
    assert redact(value) == {"headers": {"Helicone-Auth": REDACTED, "X-Trace": "t"},
                             "token_budget": 5, "list": [{"password": REDACTED}, "http://h/"],
                             "auth": None}


def test_log_records_are_redacted() -> None:
    add_secret(KEY)
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "server said %s", (KEY,), None)
    RedactingFilter().filter(record)
    assert KEY not in record.getMessage() and REDACTED in record.getMessage()


# -- the doors -----------------------------------------------------------------------------
def test_store_and_card_hold_no_credential_of_the_recipe(tmp_path: Path) -> None:
    """URL credentials, secret query parameters and auth-like headers, in the recipe."""
    user_pw, query_key, helicone, portkey = "pa55-WORD-31", "q-KEY-4242", "h-AUTH-5151", "pp-6161"
    with FaultServer(items=3) as srv:
        host = srv.url.removeprefix("http://")
        url = f"http://alice:{user_pw}@{host}?api-version=2024-06-01&key={query_key}"
        recipe = make_recipe(tmp_path / "out", url, headers={
            "Helicone-Auth": f"Bearer {helicone}", "X-Portkey-Pass": portkey,
            "X-Trace": "visible-trace"})
        outcome = run_recipe(recipe)
        paths, auths = list(srv.paths), dict(srv.authorizations)
    assert outcome.stats.complete
    # the query stays a query, the credentials went as Basic auth
    assert paths[0] == f"/v1/chat/completions?api-version=2024-06-01&key={query_key}"
    assert list(auths) == ["Basic YWxpY2U6cGE1NS1XT1JELTMx"]
    assert files_holding(tmp_path, user_pw, query_key, helicone, portkey) == []
    db = sqlite3.connect(tmp_path / "out" / "textsynth.db")
    stored = json.loads(db.execute("SELECT value FROM meta WHERE key='recipe'").fetchone()[0])
    assert stored["labels"]["api_key_help"]["description"] == "asks how to get an API key"
    options = stored["backend"]["options"]
    assert options["headers"] == {"Helicone-Auth": REDACTED, "X-Portkey-Pass": REDACTED,
                                  "X-Trace": "visible-trace"}
    assert options["base_url"] == f"http://{host}?api-version=2024-06-01&key={REDACTED}"
    card = (tmp_path / "out" / "README.md").read_text()
    assert "api-version=2024-06-01" in card and "visible-trace" in card
    assert "reset_password" in card and "forgot the password" in card


def _echoing_reply(body: Mapping[str, Any], choice: int) -> str:
    word = "abcdefghijklmnopqrstuvwxyz"[int(body.get("seed") or 0) % 26] * 3
    return json.dumps([f"please switch on the {word}, code {KEY} now",
                       f"please turn the {word} heat up", f"please dim the {word} lights"])


def test_a_key_echoed_by_the_server_reaches_no_row_reject_or_log(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The server echoes the key in error bodies, as the model name and in the text."""
    caplog.set_level(logging.DEBUG, logger="textsynth")
    with FaultServer(api_key=KEY, echo_auth=True, answer_model=f"model-{KEY}",
                     reply=_echoing_reply, script=["server_error", "bad_request"]) as srv:
        outcome = run_recipe(make_recipe(tmp_path / "out", srv.url, api_key=KEY))
        assert srv.stats["unauthorized"] == 0 and srv.stats["bad_request"] == 1
    assert outcome.stats.rejected["generation_failed"] == 1
    assert files_holding(tmp_path, KEY) == []
    db = sqlite3.connect(tmp_path / "out" / "textsynth.db")
    [(detail,)] = db.execute("SELECT detail FROM rejects WHERE reason='generation_failed'")
    assert "this request cannot be served" in detail and REDACTED in detail
    rows = [json.loads(line) for path in (tmp_path / "out").rglob("*.jsonl")
            for line in path.read_text().splitlines()]
    assert rows and all(r["model"] == f"model-{REDACTED}" for r in rows)
    # the masked texts are kept out of the rows by the placeholder rule
    masked = [t for (t,) in db.execute("SELECT text FROM rejects WHERE reason='placeholder'")]
    assert masked and all(f"code {REDACTED} now" in t for t in masked)
    assert "retrying" in caplog.text and KEY not in caplog.text


def test_a_key_echoed_in_an_error_never_reaches_stderr(
        tmp_path: Path, write_recipe: Callable[..., Path], recipe_dict: dict[str, Any]) -> None:
    wrong = "sk-wrong-KEY-0a1b2c3d4e5f"
    with FaultServer(api_key="sk-the-right-one-123456", echo_auth=True) as srv:
        proc = subprocess.run(
            [sys.executable, "-m", "textsynth", "run", str(write_recipe(recipe_dict)),
             "--base-url", srv.url, "--quiet"], capture_output=True, text=True, timeout=120,
            check=False, env={**os.environ, "OPENAI_API_KEY": wrong})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "refused the API key (401)" in proc.stderr and REDACTED in proc.stderr
    assert wrong not in proc.stderr + proc.stdout
    assert files_holding(tmp_path, wrong) == []
