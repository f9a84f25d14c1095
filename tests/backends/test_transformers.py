"""The transformers backend on the real embedded model (SmolLM2-135M-Instruct)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from textsynth import Request, load_recipe
from textsynth.backends.transformers import TransformersBackend, _RowSampler, embedded_model_path
from textsynth.errors import BackendError, RecipeError
from textsynth.pipeline import run_recipe

model = pytest.mark.model


@pytest.fixture(scope="module")
def backend() -> TransformersBackend:
    b = TransformersBackend({"batch_size": 4, "threads": 2})
    b.load()
    return b


def _request(seed: int, temperature: float = 0.9) -> Request:
    prompt = "Write 3 short things a user might say to a voice assistant to play music.\n1."
    return Request(messages=({"role": "user", "content": prompt},), seed=seed, max_tokens=40,
                   temperature=temperature)


@model
def test_embedded_model_ships_in_package() -> None:
    assert embedded_model_path().stat().st_size > 50_000_000


@model
def test_sampling_is_seeded_per_request_not_per_batch(backend: TransformersBackend) -> None:
    batch = asyncio.run(backend.generate([_request(1), _request(2), _request(3)]))
    alone = asyncio.run(backend.generate([_request(2)]))
    assert batch[1].text == alone[0].text
    assert batch[0].text != batch[1].text  # different seeds differ
    assert all(c.usage.prompt_tokens > 10 and c.usage.completion_tokens > 0 for c in batch)
    # finish_reason follows the token count: "length" exactly when max_tokens was used up
    for c in batch:
        assert (c.finish_reason == "length") == (c.usage.completion_tokens == 40), c
    cut = asyncio.run(backend.generate([Request(messages=_request(1).messages, seed=1,
                                                max_tokens=3)]))[0]
    assert cut.finish_reason == "length" and cut.usage.completion_tokens == 3


@model
def test_n_choices_differ_and_their_prompt_is_counted_once(backend: TransformersBackend) -> None:
    """As vLLM and hosted APIs count ``n`` (and as the budget's estimate assumes)."""
    one = _request(4)
    (both,) = asyncio.run(backend.generate([Request(messages=one.messages, seed=4, n=2,
                                                    max_tokens=40, temperature=0.9)]))
    (alone,) = asyncio.run(backend.generate([one]))
    assert len(both.texts) == 2 and both.texts[0] != both.texts[1]
    assert both.usage.prompt_tokens == alone.usage.prompt_tokens > 10
    assert 2 <= both.usage.completion_tokens <= 80


@model
def test_the_progress_display_hears_while_the_model_loads() -> None:
    import threading
    import time

    b = TransformersBackend({"threads": 2})
    seen: set[str] = set()
    loading = threading.Thread(target=b.load)
    loading.start()
    while loading.is_alive():
        seen.add(b.activity())
        time.sleep(0.01)
    assert "loading the model smollm2-135m-instruct" in seen
    assert b.activity() == ""


@model
def test_greedy_decoding_is_deterministic(backend: TransformersBackend) -> None:
    a = asyncio.run(backend.generate([_request(5, 0.0)]))
    b = asyncio.run(backend.generate([_request(6, 0.0), _request(5, 0.0)]))
    assert a[0].text == b[1].text == b[0].text


@model
def test_a_raw_prompt_is_continued_in_a_batch_with_chat_prompts(
        backend: TransformersBackend) -> None:
    document = "Things people say to a smart speaker to play music:\n- Play some jazz\n-"
    raw = Request(messages=(), prompt=document, seed=3, max_tokens=8, temperature=0.0)
    assert backend._prompt(raw) == document
    out, framed = asyncio.run(backend.generate([raw, _request(5, 0.0)]))
    alone = asyncio.run(backend.generate([raw]))[0]
    assert out.text == alone.text and out.text  # left padding does not change it
    assert out.usage.prompt_tokens < framed.usage.prompt_tokens - 10


@model
def test_small_run_on_embedded_model(tmp_path: Path, backend: TransformersBackend) -> None:
    recipe = load_recipe({
        "name": "tiny", "per_label": 3,
        "labels": {"play_music": "Start playing a song", "set_alarm": "Set a wake-up alarm"},
        "generation": {"max_tokens": 80, "examples_per_request": 5},
        "quality": {"min_words": 2, "max_words": 25},
        "export": {"dir": str(tmp_path / "out")},
    })
    outcome = run_recipe(recipe, backend=backend)
    assert outcome.stats.complete, outcome.stats.shortfalls
    from datasets import load_from_disk

    ds = load_from_disk(str(tmp_path / "out" / "dataset"))
    rows = [r for split in ds.values() for r in split]
    assert len(rows) == 6 and len({r["text"] for r in rows}) == 6
    assert {r["model"] for r in rows} == {backend.model_name}


@model
def test_a_stopped_run_keeps_the_batch_the_model_is_writing(
        tmp_path: Path, backend: TransformersBackend, interrupted_run: Any) -> None:
    """Ctrl-C (or SIGTERM) while the model writes a batch in its thread: the run waits for
    the batch and stores its answers, however long the batch takes past the grace period,
    and sends nothing more."""
    from textsynth.engine import Engine

    started: list[int] = []
    generate = backend._generate

    def counted(requests: list[Request]) -> Any:
        started.append(len(requests))
        return generate(requests)

    recipe = load_recipe({
        "name": "stopped", "per_label": 30,
        "labels": {"play_music": "Start playing a song", "set_alarm": "Set a wake-up alarm"},
        "generation": {"max_tokens": 60, "examples_per_request": 5},
        "export": {"dir": str(tmp_path / "out")},
    })
    backend._generate = counted  # type: ignore[method-assign]
    try:
        engine = Engine(recipe, backend=backend)
        engine.interrupt_grace = 0.1  # far shorter than a batch on two cores
        interrupted_run(engine, lambda: len(started) >= 2)  # the second batch is being written
        # every batch the model began was finished and stored; none began after the stop
        assert engine.store.completion_count() == sum(started) >= 8
        engine.store.close()
    finally:
        del backend._generate


def test_missing_local_model_is_a_recipe_error(tmp_path: Path) -> None:
    b = TransformersBackend({"model": str(tmp_path / "nope")})
    with pytest.raises(RecipeError, match="not found"):
        b.load()


def test_a_folder_that_is_no_model_is_said_so_in_one_line(tmp_path: Path) -> None:
    # before: transformers' five-line tokenizer error about sentencepiece and tiktoken
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(RecipeError, match=r"is not a transformers model folder \(no "
                                          r"config\.json\)"):
        TransformersBackend({"model": str(tmp_path)}).load()
    (tmp_path / "config.json").write_text("{}")  # a config, but no model: still one line
    with pytest.raises(BackendError) as exc:
        TransformersBackend({"model": str(tmp_path)}).load()
    assert "\n" not in str(exc.value) and str(exc.value).startswith("cannot load local model")


def _pick(rows: list[Request], logits: list[list[float]], step: int = 0) -> list[int]:
    torch = pytest.importorskip("torch")
    sampler = _RowSampler(rows, "cpu")
    sampler.start = 10 - step
    out = sampler(torch.zeros((len(rows), 10)), torch.tensor(logits))
    assert bool((out.max(dim=1).values == 0).all())  # one-hot: exactly one finite score
    return [int(i) for i in out.argmax(dim=1)]


def _row(seed: int, temperature: float = 1.0, top_p: float = 1.0) -> Request:
    return Request(messages=({"role": "user", "content": "x"},), seed=seed,
                   temperature=temperature, top_p=top_p)


def test_sampler_draw_does_not_depend_on_the_batch() -> None:
    logits = [[0.0, 1.0, 2.0, 0.5, 1.5]]
    rows = [_row(s) for s in range(40)]
    together = _pick(rows, logits * 40)
    alone = [_pick([r], logits)[0] for r in rows]
    assert together == alone
    assert len(set(together)) >= 3  # seeds differ
    assert _pick(rows[:5], logits * 5, step=1) != together[:5]  # the step moves the noise


def test_sampler_follows_temperature_and_top_p() -> None:
    import math

    logits = [math.log(p) for p in (0.5, 0.3, 0.15, 0.05)]
    n = 4000
    picks = _pick([_row(s) for s in range(n)], [logits] * n)
    freq = [picks.count(i) / n for i in range(4)]
    assert all(abs(f - p) < 0.03 for f, p in zip(freq, (0.5, 0.3, 0.15, 0.05), strict=True))
    nucleus = _pick([_row(s, top_p=0.7) for s in range(n)], [logits] * n)
    assert set(nucleus) == {0, 1}  # 0.5 + 0.3 reaches 0.7: the tail is never drawn
    assert abs(nucleus.count(0) / n - 0.5 / 0.8) < 0.03
    greedy = _pick([_row(s, temperature=0.0) for s in range(20)], [logits] * 20)
    assert set(greedy) == {0}


def test_sampler_widens_past_its_top_k_for_a_flat_distribution() -> None:
    flat = [0.0] * 1000
    picks = _pick([_row(s, top_p=0.95) for s in range(300)], [flat] * 300)
    assert max(picks) > _RowSampler.TOP_K * 4  # the nucleus holds 950 tokens, not 64


def _bos_tokenizer() -> object:
    """A tiny real tokenizer that starts every document with <bos>, as Gemma's does."""
    pytest.importorskip("transformers")
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<bos>": 1, "-": 2, "Hallo": 3, "Welt": 4, "Frage": 5}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.post_processor = processors.TemplateProcessing(single="<bos> $A",
                                                        special_tokens=[("<bos>", 1)])
    tok = PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<bos>", pad_token="<pad>")
    tok.padding_side = "left"
    return tok


def test_a_raw_document_starts_as_the_tokenizer_starts_one() -> None:
    """A document to continue gets the tokenizer's <bos> (Gemma writes nonsense without
    it); a chat-templated prompt does not get a second one; a mixed batch pads each."""
    b = TransformersBackend({"threads": 1})
    b._tokenizer = _bos_tokenizer()
    raw = b._encode(["- Hallo Welt", "- Hallo"], [True, True])
    assert raw["input_ids"].tolist() == [[1, 2, 3, 4], [0, 1, 2, 3]]
    chat = b._encode(["Frage Hallo Welt"], [False])
    assert chat["input_ids"].tolist() == [[5, 3, 4]]
    mixed = b._encode(["- Hallo", "Frage Hallo Welt"], [True, False])
    assert mixed["input_ids"].tolist() == [[1, 2, 3], [5, 3, 4]]
    assert mixed["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 1]]
    short = b._encode(["- Hallo", "Frage Hallo Welt Welt"], [True, False])
    assert short["input_ids"].tolist() == [[0, 1, 2, 3], [5, 3, 4, 4]]
    assert short["attention_mask"].tolist()[0] == [0, 1, 1, 1]
