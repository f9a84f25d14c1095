"""FakeBackend: the public scripted backend users test their recipes with."""

from __future__ import annotations

import asyncio

from textsynth.backends import create_backend
from textsynth.backends.base import Completion, Request, Usage
from textsynth.backends.fake import FakeBackend


def req(seed: int = 0, slot: str = "turn_on/en", content: str = "write two") -> Request:
    return Request(({"role": "user", "content": content},), seed=seed,
                   metadata={"slot": slot, "index": 0})


def test_scripted_answers_come_in_order_and_cycle() -> None:
    fake = FakeBackend(responses=["a", "b"])
    out = asyncio.run(fake.generate([req(), req(), req()]))
    assert [c.text for c in out] == ["a", "b", "a"]
    assert fake.calls == 1 and len(fake.requests) == 3
    more = FakeBackend(responses=["a"])
    asyncio.run(more.generate([req()]))
    more.enqueue(["b"])  # appended to the script: served next
    assert asyncio.run(more.generate([req()]))[0].text == "b"


def test_seed_and_label_make_an_answer_depend_on_the_request_only() -> None:
    fake = FakeBackend(responses=['["{label} please {seed}"]'])
    first, second, again = asyncio.run(fake.generate([req(35), req(36, "turn_off/en"),
                                                       req(35)]))
    assert first.text == '["turn_on please 9"]' and again.text == first.text
    assert second.text == '["turn_off please ba"]'  # base 36: letters and digits only


def test_a_handler_answers_each_request_and_usage_counts_words() -> None:
    fake = FakeBackend(handler=lambda r: ["one two", "three"])
    (out,) = asyncio.run(fake.generate([req(content="four words in here")]))
    assert out.texts == ["one two", "three"] and out.usage == Usage(4, 3)
    done = Completion(["x"], finish_reason="length")
    assert asyncio.run(FakeBackend(handler=lambda r: done).generate([req()]))[0] is done


def test_no_script_answers_empty_and_options_come_from_the_recipe() -> None:
    assert asyncio.run(FakeBackend().generate([req()]))[0].texts == [""]
    fake = create_backend("fake", {"model": "m", "batch_size": 2, "responses": ["hi"]})
    assert isinstance(fake, FakeBackend)
    assert (fake.model_name, fake.batch_size) == ("m", 2)
    assert asyncio.run(fake.generate([req()]))[0].model == "m"
