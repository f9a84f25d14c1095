"""Backend registry.

Built-in backends register through the same mechanism as third-party ones: a
package exposes ``Backend`` subclasses in the ``textsynth.backends`` entry-point
group (``name = "pkg.module:Class"``), and :func:`get_backend` finds them.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import import_module
from typing import Any

from textsynth.backends.base import Backend, Completion, Request, Usage
from textsynth.errors import RecipeError

__all__ = [
    "Backend",
    "Completion",
    "Request",
    "Usage",
    "available_backends",
    "create_backend",
    "get_backend",
    "register_backend",
]

ENTRY_POINT_GROUP = "textsynth.backends"

# name -> "module:Class" (imported lazily so that `textsynth --help` stays fast)
_BUILTIN: dict[str, str] = {
    "fake": "textsynth.backends.fake:FakeBackend",
    "transformers": "textsynth.backends.transformers:TransformersBackend",
    "openvino": "textsynth.backends.openvino:OpenVINOBackend",
    "openai": "textsynth.backends.openai:OpenAIBackend",
    "vllm": "textsynth.backends.vllm:VLLMBackend",
}
_registry: dict[str, type[Backend] | str] = dict(_BUILTIN)
_entry_points_loaded = False


def register_backend(name: str, cls: type[Backend] | str) -> None:
    """Register a backend class (or a lazy ``"module:Class"`` path) under ``name``; a name
    registered already (a built-in one too) now means ``cls``."""
    if not isinstance(name, str) or not name.strip():
        raise TypeError(f"a backend name is a non-empty string, not {name!r}")
    if isinstance(cls, str):
        if not all(cls.partition(":")[::2]):
            raise TypeError(f"a lazy backend is 'module:Class', not {cls!r}")
    elif not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise TypeError(f"backend '{name}': {cls!r} is not a subclass of textsynth.Backend")
    _registry[name] = cls


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    from importlib.metadata import entry_points  # 30 ms of imports: only when needed

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        _registry.setdefault(ep.name, ep.value)


def available_backends() -> list[str]:
    _load_entry_points()
    return sorted(_registry)


def get_backend(name: str) -> type[Backend]:
    """The backend class registered under ``name``."""
    if name not in _registry:  # an entry point never replaces a name registered already
        _load_entry_points()
    target = _registry.get(name)
    if target is None:
        known = ", ".join(available_backends())
        raise RecipeError(f"unknown backend '{name}' (known: {known})", field="backend.type")
    if isinstance(target, str):
        module, _, attr = target.partition(":")
        try:  # a plugin's entry point, or a lazy registration: it may not import
            cls = getattr(import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise RecipeError(f"backend '{name}' ({target}) cannot be loaded: {exc}",
                              field="backend.type") from None
        if not (isinstance(cls, type) and issubclass(cls, Backend)):
            raise RecipeError(f"backend '{name}' ({target}) is not a subclass of "
                              "textsynth.Backend", field="backend.type")
        _registry[name] = cls
        return cls
    return target


def create_backend(name: str, options: Mapping[str, Any] | None = None) -> Backend:
    """Instantiate the backend ``name`` with its options (validated by its ``Options``)."""
    return get_backend(name)(options or {})
