"""The backend interface: request keys, per-choice finish reasons, typed options."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from pydantic import BaseModel, ConfigDict, Field

from textsynth.backends.base import Backend, Completion, Request, Usage
from textsynth.errors import RecipeError

MESSAGES = ({"role": "user", "content": "Write three."},)


def test_the_key_covers_what_changes_the_answer_and_nothing_else() -> None:
    base = Request(MESSAGES, seed=3, json_schema={"type": "object"})
    key = base.key("openai", "m")
    assert key == Request(MESSAGES, seed=3, json_schema={"type": "object"}).key("openai", "m")
    changed = [Request(MESSAGES, seed=4, json_schema={"type": "object"}),
               Request(MESSAGES, seed=3, temperature=0.1, json_schema={"type": "object"}),
               Request(MESSAGES, seed=3, n=2, json_schema={"type": "object"}),
               Request(MESSAGES, seed=3),
               Request(({"role": "user", "content": "Write four."},), seed=3,
                       json_schema={"type": "object"})]
    assert len({key, *(r.key("openai", "m") for r in changed)}) == 6
    assert base.key("openai", "other") != key and base.key("fake", "m") != key
    # bookkeeping and how a backend may enforce the schema are not part of the key
    same = Request(MESSAGES, seed=3, json_schema={"type": "object"}, constrain=False)
    assert same.key("openai", "m") == key
    noted = Request(MESSAGES, seed=3, json_schema={"type": "object"},
                    metadata={"slot": "x/en", "index": 9})
    assert noted.key("openai", "m") == key and noted == base


def test_keys_are_those_earlier_versions_stored() -> None:
    """A resumed run finds its stored completions by key: these values were computed by
    the version that wrote ``json.JSONEncoder(sort_keys=True, ...).encode`` per request."""
    chat = Request(({"role": "system", "content": "Schreib «kurz»"},
                    {"role": "user", "content": 'Write three.\n"ok"'}),
                   temperature=0.7, top_p=1.0, max_tokens=64, n=2, seed=12345,
                   json_schema={"type": "object", "properties": {"b": {"type": "string"},
                                                                 "a": {"type": "array"}}})
    assert chat.key("openai", "gpt-4o-mini") == "99df616e4ccafcfcf8e4ff1ad2b24f3d"
    document = Request((), prompt="- eins\n- zwei", seed=7)
    assert document.key("vllm", "Qwen/Qwen2.5-0.5B") == "68e3afb8b27db77b54c2948869e72da1"


def test_the_key_is_the_hash_of_the_whole_request_as_sorted_json() -> None:
    """Stored completions are found by key across versions: the schema, encoded once
    for every request, sits in the key's JSON as if encoded in place, whatever the
    messages and prompt say."""
    import hashlib
    import json

    schema = {"type": "object", "properties": {"u": {"type": "array"}}, "required": ["u"]}
    for content in ("Write three.", "\x00schema\x00", '"\x00schema\x00"', "é 東京"):
        for prompt in (None, "\x00schema\x00 continue"):
            request = Request(() if prompt else ({"role": "user", "content": content},),
                              seed=7, json_schema=schema, prompt=prompt)
            whole = {"backend": "openai", "model": "m", "messages": list(request.messages),
                     "temperature": 0.9, "top_p": 0.95, "max_tokens": 256, "n": 1, "seed": 7,
                     "schema": schema, **({"prompt": prompt} if prompt else {})}
            raw = json.dumps(whole, sort_keys=True, ensure_ascii=False)
            assert request.key("openai", "m") == hashlib.sha256(raw.encode()).hexdigest()[:32]
    other = {**schema, "required": []}  # another schema: its own JSON, not the last one's
    key = Request(MESSAGES, json_schema=schema).key("openai", "m")
    assert Request(MESSAGES, json_schema=other).key("openai", "m") != key
    schema["required"] = []  # changed in place: the key follows
    assert Request(MESSAGES, json_schema=schema).key("openai", "m") == \
        Request(MESSAGES, json_schema=other).key("openai", "m") != key


def test_usage_adds_up() -> None:
    total = Usage(1, 2) + Usage(10, 20)
    assert (total.prompt_tokens, total.completion_tokens, total.total_tokens) == (11, 22, 33)


def test_each_choice_has_its_finish_reason_or_the_completion_one() -> None:
    known = Completion(["a", "b"], finish_reason="length", finish_reasons=["stop", "length"])
    assert [known.choice_finish(i) for i in (0, 1)] == ["stop", "length"]
    unknown = Completion(["a", "b"], finish_reason="length")
    assert [unknown.choice_finish(i) for i in (0, 1)] == ["length", "length"]
    assert Completion([]).text == ""


class Echo(Backend):
    name = "echo"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        model: str = "echo-1"
        batch_size: int = Field(4, ge=1)

    options: Options

    async def generate(self, requests: Sequence[Request]) -> list[Completion]:
        return [Completion([r.messages[-1]["content"]]) for r in requests]


def test_options_are_typed_and_a_bad_one_names_its_field() -> None:
    echo = Echo({"batch_size": 2})
    assert (echo.options.batch_size, echo.batch_size, echo.max_concurrency) == (2, 2, 1)
    assert echo.model_name == "echo-1"
    with pytest.raises(RecipeError) as err:
        Echo({"batch_size": 0})
    assert err.value.field == "backend.options.batch_size"
    with pytest.raises(RecipeError, match="nonsense"):
        Echo({"nonsense": 1})


def test_a_backend_that_reports_nothing_answers_through_generate_reporting() -> None:
    import asyncio

    seen: list[str] = []
    out = asyncio.run(Echo().generate_reporting([Request(MESSAGES)],
                                                lambda r, state: seen.append(state)))
    assert out[0].text == "Write three." and seen == []
    assert not Echo.reports_request_state and Echo.default_repair_turns == 0


def test_activity_says_what_a_backend_is_busy_with_and_lists_and_fleets_say_each() -> None:
    """What the progress display shows while requests wait (a model loading)."""
    from textsynth.backends.endpoints import EndpointPool
    from textsynth.backends.fake import FakeBackend
    from textsynth.backends.mixture import ModelMix

    a, b, c = FakeBackend(), FakeBackend(), FakeBackend()
    assert a.activity() == ""
    with pytest.raises(RuntimeError), a.busy("loading the model x"):
        assert a.activity() == "loading the model x"
        raise RuntimeError("the load failed")
    assert a.activity() == ""  # cleared however the block ends
    mix, pool = ModelMix([a, b]), EndpointPool([b, c])
    with a.busy("loading the model x"), b.busy("loading the model y"):
        assert mix.activity() == "loading the model x; loading the model y"
        with c.busy("loading the model y"):
            assert pool.activity() == "loading the model y"  # said once
    assert mix.activity() == pool.activity() == ""
