"""OpenVINO GenAI: the fast CPU engine for local models (the default for the embedded one).

The model (the embedded SmolLM2-135M GGUF, any llama-family GGUF, an OpenVINO folder,
or a transformers folder through optimum-intel) is converted once and cached (see
:mod:`textsynth.backends._openvino_convert`); later runs load it in seconds.

Generation runs on a continuous-batching pipeline driven by one worker thread: every
request joins the running batch as soon as it is handed over and leaves it at its own
end of sequence, so the engine stays busy while the run parses and stores results.

Sampling is seeded per request (OpenVINO's ``rng_seed``): a request draws from its own
generator, so it gives the same completion whatever batch it lands in, up to rare
float rounding differences between batch shapes (measured: 126-128 of 128 completions
identical at batch 16 and 64).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import math
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from textsynth._deps import require
from textsynth.backends._openvino_convert import cache_root, prepare_model
from textsynth.backends.base import Backend, Completion, Request, Usage
from textsynth.backends.transformers import (
    DEFAULT_MODEL,
    DEFAULT_SYSTEM,
    GEMMA_MODEL,
    embedded_model_path,
    gemma_folder,
    local_model_name,
)
from textsynth.errors import BackendError, MissingDependency, RecipeError

__all__ = ["DETERMINISM", "OpenVINOBackend", "default_sequences"]

# tokenizer calls and engine loads of every openvino backend in this process (see
# OpenVINOBackend.__init__)
_OPENVINO_LOCK = threading.Lock()

DETERMINISM = (
    "Sampling was seeded per request (OpenVINO GenAI `rng_seed`), but a completion can\n"
    "change with the batch it was decoded in (float rounding differs between batch shapes),\n"
    "so a rerun gives a similar, not identical, dataset; for identical rows use the\n"
    "`transformers` backend. Resuming a run never generates a stored completion again.")


def default_sequences(model_bytes: int, cores: int) -> int:
    """How many sequences to decode together: more for small models and many cores.

    On 2 cores, SmolLM2-135M gains up to 64 sequences (4-6x batch 1 per sequence);
    a model ten times larger saturates the cores at fewer.
    """
    base = 64 if model_bytes < 1 << 30 else 32 if model_bytes < 4 << 30 else 16
    return min(256, base * max(1, cores // 4))


class OpenVINOBackend(Backend):
    """Generates with OpenVINO GenAI's continuous-batching pipeline on CPU."""

    name = "openvino"

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        model: str = Field(DEFAULT_MODEL, description="GGUF file, OpenVINO or transformers "
                           "folder, or the embedded default")
        device: str = "CPU"
        batch_size: int = Field(8, ge=1, description="requests handed over per call")
        concurrency: int | None = Field(None, ge=1, description="calls in flight; default "
                                        "fills max_num_seqs")
        max_num_seqs: int | None = Field(None, ge=1, description="sequences decoded together; "
                                         "default from model size and cores")
        max_num_batched_tokens: int = Field(8192, ge=1, description="prompt tokens prefilled "
                                            "in one step")
        kv_cache_gb: int = Field(1, ge=1, description="KV cache size in GB")
        prefix_caching: bool = True
        system_prompt: str | None = DEFAULT_SYSTEM
        threads: int | None = Field(None, ge=1)
        cache_dir: str | None = Field(None, description="converted models; default "
                                      "$TEXTSYNTH_CACHE or $XDG_CACHE_HOME/textsynth")

    options: Options  # the base class builds it from the recipe's backend.options

    def __init__(self, options: BaseModel | dict[str, Any] | None = None) -> None:
        super().__init__(options)
        self._pipe: Any = None
        self._tokenizer: Any = None
        self._loop: _StepLoop | None = None
        self._lock = threading.Lock()
        # OpenVINO's tokenizer deadlocked when two threads used it at once, and two
        # backends of one process (a mixture of models) hung at their start, one loading
        # while the other encoded: one tokenizer call or engine load at a time, process-wide
        self._tok_lock = _OPENVINO_LOCK
        self._eos: set[int] = set()
        self.stats: dict[str, Any] = {}

    @property
    def model_name(self) -> str:
        return local_model_name(self.options.model)

    def _source(self) -> Path:
        model: str = self.options.model
        if model == DEFAULT_MODEL:
            return embedded_model_path()
        if model == GEMMA_MODEL:  # OpenVINO GenAI's GGUF reader has no gemma3: optimum-intel
            return gemma_folder(self.options.cache_dir)
        path = Path(model).expanduser()
        if not path.exists():
            raise RecipeError(f"local model '{model}' not found (a .gguf file or a folder; "
                              "models are never downloaded)", field="backend.options.model")
        return path

    def _sequences(self) -> int:
        opts = self.options
        if opts.max_num_seqs:
            return int(opts.max_num_seqs)
        try:
            size = sum(f.stat().st_size for f in _weight_files(self._source()))
        except (OSError, MissingDependency, RecipeError):
            size = 0
        return default_sequences(size, os.cpu_count() or 1)

    @property
    def max_concurrency(self) -> int:
        opts = self.options
        if opts.concurrency:
            return int(opts.concurrency)
        # max_num_seqs requests, not more: twice as many kept the engine fuller (30 instead
        # of 20 sequences on average) but sent 18% more tokens, which cost more than it
        # saved on 2 cores (benchmarks/local_occupancy.py)
        return max(1, math.ceil(self._sequences() / self.batch_size))

    def load(self) -> None:
        """Convert (first time only) and load the model; called by the first :meth:`generate`."""
        with self._lock, self.busy(f"loading the model {Path(self.options.model).name}"):
            if self._pipe is not None:
                return
            ov_genai = require("openvino_genai", "the openvino backend")
            opts = self.options
            prepared = prepare_model(self._source(), cache_root(opts.cache_dir),
                                     ov_genai.__version__.split("-")[0])
            sched = ov_genai.SchedulerConfig()
            sched.cache_size = opts.kv_cache_gb
            sched.max_num_seqs = self._sequences()
            sched.enable_prefix_caching = opts.prefix_caching
            # prompts are prefilled in steps of their own, so a batch's completions do not
            # depend on the order its requests arrive in
            sched.dynamic_split_fuse = False
            # prompts arriving together are prefilled in one step, not one step each (the
            # default 256 tokens is about two prompts a step); without split-fuse a prompt
            # must also fit one step (a prompt with a few German examples exceeds 256)
            sched.max_num_batched_tokens = opts.max_num_batched_tokens
            props: dict[str, Any] = {}
            if opts.threads:
                props["INFERENCE_NUM_THREADS"] = opts.threads
            with self._tok_lock:
                try:
                    pipe = ov_genai.ContinuousBatchingPipeline(str(prepared.path), sched,
                                                               opts.device, props)
                except RuntimeError as exc:
                    lines = str(exc).strip().splitlines() or ["unknown error"]
                    raise BackendError(f"OpenVINO cannot load {prepared.path}: "
                                       f"{lines[-1]}") from exc
                tok = pipe.get_tokenizer()
                self._eos = {int(t) for t in [tok.get_eos_token_id(),
                                              *pipe.get_config().stop_token_ids] if t >= 0}
            self._pipe, self._tokenizer = pipe, tok
            self._loop = _StepLoop(pipe, sched.max_num_seqs, sched.max_num_batched_tokens)
            self.stats = {"engine": f"openvino-genai {ov_genai.__version__}",
                          "converted": prepared.converted,
                          "convert_seconds": round(prepared.seconds, 1),
                          "model_dir": str(prepared.path), "max_num_seqs": sched.max_num_seqs,
                          "max_num_batched_tokens": sched.max_num_batched_tokens,
                          "determinism": DETERMINISM}

    def prompt(self, request: Request) -> str:
        """The chat-templated prompt (the system prompt added when the request has none),
        or the request's raw prompt as it is."""
        if request.prompt is not None:
            return request.prompt
        self.check_chat_template(self._tokenizer)
        messages = list(request.messages)
        system: str | None = self.options.system_prompt
        if system and not any(m["role"] == "system" for m in messages):
            messages.insert(0, {"role": "system", "content": system})
        return str(self._tokenizer.apply_chat_template(messages, add_generation_prompt=True))

    async def ready(self, request: Request) -> None:
        if self._pipe is None:
            await asyncio.to_thread(self.load)
        self.prompt(request)

    async def generate(self, requests: Sequence[Request]) -> list[Completion]:
        if self._pipe is None:
            await asyncio.to_thread(self.load)
        assert self._loop is not None
        jobs = await asyncio.to_thread(self._submit, list(requests))
        results: list[Completion] = []
        try:
            for request, (ids, futures) in zip(requests, jobs, strict=True):
                outputs = [await asyncio.wrap_future(f) for f in futures]
                results.append(self._completion(request, len(ids), outputs))
        finally:
            for _, futures in jobs:
                for f in futures:
                    f.cancel()
        return results

    def _submit(self, requests: list[Request]) -> list[tuple[list[int], list[Any]]]:
        import openvino as ov
        import openvino_genai as ov_genai

        assert self._loop is not None
        prompts, work = [], []
        for request in requests:
            with self._tok_lock:  # the result is a view into the tokenizer's buffer: copy it
                # a chat template writes its own special tokens; a raw document starts as
                # the tokenizer starts one (Gemma's <bos>; nothing for SmolLM2)
                enc = self._tokenizer.encode(self.prompt(request),
                                             add_special_tokens=request.prompt is not None)
                array = enc.input_ids.data.copy()
            prompts.append([int(t) for t in array[0]])
            for choice in range(request.n):  # one stream per choice, seeded like the request
                config = ov_genai.GenerationConfig()
                config.max_new_tokens = request.max_tokens
                config.stop_token_ids = self._eos
                if request.temperature > 0:
                    config.do_sample = True
                    config.temperature = request.temperature
                    config.top_p = request.top_p
                    config.rng_seed = (request.seed * 64 + choice) % (1 << 64)
                work.append((ov.Tensor(array.copy()), config))
        futures = iter(self._loop.submit(work))  # one call's requests start together
        return [(ids, [next(futures) for _ in range(r.n)])
                for ids, r in zip(prompts, requests, strict=True)]

    def _completion(self, request: Request, prompt_tokens: int,
                    outputs: list[tuple[list[int], str]]) -> Completion:
        # the prompt counted once for all choices, as vLLM and hosted APIs count ``n`` (and
        # as the prefix cache computes it); the budget's estimate assumes the same
        texts, used, finish = [], Usage(prompt_tokens, 0), "stop"
        for ids, reason in outputs:
            end = next((j for j, t in enumerate(ids) if t in self._eos), len(ids))
            if reason == "length" and end == len(ids):
                finish = "length"
            with self._tok_lock:
                text = self._tokenizer.decode(ids[:end], skip_special_tokens=True)
            texts.append(text.strip())
            used.completion_tokens += end
        return Completion(texts, used, finish, self.model_name)

    def cancel_queued(self) -> None:
        if self._loop is not None:
            self._loop.drop_queued()

    async def aclose(self) -> None:
        if self._loop is not None:
            await asyncio.to_thread(self._loop.close)
        self._loop = None
        self._pipe = None
        self._tokenizer = None


def _weight_files(source: Path) -> list[Path]:
    if source.is_file():
        return [source]
    return [p for p in source.iterdir() if p.suffix in (".bin", ".safetensors", ".gguf")]


class _StepLoop:
    """Drives the continuous-batching pipeline from one thread.

    Requests are added between steps as they arrive, up to ``max_seqs`` at once; the
    rest wait here, where :meth:`drop_queued` can still drop them at no cost. Each
    finished one resolves its future with ``(generated token ids, "stop" | "length")``.
    """

    def __init__(self, pipe: Any, max_seqs: int, max_prompt: int | None = None) -> None:
        self._pipe = pipe
        self._max_seqs = max_seqs
        self._max_prompt = max_prompt  # prompt tokens one step prefills (longer: ignored)
        self._ids = itertools.count()
        self._new: list[tuple[Any, Any, concurrent.futures.Future[Any]]] = []
        self._cv = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="openvino-steps", daemon=True)
        self._thread.start()

    def submit(self, work: list[tuple[Any, Any]]) -> list[concurrent.futures.Future[Any]]:
        """Queue ``(input ids, generation config)`` pairs; they join the batch together."""
        futures: list[concurrent.futures.Future[Any]] = [
            concurrent.futures.Future() for _ in work]
        with self._cv:
            if self._closed:
                raise BackendError("the openvino backend is closed")
            self._new.extend((ids, config, f) for (ids, config), f in zip(work, futures,
                                                                        strict=True))
            self._cv.notify()
        return futures

    def drop_queued(self) -> None:
        with self._cv:
            dropped, self._new = self._new, []
        for _, _, future in dropped:
            future.cancel()

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify()
        self._thread.join()

    def _run(self) -> None:
        active: dict[int, tuple[Any, concurrent.futures.Future[Any]]] = {}
        while True:
            with self._cv:
                while not self._new and not active and not self._closed:
                    self._cv.wait()
                closed = self._closed
                room = len(self._new) if closed else max(0, self._max_seqs - len(active))
                new, self._new = self._new[:room], self._new[room:]
            for input_ids, config, future in new:
                if closed or not future.set_running_or_notify_cancel():
                    future.cancel()
                    continue
                rid = next(self._ids)
                active[rid] = (self._pipe.add_request(rid, input_ids, config), future)
            if closed:
                for handle, future in active.values():
                    handle.cancel()
                    future.set_exception(BackendError("the openvino backend was closed"))
                if active:  # a step frees what they hold (destroyed holding it, the
                    with contextlib.suppress(Exception):  # pipeline prints "[ERROR] ...
                        self._pipe.step()  # leaked" lines on the user's terminal)
                return
            try:
                self._step(active)
            except Exception as exc:  # the thread must not die while requests wait on it
                for _, future in active.values():
                    future.set_exception(BackendError(f"OpenVINO generation failed: {exc}"))
                active.clear()

    def _step(self, active: dict[int, tuple[Any, concurrent.futures.Future[Any]]]) -> None:
        import openvino_genai as ov_genai

        status = ov_genai.GenerationStatus
        if self._pipe.has_non_finished_requests():
            self._pipe.step()
        for rid, (handle, future) in list(active.items()):
            state = handle.get_status()
            if state == status.RUNNING:
                continue
            del active[rid]
            if state == status.IGNORED:
                future.set_exception(BackendError(
                    "the prompt does not fit the KV cache or one prefill step: raise "
                    "backend.options.kv_cache_gb or backend.options.max_num_batched_tokens "
                    f"(now {self._max_prompt})"))
                continue
            outputs = handle.read_all()
            if not outputs:
                future.set_exception(BackendError(f"OpenVINO returned nothing ({state})"))
                continue
            out = outputs[0]
            length = out.finish_reason == ov_genai.GenerationFinishReason.LENGTH
            future.set_result((list(out.generated_ids), "length" if length else "stop"))
