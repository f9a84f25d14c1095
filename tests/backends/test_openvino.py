"""The openvino backend: conversion cache, generation guarantees, bad models."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from textsynth import Request, load_recipe
from textsynth.backends import create_backend
from textsynth.backends._openvino_convert import prepare_model, source_digest
from textsynth.backends.openvino import OpenVINOBackend, default_sequences
from textsynth.backends.transformers import DEFAULT_SYSTEM, embedded_model_path
from textsynth.errors import BackendError, RecipeError
from textsynth.pipeline import run_recipe

model = pytest.mark.model


def _request(seed: int, temperature: float = 0.9, max_tokens: int = 40, n: int = 1,
             task: str = "play music") -> Request:
    prompt = f"Write 3 short things a user might say to a voice assistant to {task}.\n1."
    return Request(messages=({"role": "user", "content": prompt},), seed=seed, n=n,
                   max_tokens=max_tokens, temperature=temperature)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ov-cache")


@pytest.fixture(scope="module")
def backend(cache: Path) -> OpenVINOBackend:
    pytest.importorskip("openvino_genai")
    b = OpenVINOBackend({"cache_dir": str(cache), "batch_size": 4})
    b.load()
    return b


@model
def test_first_load_converts_and_second_load_uses_the_cache(
        backend: OpenVINOBackend, cache: Path) -> None:
    assert backend.stats["converted"] is True
    folder = Path(backend.stats["model_dir"])
    assert folder.parent == cache / "openvino"
    assert (folder / "openvino_model.xml").is_file()
    assert "SmolLM2" not in folder.name  # keyed by content hash and engine version
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    again = OpenVINOBackend({"cache_dir": str(cache)})
    again.load()
    try:
        assert again.stats["converted"] is False
        assert again.stats["model_dir"] == str(folder)
        assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == stamps
        assert len(list((cache / "openvino").iterdir())) == 1  # no temporary folder left
    finally:
        asyncio.run(again.aclose())


@model
def test_usage_finish_reason_and_stop_at_eos(backend: OpenVINOBackend) -> None:
    short, long = asyncio.run(backend.generate([
        _request(1, max_tokens=5),
        Request(messages=({"role": "user", "content": "What is 2+2? Answer with a number only."},),
                seed=2, max_tokens=200, temperature=0.0),
    ]))
    assert short.finish_reason == "length"
    assert short.usage.completion_tokens == 5 and short.usage.prompt_tokens > 20
    assert long.finish_reason == "stop"
    assert 0 < long.usage.completion_tokens < 200
    assert long.text and "<|im_end|>" not in long.text
    assert short.model == backend.model_name


@model
def test_seeds_are_per_request_and_a_batch_repeats_exactly(backend: OpenVINOBackend) -> None:
    tasks = ["play music", "set an alarm", "lock the door", "dim the lights"]
    batch = [_request(seed, task=task) for seed, task in enumerate(tasks)]
    first = asyncio.run(backend.generate(batch))
    again = asyncio.run(backend.generate(batch))
    reordered = asyncio.run(backend.generate(batch[::-1]))[::-1]
    assert [c.text for c in first] == [c.text for c in again] == [c.text for c in reordered]
    other_seed = asyncio.run(backend.generate([_request(99, task=t) for t in tasks]))
    assert [c.text for c in other_seed] != [c.text for c in first]


@model
def test_a_prompt_longer_than_256_tokens_is_generated(backend: OpenVINOBackend) -> None:
    # the scheduler's default step budget (256 tokens) refused such a prompt: a German
    # prompt with a few examples and a "do not repeat" list failed the whole run
    lines = "\n".join(f"{i}. Stell einen Wecker für {i} Uhr morgen früh, bitte." for i in range(30))
    request = Request(messages=({"role": "user", "content": f"{lines}\n31."},), seed=3,
                      max_tokens=8, temperature=0.8)
    (out,) = asyncio.run(backend.generate([request]))
    assert out.usage.prompt_tokens > 256
    assert out.usage.completion_tokens > 0 and out.text


@model
def test_n_choices_are_distinct_and_counted(backend: OpenVINOBackend) -> None:
    (out,) = asyncio.run(backend.generate([_request(7, n=3, max_tokens=30)]))
    assert len(out.texts) == 3 and len(set(out.texts)) == 3
    (one,) = asyncio.run(backend.generate([_request(7, max_tokens=30)]))
    # the prompt counted once for the three choices, as vLLM and hosted APIs count n
    assert out.usage.prompt_tokens == one.usage.prompt_tokens
    assert out.usage.completion_tokens <= 90


@model
def test_system_prompt_and_chat_template(backend: OpenVINOBackend) -> None:
    plain = backend.prompt(_request(1))
    assert plain.startswith("<|im_start|>system\n" + DEFAULT_SYSTEM)
    assert plain.endswith("<|im_start|>assistant\n")
    own = backend.prompt(Request(messages=({"role": "system", "content": "Be terse."},
                                           {"role": "user", "content": "hi"})))
    assert "Be terse." in own and DEFAULT_SYSTEM not in own


@model
def test_a_raw_prompt_is_continued_without_the_chat_template(backend: OpenVINOBackend) -> None:
    document = "Things people say to a smart speaker to play music:\n- Play some jazz\n-"
    raw = Request(messages=(), prompt=document, seed=3, max_tokens=12, temperature=0.0)
    assert backend.prompt(raw) == document
    chat = Request(messages=({"role": "user", "content": document},), seed=3, max_tokens=12,
                   temperature=0.0)
    out, framed = asyncio.run(backend.generate([raw, chat]))
    # the chat template adds its system prompt and role markers; a raw prompt is as sent
    assert out.usage.prompt_tokens < framed.usage.prompt_tokens - 10
    assert out.text and "<|im_" not in out.text and out.text != framed.text


@model
def test_small_run_on_embedded_model(tmp_path: Path, backend: OpenVINOBackend) -> None:
    recipe = load_recipe({
        "name": "tiny", "per_label": 3,
        "labels": {"play_music": "Start playing a song", "set_alarm": "Set a wake-up alarm"},
        "generation": {"max_tokens": 80, "examples_per_request": 5},
        "quality": {"min_words": 2, "max_words": 25},
        "backend": {"type": "openvino"},
        "export": {"dir": str(tmp_path / "out")},
    })
    outcome = run_recipe(recipe, backend=backend)
    assert outcome.stats.complete, outcome.stats.shortfalls
    from datasets import load_from_disk

    ds = load_from_disk(str(tmp_path / "out" / "dataset"))
    rows = [r for split in ds.values() for r in split]
    assert len(rows) == 6 and len({r["text"] for r in rows}) == 6
    assert {r["model"] for r in rows} == {backend.model_name}
    card = (tmp_path / "out" / "README.md").read_text()
    assert "similar, not identical" in card  # the card says what a rerun gives


def test_a_broken_gguf_is_a_clear_error_and_leaves_no_cache(tmp_path: Path) -> None:
    pytest.importorskip("openvino_genai")
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(BackendError, match="cannot convert"):
        prepare_model(bad, tmp_path / "cache", "test")
    assert list((tmp_path / "cache" / "openvino").iterdir()) == []


def test_missing_and_unusable_models_are_recipe_errors(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(RecipeError, match="not found"):
        OpenVINOBackend({"model": str(tmp_path / "nope")}).load()
    with pytest.raises(RecipeError, match="neither a gguf file"):
        OpenVINOBackend({"model": str(tmp_path), "cache_dir": str(tmp_path / "c")}).load()
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text(json.dumps({"model_type": "llama"}))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("TEXTSYNTH_OPTIMUM_CLI", raising=False)
    with pytest.raises(RecipeError, match="optimum-intel, but no optimum-cli on PATH"):
        prepare_model(hf, tmp_path / "c", "test")
    with pytest.raises(RecipeError, match="max_num_seqs"):
        create_backend("openvino", {"max_num_seqs": 0})


def test_the_converter_may_live_in_an_environment_of_its_own(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """TEXTSYNTH_OPTIMUM_CLI names the optimum-cli to convert with (optimum-intel pins an
    older transformers, so it often lives in a venv of its own); a wrong path is named in
    one line, a converter that fails leaves its last line and nothing in the cache."""
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text(json.dumps({"model_type": "gemma3_text"}))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setenv("TEXTSYNTH_OPTIMUM_CLI", str(tmp_path / "missing-cli"))
    with pytest.raises(RecipeError, match=r"TEXTSYNTH_OPTIMUM_CLI=.*missing-cli is not an exec"):
        prepare_model(hf, tmp_path / "c", "test")
    cli = tmp_path / "optimum-cli"
    cli.write_text(f"#!/bin/sh\necho \"$@\" > '{tmp_path / 'args'}'\n"
                   "echo 'ValueError: this model type is not supported' >&2\nexit 1\n")
    cli.chmod(0o755)
    monkeypatch.setenv("TEXTSYNTH_OPTIMUM_CLI", str(cli))
    with pytest.raises(BackendError, match=r"could not convert .*: ValueError: this model type"):
        prepare_model(hf, tmp_path / "c", "test")
    args = (tmp_path / "args").read_text().split()
    assert args[:4] == ["export", "openvino", "--model", str(hf)]
    assert list((tmp_path / "c" / "openvino").iterdir()) == []  # no half-written model


def test_digest_follows_content_not_name(tmp_path: Path) -> None:
    a, b = tmp_path / "a.gguf", tmp_path / "b.gguf"
    a.write_bytes(b"same bytes")
    b.write_bytes(b"same bytes")
    root = tmp_path / "cache"
    first = source_digest(a, root)
    assert source_digest(b, root) == first
    a.write_bytes(b"other bytes")
    assert source_digest(a, root) != first  # size changed: rehashed
    memo = json.loads((root / "hashes.json").read_text())
    assert str(a.resolve()) in memo


def test_default_sequences_follow_model_size_and_cores() -> None:
    small = embedded_model_path().stat().st_size if _has_embedded() else 100 << 20
    assert default_sequences(small, 2) == 64
    assert default_sequences(small, 16) == 256
    assert default_sequences(8 << 30, 2) == 16
    b = OpenVINOBackend({"batch_size": 8, "max_num_seqs": 64})
    assert b.max_concurrency == 8 and b.batch_size == 8


def _has_embedded() -> bool:
    try:
        embedded_model_path()
    except Exception:
        return False
    return True


class _StuckPipe:
    """Fault injection: a pipeline whose requests never finish, or whose step fails."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.added: list[int] = []

    def add_request(self, rid: int, ids: object, config: object) -> _StuckPipe:
        self.added.append(rid)
        return self

    def has_non_finished_requests(self) -> bool:
        return True

    def step(self) -> None:
        if self.fail:
            raise RuntimeError("device lost")
        import time

        time.sleep(0.01)

    def get_status(self) -> object:
        import openvino_genai as ov_genai

        return ov_genai.GenerationStatus.RUNNING

    def cancel(self) -> None:
        pass


def test_a_failing_step_fails_its_requests_instead_of_hanging() -> None:
    pytest.importorskip("openvino_genai")
    from textsynth.backends.openvino import _StepLoop

    loop = _StepLoop(_StuckPipe(fail=True), max_seqs=4)
    (future,) = loop.submit([(None, None)])
    with pytest.raises(BackendError, match="device lost"):
        future.result(timeout=10)
    loop.close()


def test_requests_beyond_max_seqs_wait_and_can_be_dropped() -> None:
    pytest.importorskip("openvino_genai")
    from textsynth.backends.openvino import _StepLoop

    pipe = _StuckPipe()
    loop = _StepLoop(pipe, max_seqs=1)
    futures = loop.submit([(None, None)] * 3)
    import time

    time.sleep(0.2)
    assert pipe.added == [0]  # one decoding, two waiting here
    loop.drop_queued()
    assert futures[1].cancelled() and futures[2].cancelled()
    loop.close()
    with pytest.raises(BackendError, match="closed"):
        futures[0].result(timeout=10)


@model
def test_closing_with_requests_in_flight_prints_nothing(cache: Path,
                                                        capfd: pytest.CaptureFixture[str]) -> None:
    """A run that ends while the model writes (an error, a stop) closes the backend with
    sequences in flight: they are freed first, so the pipeline prints no native
    "[ERROR] BlockManager leaked ..." lines on the user's terminal when it goes."""
    pytest.importorskip("openvino_genai")
    b = OpenVINOBackend({"cache_dir": str(cache), "batch_size": 8})
    b.load()

    async def stopped() -> bool:
        call = asyncio.create_task(b.generate([_request(i, max_tokens=200) for i in range(8)]))
        await asyncio.sleep(1.0)  # eight answers of 200 tokens take several seconds here
        in_flight = not call.done()
        call.cancel()
        await b.aclose()
        return in_flight

    assert asyncio.run(stopped())
    captured = capfd.readouterr()
    assert "leaked" not in captured.out + captured.err, captured.err


@model
def test_concurrent_calls_finish(backend: OpenVINOBackend) -> None:
    async def many() -> list[list[str]]:
        calls = [backend.generate([_request(10 * c + i, max_tokens=12) for i in range(4)])
                 for c in range(6)]
        done = await asyncio.wait_for(asyncio.gather(*calls), timeout=120)
        return [[c.text for c in out] for out in done]

    texts = asyncio.run(many())
    assert len(texts) == 6 and all(len(t) == 4 and all(t) for t in texts)


@model
def test_two_backends_started_together_load_and_finish(cache: Path) -> None:
    """A mixture of models: two engines in one process, their first calls at once (one
    hung at its start, loading while the other encoded, before loads and tokenizer calls
    took turns process-wide)."""
    pytest.importorskip("openvino_genai")
    from textsynth.backends.mixture import ModelMix

    mix = ModelMix([OpenVINOBackend({"cache_dir": str(cache), "batch_size": 4})
                    for _ in range(2)])

    async def both() -> list[str]:
        calls = [mix.generate([_request(100 * c + i, max_tokens=8) for i in range(4)])
                 for c in range(6)]
        done = await asyncio.wait_for(asyncio.gather(*calls), timeout=240)
        await mix.aclose()
        return [c.text for out in done for c in out]

    texts = asyncio.run(both())
    assert len(texts) == 24 and all(texts)
    assert all(b._pipe is None for b in mix.backends)  # type: ignore[attr-defined]


def test_defaults_fill_the_engine_sequences_and_prefill_prompts_together() -> None:
    b = OpenVINOBackend({"max_num_seqs": 64})
    assert b.batch_size == 8 and b.max_concurrency == 8
    assert OpenVINOBackend({"max_num_seqs": 64, "batch_size": 1}).max_concurrency == 64
    assert OpenVINOBackend({"max_num_seqs": 64, "concurrency": 3}).max_concurrency == 3
    assert OpenVINOBackend({}).options.max_num_batched_tokens == 8192
    with pytest.raises(RecipeError, match="max_num_batched_tokens"):
        create_backend("openvino", {"max_num_batched_tokens": 0})


@model
def test_a_prompt_longer_than_one_prefill_step_is_a_clear_error(cache: Path) -> None:
    pytest.importorskip("openvino_genai")
    b = OpenVINOBackend({"cache_dir": str(cache), "max_num_batched_tokens": 16})
    try:
        b.load()
        assert b.stats["max_num_batched_tokens"] == 16
        with pytest.raises(BackendError, match="max_num_batched_tokens"):
            asyncio.run(b.generate([_request(1)]))
    finally:
        asyncio.run(b.aclose())


def test_a_model_cache_that_cannot_be_used_is_one_recipe_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: a FileExistsError or PermissionError traceback from deep in the conversion."""
    import os

    from textsynth.backends._openvino_convert import cache_root

    a_file = tmp_path / "cache.txt"
    a_file.write_text("not a folder")
    with pytest.raises(RecipeError, match=r"cannot use .*cache\.txt as the model cache"):
        cache_root(str(a_file))
    monkeypatch.setenv("TEXTSYNTH_CACHE", str(a_file))
    with pytest.raises(RecipeError, match=r"backend\.options\.cache_dir: cannot use"):
        cache_root()
    # a cache where the model is not converted yet and nothing can be written
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF not really")
    root = tmp_path / "readonly"
    root.mkdir()
    (root / "openvino").write_text("in the way")  # mkdir of the conversion folder fails
    with pytest.raises(RecipeError, match=r"cannot convert the model into the cache"):
        prepare_model(gguf, root, "0")
    # the hash memo is a memo: a cache it cannot be written to still gives the digest
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(PermissionError()))
    assert source_digest(gguf, tmp_path / "memo") == source_digest(gguf, tmp_path / "memo")
    assert not list((tmp_path / "memo").glob("*.tmp"))
