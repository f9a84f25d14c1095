"""Local engines side by side on the embedded SmolLM2-135M-Instruct: load time and tokens/s.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/local_engines.py [--sizes 1 16 64]
        [--max-tokens 64] [--repeat 1] [--engines plain transformers openvino] [--no-example]

Engines (each measured only where its packages are installed):
  plain        transformers ``generate`` with its own sampling (float32), the reference
  transformers textsynth's transformers backend (per-request seeded sampler)
  openvino     textsynth's openvino backend (OpenVINO GenAI, continuous batching)

Prints load time (cold: the openvino conversion into an empty cache; cached: a second
load), then tokens/s at each batch size with the ratio to ``plain`` in the same run.
Engines take turns batch by batch, so machine noise hits all alike: read the ratios.
Then the default engine (openvino, its default batching) against the transformers
backend at its default batch size, and the README example (6 intents x 30) end to end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from textsynth.backends.base import Request

ROOT = Path(__file__).resolve().parent.parent
PROMPT = ("Write 5 different things a user might say to a voice assistant to {task}. "
          "Answer with a numbered list.")
TASKS = ["play music", "set an alarm", "turn on the lights", "book a table", "check the weather"]


def requests(count: int, max_tokens: int, offset: int) -> list[Request]:
    return [Request(messages=({"role": "user", "content": PROMPT.format(
        task=TASKS[(offset + i) % len(TASKS)])},), seed=offset + i, max_tokens=max_tokens,
        temperature=0.8, top_p=0.95) for i in range(count)]


class Plain:
    """transformers ``generate`` with plain sampling: the reference row."""

    name = "plain"

    def load(self) -> None:
        import torch
        import transformers

        from textsynth.backends.transformers import _quiet_gguf_progress, embedded_model_path

        transformers.logging.set_verbosity_error()
        _quiet_gguf_progress()
        gguf = embedded_model_path()
        self.tok = transformers.AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        self.tok.padding_side = "left"
        self.model = transformers.AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.float32).eval()
        self.torch = torch

    def prompt(self, request: Request) -> str:
        from textsynth.backends.transformers import DEFAULT_SYSTEM

        messages = [{"role": "system", "content": DEFAULT_SYSTEM}, *request.messages]
        return str(self.tok.apply_chat_template(messages, add_generation_prompt=True,
                                                tokenize=False))

    def run(self, batch: list[Request]) -> int:
        tok = self.tok
        enc = tok([self.prompt(r) for r in batch], return_tensors="pt", padding=True,
                  add_special_tokens=False)
        with self.torch.inference_mode():
            out = self.model.generate(**enc, do_sample=True, temperature=0.8, top_p=0.95,
                                      max_new_tokens=batch[0].max_tokens,
                                      pad_token_id=tok.pad_token_id)
        new = out[:, enc["input_ids"].shape[1]:]
        return int((new != tok.pad_token_id).sum())


class Backend:
    """A textsynth backend, handed one batch per call."""

    def __init__(self, name: str, options: dict[str, Any] | None = None) -> None:
        self.name = name
        self.options = options or {}

    def load(self) -> None:
        from textsynth.backends import create_backend

        self.backend: Any = create_backend(self.name, self.options)
        self.backend.load()

    def run(self, batch: list[Request]) -> int:
        out = asyncio.run(self.backend.generate(batch))
        return sum(c.usage.completion_tokens for c in out)


def timed_load(engine: Any) -> float:
    start = time.perf_counter()
    engine.load()
    return time.perf_counter() - start


def load_engines(names: list[str], sizes: list[int], cache: str) -> dict[str, Any]:
    engines: dict[str, Any] = {}
    for name in names:
        if name == "plain":
            engine: Any = Plain()
        elif name == "openvino":
            engine = Backend("openvino", {"cache_dir": cache, "batch_size": max(sizes),
                                          "max_num_seqs": max(64, *sizes)})
        else:
            engine = Backend(name, {"batch_size": max(sizes)})
        try:
            cold = timed_load(engine)
        except Exception as exc:  # an engine that is not installed is skipped
            print(f"{name:<13} skipped: {exc}")
            continue
        cached = cold
        if name == "openvino":
            asyncio.run(engine.backend.aclose())
            cached = timed_load(engine)
        print(f"{name:<13} load cold {cold:6.1f} s   cached {cached:6.1f} s")
        engines[name] = engine
    return engines


def throughput(engines: dict[str, Any], sizes: list[int], max_tokens: int,
               repeat: int) -> dict[tuple[str, int], float]:
    for engine in engines.values():  # warm-up
        engine.run(requests(2, 8, 10_000))
    tokens: dict[tuple[str, int], int] = {}
    seconds: dict[tuple[str, int], float] = {}
    for rep in range(repeat):
        for size in sizes:
            for name, engine in engines.items():  # interleaved: noise hits all alike
                start = time.perf_counter()
                n = engine.run(requests(size, max_tokens, rep * 1000 + size))
                seconds[name, size] = seconds.get((name, size), 0.0) + \
                    time.perf_counter() - start
                tokens[name, size] = tokens.get((name, size), 0) + n
    rates = {k: tokens[k] / seconds[k] for k in tokens}
    print(f"\n{'engine':<13}" + "".join(f"{f'tok/s b{s}':>14}{'x plain':>9}" for s in sizes))
    for name in engines:
        cells = []
        for size in sizes:
            rate = rates[name, size]
            base = rates.get(("plain", size))
            cells.append(f"{rate:>14.1f}{(f'{rate / base:.2f}x' if base else '-'):>9}")
        print(f"{name:<13}" + "".join(cells))
    return rates


def default_vs_backend(engines: dict[str, Any], max_tokens: int) -> None:
    """The default engine as a run uses it vs the transformers backend at batch 16."""
    if "openvino" not in engines or "transformers" not in engines:
        return
    from textsynth.backends.openvino import OpenVINOBackend

    seqs = OpenVINOBackend({})._sequences()
    ov = engines["openvino"]
    start = time.perf_counter()
    ov_tokens = ov.run(requests(seqs, max_tokens, 5000))
    ov_rate = ov_tokens / (time.perf_counter() - start)
    tf = engines["transformers"]
    start = time.perf_counter()
    tf_tokens = tf.run(requests(16, max_tokens, 5000))
    tf_rate = tf_tokens / (time.perf_counter() - start)
    print(f"\ndefault engine openvino ({seqs} sequences): {ov_rate:.1f} tok/s; transformers "
          f"backend at its default batch 16: {tf_rate:.1f} tok/s; ratio {ov_rate / tf_rate:.1f}x")


def sampler_steps(sizes: list[int], vocab: int = 49152, steps: int = 20) -> None:
    """Per-step cost of the transformers backend's sampler vs transformers' own sampling."""
    try:
        import torch
        from transformers.generation.logits_process import (
            TemperatureLogitsWarper,
            TopPLogitsWarper,
        )
    except ImportError:
        return
    from textsynth.backends.transformers import _RowSampler

    temperature, top_p = TemperatureLogitsWarper(0.8), TopPLogitsWarper(0.95)
    print(f"\nsampling one step over {vocab:,} tokens (ms): batch, textsynth sampler, "
          "transformers temperature + top-p + multinomial")
    for size in sizes:
        scores = torch.randn(size, vocab) * 3
        ids = torch.zeros(size, 64, dtype=torch.long)
        sampler = _RowSampler(requests(size, 8, 0), "cpu")

        def ours(sampler: Any = sampler, ids: Any = ids, scores: Any = scores) -> None:
            sampler(ids, scores.clone())

        def plain(ids: Any = ids, scores: Any = scores) -> None:
            warped = top_p(ids, temperature(ids, scores.clone()))
            torch.multinomial(torch.softmax(warped, dim=-1), 1)

        times = []
        for fn in (ours, plain):
            fn()
            start = time.perf_counter()
            for _ in range(steps):
                fn()
            times.append((time.perf_counter() - start) / steps * 1000)
        print(f"{size:>6} {times[0]:>10.1f} {times[1]:>10.1f}   {times[1] / times[0]:.1f}x")


def readme_example() -> None:
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "textsynth", "run",
                               "examples/smart_home_intents.yaml", "--out", out, "--quiet"],
                              cwd=ROOT, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - start
        tail = proc.stdout.strip().splitlines()[-3:]
    print(f"\nREADME example end to end (load included): {wall:.1f} s, exit {proc.returncode}")
    for line in tail:
        print("  " + line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--engines", nargs="+", default=["plain", "transformers", "openvino"])
    parser.add_argument("--no-example", action="store_true", help="skip the README example")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")
    with tempfile.TemporaryDirectory() as cache:
        engines = load_engines(args.engines, args.sizes, cache)
        throughput(engines, args.sizes, args.max_tokens, args.repeat)
        default_vs_backend(engines, args.max_tokens)
        if "transformers" in args.engines:
            sampler_steps([s for s in args.sizes if s > 1] or args.sizes)
        for engine in engines.values():
            if isinstance(engine, Backend):
                asyncio.run(engine.backend.aclose())
    if not args.no_example:
        readme_example()
    print(f"load average {os.getloadavg()[0]:.1f} at end")


if __name__ == "__main__":
    main()
